"""MLPerf logs for the tests: reading their events, writing them back, and relabelling a tiny run's log as a run of a
benchmark (a tiny run cannot follow a definition, and the ruleset or the results, not training, are under test)."""
import json

from benchmark.rules import get_benchmark

PREFIX = ":::MLLOG "


def events(path):
    return [json.loads(line.split(PREFIX, 1)[1]) for line in open(path) if PREFIX in line]


def write(path, items):
    with open(path, "w") as handle:
        for item in items:
            handle.write(PREFIX + json.dumps(item) + "\n")
    return str(path)


def relabel(items, benchmark, reach=True, status="success"):
    """The events as a run of `benchmark` under its current rules: its sample counts, resolution, division and
    rules version; every evaluation reaches its target (reach=True) or none does; run_stop says `status`."""
    definition = get_benchmark(benchmark)
    values = {"cosmictagger_benchmark": benchmark, "cosmictagger_rules_version": definition.rules_version,
              "image_downsample": definition.settings["data.downsample"],
              "submission_division": "closed" if benchmark == "closed" else "open"}
    if definition.dataset is not None:
        values.update(train_samples=definition.dataset.train.events, eval_samples=definition.dataset.validation.events)
    target = definition.target
    out = []
    for item in items:
        item = json.loads(json.dumps(item))
        if item["key"] in values:
            item["value"] = values[item["key"]]
        if item["key"] == "eval_accuracy" and target is not None:
            step = 0.01 if reach else -0.01
            item["metadata"].update(cosmic_iou=target.cosmic_iou + step, neutrino_iou=target.neutrino_iou + step,
                                    non_bkg_accuracy=target.non_bkg_accuracy + step)
        if item["key"] == "run_stop":
            item["metadata"]["status"] = status
        out.append(item)
    return out
