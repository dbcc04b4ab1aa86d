"""MLPerf logs: what the harness writes passes the official checker with our ruleset, and bad logs fail it."""
import glob
import json
import os

import pytest
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.compliance.checker import check
from benchmark.compliance.ruleset import RULES_DIR, rendered
from benchmark.rules import MINI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_log(out, *extra):
    """The MLPerf log of a tiny training run with full validations."""
    status = main(["mode=train", "run.id=m", f"run.output_dir={out}", *TINY_NETWORK, "data.synthetic=true",
                   "data.synthetic_events=8", "run.minibatch_size=2", "run.iterations=4", "run.aux_iterations=2",
                   "run.aux_minibatch_size=4", "run.validation=full", "run.seed=3", "data.seed=4", *extra])
    assert status == 0
    return out / "mlperf.log"


@pytest.fixture(scope="module")
def real_log(tmp_path_factory):
    return train_log(tmp_path_factory.mktemp("mlperf") / "run")


def events(path):
    prefix = ":::MLLOG "
    return [json.loads(line.split(prefix, 1)[1]) for line in open(path) if prefix in line]


def write(path, items):
    with open(path, "w") as handle:
        for item in items:
            handle.write(":::MLLOG " + json.dumps(item) + "\n")
    return str(path)


def as_mini(items, reach=True, status="success"):
    """The real log relabelled as a mini-benchmark run (the ruleset is under test, not training)."""
    values = {"cosmictagger_benchmark": "mini", "train_samples": MINI.dataset.train.events,
              "eval_samples": MINI.dataset.validation.events, "image_downsample": MINI.settings["data.downsample"]}
    target = MINI.target
    out = []
    for item in items:
        item = json.loads(json.dumps(item))
        if item["key"] in values:
            item["value"] = values[item["key"]]
        if item["key"] == "eval_accuracy" and reach:
            item["metadata"].update(cosmic_iou=target.cosmic_iou + 0.01, neutrino_iou=target.neutrino_iou + 0.01,
                                    non_bkg_accuracy=target.non_bkg_accuracy + 0.01)
        if item["key"] == "run_stop":
            item["metadata"]["status"] = status
        out.append(item)
    return out


def test_the_harness_log_is_compliant(real_log):
    keys = [e["key"] for e in events(real_log)]
    for key in ("submission_benchmark", "cache_clear", "init_start", "seed", "number_of_ranks", "number_of_nodes",
                "accelerators_per_node", "global_batch_size", "gradient_accumulation_frequency", "opt_name",
                "opt_base_learning_rate", "train_samples", "eval_samples", "staging_start", "staging_stop",
                "init_stop", "run_start", "epoch_start", "epoch_stop", "eval_start", "eval_stop", "eval_accuracy",
                "tracked_stats", "run_stop"):
        assert key in keys, key
    result = check(str(real_log))
    assert result.passed, result.output


def test_a_tensorflow_log_is_compliant(tmp_path):
    log = train_log(tmp_path / "tf", "framework.name=tensorflow", "network.conv_mode=3D")
    assert [e["value"] for e in events(log) if e["key"] == "implementation"] == ["tensorflow-3D"]
    result = check(str(log))
    assert result.passed, result.output


def test_a_benchmark_log_that_reaches_its_target_passes(real_log, tmp_path):
    result = check(write(tmp_path / "mini.log", as_mini(events(real_log))))
    assert result.passed, result.output


@pytest.mark.parametrize(
    "name, mutate",
    [
        ("missed target, claims success", lambda items: as_mini(items, reach=False, status="success")),
        ("missed target, aborted", lambda items: as_mini(items, reach=False, status="aborted")),
        ("reached target, says aborted", lambda items: as_mini(items, reach=True, status="aborted")),
        ("no seed", lambda items: [i for i in as_mini(items) if i["key"] != "seed"]),
        ("wrong sample count", lambda items: [dict(i, value=1000) if i["key"] == "train_samples" else i for i in as_mini(items)]),
        ("no run_stop", lambda items: [i for i in as_mini(items) if i["key"] != "run_stop"]),
        ("two seeds", lambda items: as_mini(items) + [i for i in items if i["key"] == "seed"][:1] * 0
         + [dict(i, value=i["value"] + 1) for i in items if i["key"] == "seed"]),
        ("not cosmictagger", lambda items: [dict(i, value="deepcam") if i["key"] == "submission_benchmark" else i for i in items]),
    ],
)
def test_bad_logs_fail(real_log, tmp_path, name, mutate):
    result = check(write(tmp_path / "bad.log", mutate(events(real_log))))
    assert not result.passed, name


def test_rules_files_match_the_definitions():
    for name, text in rendered().items():
        with open(os.path.join(RULES_DIR, name)) as handle:
            assert handle.read() == text, f"{name} is stale: run python -m benchmark.compliance write-rules"


def test_committed_results_are_compliant():
    logs = sorted(glob.glob(os.path.join(ROOT, "results", "*", "*", "*", "result_*.txt")))
    for log in logs:
        result = check(log)
        assert result.passed, f"{log}: {result.problems()}"
