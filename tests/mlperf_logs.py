"""MLPerf logs for the tests: reading their events, writing them back, relabelling a tiny run's log as a run of a
benchmark (a tiny run cannot follow a definition, and the ruleset or the results, not training, are under test), and
writing a complete run's log from a few numbers (write_log; converged_run and submission for epochs to converge)."""
import json
import os

from benchmark.rules import BENCHMARKS, CLOSED, get_benchmark

PREFIX = ":::MLLOG "
START_MS = 1_700_000_000_000  # run_start of the logs write_log writes


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


def mllog(time_ms, key, value=None, event_type="POINT_IN_TIME", **metadata):
    """One line as mllog writes it."""
    line = {"namespace": "", "time_ms": time_ms, "event_type": event_type, "key": key, "value": value,
            "metadata": {"file": "train.py", "lineno": 1, **metadata}}
    return PREFIX + json.dumps(line)


CURRENT = object()  # write_log's rules_version: the benchmark's current one


def write_log(path, minutes=10.0, status="success", benchmark="mini", system="testbox", implementation="torch-2D",
              evals=((0.5, 0.3, 0.5), (1.0, 0.5, 1.0)), throughput=(40.0, 50.0), seed=1234, prefix="",
              stopped=True, rules_version=CURRENT, drop=(), values=None):
    """A realistic run log that the official checker passes: every key the ruleset requires, evals at (minute, mIoU,
    epoch) of which the last reaches the target when the run says success, tracked throughput, run_stop.
    `rules_version=None` and `drop` leave keys out; `values` replaces logged values."""
    definition = BENCHMARKS.get(benchmark)
    if rules_version is CURRENT:
        rules_version = definition.rules_version if definition else "none"
    dataset = definition.dataset if definition and definition.dataset else CLOSED.dataset
    target = definition.target if definition and definition.target else CLOSED.target
    header = {
        "submission_benchmark": "cosmictagger", "submission_org": "tests",
        "submission_division": "closed" if benchmark == "closed" else "open", "submission_status": "research",
        "submission_platform": system, "cosmictagger_benchmark": benchmark, "cosmictagger_rules_version": rules_version,
        "implementation": implementation, "seed": seed, "number_of_ranks": 2, "number_of_nodes": 1,
        "accelerators_per_node": 0, "global_batch_size": 8, "gradient_accumulation_frequency": 1, "opt_name": "adam",
        "opt_base_learning_rate": 0.001,
        "image_downsample": definition.settings["data.downsample"] if definition else 5,
        "train_samples": dataset.train.events, "eval_samples": dataset.validation.events, **(values or {}),
    }
    lines = ["running on testbox", mllog(START_MS - 6000, "cache_clear", False),
             mllog(START_MS - 5000, "init_start", event_type="INTERVAL_START"),
             mllog(START_MS - 4500, "staging_start", event_type="INTERVAL_START"),
             mllog(START_MS - 4200, "staging_stop", event_type="INTERVAL_END")]
    lines += [mllog(START_MS - 4000, key, value) for key, value in header.items()
              if key not in drop and not (key == "cosmictagger_rules_version" and value is None)]
    lines += [mllog(START_MS - 1000, "init_stop", event_type="INTERVAL_END"),
              mllog(START_MS, "run_start", event_type="INTERVAL_START"),
              mllog(START_MS, "epoch_start", event_type="INTERVAL_START", epoch_num=0)]
    for step, rate in enumerate(throughput, start=1):
        lines.append(mllog(START_MS + 1000 * step, "tracked_stats", {"throughput": rate}, step_num=10 * step))
        lines.append("step %d loss 0.3" % step)
    for i, (minute, miou, epoch) in enumerate(evals):
        time_ms = START_MS + int(minute * 60000)
        margin = 0.01 if status == "success" and i == len(evals) - 1 else -0.01
        lines.append(mllog(time_ms - 100, "eval_start", event_type="INTERVAL_START", epoch_num=epoch))
        lines.append(mllog(time_ms - 50, "eval_stop", event_type="INTERVAL_END", epoch_num=epoch))
        lines.append(mllog(time_ms, "eval_accuracy", miou, epoch_num=epoch, step_num=100,
                           cosmic_iou=target.cosmic_iou + margin, neutrino_iou=target.neutrino_iou + margin,
                           non_bkg_accuracy=target.non_bkg_accuracy + margin))
    if stopped:
        lines.append(mllog(START_MS + int(minutes * 60000), "epoch_stop", event_type="INTERVAL_END", epoch_num=1))
        lines.append(mllog(START_MS + int(minutes * 60000), "run_stop", event_type="INTERVAL_END", status=status))
    lines = [line for line in lines if not any(f'"key": "{key}"' in line for key in drop)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(prefix + line + "\n" for line in lines))
    return str(path)


def converged_run(path, epochs, batch_size=8, benchmark="mini", seed=1, values=None, **options):
    """A compliant run at `batch_size` whose last evaluation, at `epochs`, reaches the target (None: it never does,
    and the run aborts); one minute per epoch, so time to train follows epochs."""
    if epochs is None:
        evals, status, minutes = ((2.0, 0.3, 2.0), (4.0, 0.4, 4.0)), "aborted", 4.1
    else:
        evals, status, minutes = ((epochs / 2, 0.3, epochs / 2), (epochs, 0.6, epochs)), "success", epochs + 0.1
    return write_log(path, minutes=minutes, status=status, benchmark=benchmark, evals=evals, seed=seed,
                     values={"global_batch_size": batch_size, "precision": "float32", **(values or {})}, **options)


def submission(folder, epochs, batch_size=8, benchmark="mini", values=None, **options):
    """result_1.txt ... of one submission in `folder` (a pathlib.Path), a converged_run per entry of `epochs`."""
    for i, value in enumerate(epochs, start=1):
        converged_run(folder / f"result_{i}.txt", value, batch_size, benchmark, seed=100 + i, values=values, **options)
    return folder
