"""MLPerf logs: what the harness writes passes the official checker with our ruleset, and bad logs fail it."""
import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
from mlperf_logs import events, relabel, write
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.compliance.checker import check
from benchmark.compliance.ruleset import RULES_DIR, render, rendered
from benchmark.rules import BENCHMARKS, MINI

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


def as_mini(items, reach=True, status="success"):
    """The real log relabelled as a mini-benchmark run (the ruleset is under test, not training)."""
    return relabel(items, "mini", reach=reach, status=status)


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


@pytest.mark.parametrize("reach, status", [(True, "success"), (False, "aborted")])
def test_a_benchmark_log_whose_status_says_whether_it_reached_its_target_passes(real_log, tmp_path, reach, status):
    """An aborted run that missed its target is a faithful log: the score counts it as the slowest run."""
    result = check(write(tmp_path / "mini.log", as_mini(events(real_log), reach=reach, status=status)))
    assert result.passed, result.output


@pytest.mark.parametrize(
    "name, mutate",
    [
        ("missed target, claims success", lambda items: as_mini(items, reach=False, status="success")),
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


# -- rules versions -----------------------------------------------------------------------------------


def with_version(items, version):
    """The events with cosmictagger_rules_version set to `version` (None: without the key)."""
    version_key = "cosmictagger_rules_version"
    return [dict(i, value=version) if i["key"] == version_key else i for i in items
            if i["key"] != version_key or version is not None]


def test_every_run_logs_its_rules_version(real_log, tmp_path):
    from benchmark import config
    from benchmark.mlperf_events import log_submission
    from benchmark.mlperf_log import MLPerfLog

    assert [e["value"] for e in events(real_log) if e["key"] == "cosmictagger_rules_version"] == ["none"]
    system = {"submitter": "s", "division": "open", "status": "research", "system_name": "x"}
    for name, definition in BENCHMARKS.items():
        mlog = MLPerfLog(str(tmp_path / f"{name}.log"))
        log_submission(mlog, config.load([f"benchmark={name}", "run.id=x"]), system, "torch-2D")
        mlog.close()
        logged = {e["key"]: e["value"] for e in events(tmp_path / f"{name}.log")}
        assert logged["cosmictagger_rules_version"] == definition.rules_version == "1.0"


def test_each_definition_has_a_rules_version_its_ruleset_requires():
    for name, definition in BENCHMARKS.items():
        assert isinstance(definition.rules_version, str) and definition.rules_version
        assert f"v['value'] == '{definition.rules_version}'" in render(definition)


@pytest.mark.parametrize("version, starts, ends", [
    (None, "Required EXACTLY_ONE occurrence of 'cosmictagger_rules_version' but found 0", ""),
    ("0.9", "CHECK for 'cosmictagger_rules_version' failed in line ",
     "failed test: v['value'] == '1.0' # the current rules version of the mini benchmark"),
])
def test_a_log_without_the_current_rules_version_fails(real_log, tmp_path, version, starts, ends):
    result = check(write(tmp_path / "old.log", with_version(as_mini(events(real_log)), version)))
    assert not result.passed
    assert result.first_problem().startswith(starts) and result.first_problem().endswith(ends)
    assert result.problem_list() == [result.first_problem()]  # the only problem


def test_an_ordinary_run_logs_no_rules_version_of_a_benchmark(real_log, tmp_path):
    result = check(write(tmp_path / "none.log", with_version(events(real_log), "1.0")))
    assert not result.passed and "v['value'] == 'none'" in result.first_problem()


def test_a_bumped_definition_fails_the_logs_of_the_one_before(real_log, tmp_path):
    """The rules folder is relocatable (common.yaml finds its own folder): a bumped mini ruleset there fails a log
    of today's mini definition, naming the version."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "cosmictagger_mini.yaml").write_text(render(dataclasses.replace(MINI, rules_version="1.1")))
    log = write(tmp_path / "mini.log", as_mini(events(real_log)))
    command = [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "hpc", "--ruleset", "3.0.0",
               "--log_output", os.devnull, "--config"]
    assert subprocess.run(command + [os.path.join(RULES_DIR, "common.yaml"), log], capture_output=True).returncode == 0
    bumped = subprocess.run(command + [str(rules / "common.yaml"), log], capture_output=True, text=True)
    assert bumped.returncode == 1
    assert "v['value'] == '1.1'  # the current rules version of the mini benchmark" in bumped.stderr


# -- the official checker as a reviewer runs it --------------------------------------------------------


def readme_command(log):
    """The checker's command as the README shows it, with this checkout's rules folder."""
    return [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "hpc", "--ruleset", "3.0.0",
            "--config", os.path.join(ROOT, "benchmark", "compliance", "rules", "common.yaml"), log]


def test_the_official_checker_runs_from_any_folder_without_a_variable(real_log, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSMICTAGGER")}
    good = write(tmp_path / "mini.log", as_mini(events(real_log)))
    bad = write(tmp_path / "missed.log", as_mini(events(real_log), reach=False, status="success"))
    for log, status in ((good, 0), (str(real_log), 0), (bad, 1)):
        run = subprocess.run(readme_command(log), cwd=elsewhere, env=env, capture_output=True, text=True)
        assert run.returncode == status, run.stdout + run.stderr
    run = subprocess.run(readme_command(good), cwd=elsewhere, env=env, capture_output=True, text=True)
    assert "cosmictagger_mini.yaml" in run.stderr  # dispatched to the benchmark's own rules


def test_the_checker_runs_the_readme_command():
    from benchmark.compliance.checker import command

    assert command("LOG") == readme_command("LOG")


def test_the_committed_summary_is_what_the_stored_logs_say(tmp_path):
    """results/summary.* are what summarize writes today from the stored logs (which it checks again)."""
    from benchmark.results import write_reports

    copy = tmp_path / "results"
    shutil.copytree(os.path.join(ROOT, "results"), copy)
    write_reports(str(copy))
    for name in ("summary.md", "summary.csv"):
        with open(os.path.join(ROOT, "results", name)) as committed:
            assert (copy / name).read_text() == committed.read(), f"results/{name} is stale: run summarize"
