"""Stored results and scoring, on synthetic MLPerf logs written here."""
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import matplotlib.pyplot
import pytest

import benchmark.rcp.files
from benchmark.compliance.checker import check
from benchmark.errors import BenchmarkError
from benchmark.plots import metrics_figure, throughput_figure
from benchmark.results import collect, main, olympic_mean, parse_log, store, store_weak, summarize
from benchmark.rules import CLOSED, MINI
from mlperf_logs import submission, write_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def rcp_dir(tmp_path_factory, monkeypatch):
    """The folder summarize takes RCP files from: empty unless a test writes one (the repository's are not tested
    here)."""
    folder = tmp_path_factory.mktemp("rcps")
    monkeypatch.setattr(benchmark.rcp.files, "RCP_DIR", str(folder))
    return folder


def write_runs(root, runs, benchmark="mini", system="testbox", implementation="torch-2D"):
    """result_1.txt ... from (minutes, status) pairs."""
    folder = os.path.join(root, system, benchmark, implementation)
    for i, (minutes, status) in enumerate(runs, start=1):
        write_log(os.path.join(folder, f"result_{i}.txt"), minutes=minutes, status=status, benchmark=benchmark,
                  system=system, implementation=implementation)
    return folder


def only_row(root):
    rows = summarize(str(root))
    assert len(rows) == 1
    return rows[0]


# ---------------------------------------------------------------- store


def test_store_never_overwrites(tmp_path):
    log = write_log(tmp_path / "run.log")
    first = store(log, str(tmp_path / "results"), "testbox", "mini", "torch-2D")
    second = store(log, str(tmp_path / "results"), "testbox", "mini", "torch-2D")
    folder = tmp_path / "results" / "testbox" / "mini" / "torch-2D"
    assert (first, second) == (str(folder / "result_1.txt"), str(folder / "result_2.txt"))
    (folder / "result_1.txt").write_text("earlier run")
    assert store(log, str(tmp_path / "results"), "testbox", "mini", "torch-2D") == str(folder / "result_3.txt")
    assert (folder / "result_1.txt").read_text() == "earlier run"
    assert (folder / "result_3.txt").read_bytes() == open(log, "rb").read()


def test_store_goes_after_the_highest_index(tmp_path):
    folder = tmp_path / "testbox" / "mini" / "torch-2D"
    folder.mkdir(parents=True)
    (folder / "result_4.txt").write_text("kept")
    path = store(write_log(tmp_path / "run.log"), str(tmp_path), "testbox", "mini", "torch-2D")
    assert path == str(folder / "result_5.txt")
    assert (folder / "result_4.txt").read_text() == "kept"


def test_store_errors_are_one_line(tmp_path):
    with pytest.raises(BenchmarkError, match="cannot read log") as missing:
        store(str(tmp_path / "absent.log"), str(tmp_path), "testbox", "mini", "torch-2D")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BenchmarkError, match="cannot create results folder") as unwritable:
        store(write_log(tmp_path / "run.log"), str(blocker), "testbox", "mini", "torch-2D")
    with pytest.raises(BenchmarkError, match="unknown benchmark"):
        store(str(tmp_path / "run.log"), str(tmp_path), "testbox", "bogus", "torch-2D")
    with pytest.raises(BenchmarkError, match="folder name"):
        store(str(tmp_path / "run.log"), str(tmp_path), "../escape", "mini", "torch-2D")
    assert "\n" not in str(missing.value) + str(unwritable.value)


def test_store_command_prints_the_path(tmp_path, capsys):
    log = write_log(tmp_path / "run.log", benchmark="closed", implementation="i")
    args = ["store", log, "--root", str(tmp_path / "r"), "--system", "s", "--benchmark", "closed", "--implementation", "i"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "s" / "closed" / "i" / "result_1.txt")


# ---------------------------------------------------------------- store refuses what is no result of its folder

REFUSALS = [
    ({"benchmark": "none"},
     "it is an ordinary training run (cosmictagger_benchmark 'none'), not a run of the mini benchmark"),
    ({"benchmark": "closed"}, "it is a run of the 'closed' benchmark, not of 'mini'"),
    ({"implementation": "torch-3D"}, "its implementation is 'torch-3D', not 'torch-2D'"),
    ({"rules_version": "0.9"}, "it ran under rules version '0.9' of the mini benchmark, not the current 1.0"),
    ({"rules_version": None}, "it logs no cosmictagger_rules_version (the mini benchmark's rules are version 1.0)"),
    ({"values": {"train_samples": 1000}}, "the compliance checker fails it: CHECK for 'train_samples' failed in line"),
    ({"drop": ("seed",)}, "the compliance checker fails it: Required EXACTLY_ONE occurrence of 'seed' but found 0"),
    ({"values": {"image_downsample": 2}}, "the compliance checker fails it: CHECK for 'image_downsample' failed"),
]


@pytest.mark.parametrize("options, reason", REFUSALS)
def test_store_refuses_a_log_that_is_no_result_of_its_folder(tmp_path, capsys, options, reason):
    log = write_log(tmp_path / "run.log", **options)
    root = tmp_path / "results"
    args = ["store", log, "--root", str(root), "--system", "testbox", "--benchmark", "mini",
            "--implementation", "torch-2D"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {log} is not stored: {reason}"), err
    assert err.count("\n") == 1
    assert not root.exists()  # nothing written, not even a folder


def test_store_refuses_a_log_that_claims_a_target_it_missed(tmp_path):
    log = write_log(tmp_path / "run.log", status="aborted")  # no evaluation reached the target
    text = open(log).read().replace('"status": "aborted"', '"status": "success"')
    with open(log, "w") as handle:
        handle.write(text)
    with pytest.raises(BenchmarkError, match="the compliance checker fails it: failed test: .*s\\['hit'\\]"):
        store(log, str(tmp_path / "results"), "testbox", "mini", "torch-2D")
    assert not (tmp_path / "results").exists()


def test_store_refuses_a_malformed_log(tmp_path):
    log = write_log(tmp_path / "run.log")
    with open(log, "a") as handle:
        handle.write(':::MLLOG {"key": "run_stop", "time_ms": \n')
    with pytest.raises(BenchmarkError, match="malformed MLLOG line"):
        store(log, str(tmp_path / "results"), "testbox", "mini", "torch-2D")
    assert not (tmp_path / "results").exists()


def test_store_weak_refuses_a_job_with_one_bad_instance(tmp_path):
    good = [write_log(tmp_path / f"instance-{k}.log", seed=10 + k) for k in range(2)]
    bad = write_log(tmp_path / "bad.log", benchmark="none")
    root = tmp_path / "results"
    with pytest.raises(BenchmarkError) as error:
        store_weak([good[0], bad], str(root), "testbox", "mini", "torch-2D")
    assert str(error.value).startswith(f"{bad} is not stored: it is an ordinary training run")
    assert not root.exists()
    assert main(["store", "--weak", *good, "--root", str(root), "--system", "testbox", "--benchmark", "mini",
                 "--implementation", "torch-2D"]) == 0
    job = root / "testbox" / "mini" / "torch-2D" / "weak_1"
    assert sorted(os.listdir(job)) == ["result_0.txt", "result_1.txt"]


# ---------------------------------------------------------------- parsing


def test_parse_reads_a_run(tmp_path):
    record = parse_log(write_log(tmp_path / "run.log", minutes=12.5, evals=((3.0, 0.4, 1), (6.0, 0.6, 2))))
    assert (record.benchmark, record.system, record.implementation) == ("mini", "testbox", "torch-2D")
    assert (record.seed, record.global_batch_size, record.ranks) == (1234, 8, 2)
    assert record.status == "success" and record.converged
    assert record.time_to_train_s == pytest.approx(750.0)
    assert record.images_per_second == 50.0  # the last tracked_stats
    assert record.evals == [(pytest.approx(3.0), 0.4, 1), (pytest.approx(6.0), 0.6, 2)]


def test_parse_ignores_other_text_and_rank_prefixes(tmp_path):
    plain = parse_log(write_log(tmp_path / "plain.log"))
    prefixed = parse_log(write_log(tmp_path / "srun.log", prefix="0: "))
    assert prefixed.status == plain.status == "success"
    assert prefixed.time_to_train_s == plain.time_to_train_s
    assert prefixed.evals == plain.evals


def test_parse_without_run_stop_is_incomplete(tmp_path):
    record = parse_log(write_log(tmp_path / "run.log", stopped=False))
    assert record.status == "incomplete" and record.time_to_train_s is None
    assert not record.converged


def test_malformed_line_is_a_one_line_error(tmp_path):
    path = write_log(tmp_path / "run.log")
    with open(path, "a") as handle:
        handle.write(':::MLLOG {"key": "run_stop", "time_ms": \n')
    lineno = len(open(path).readlines())
    with pytest.raises(BenchmarkError) as error:
        parse_log(path)
    assert str(error.value).startswith(f"{path}:{lineno}: malformed MLLOG line")
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- scoring


def test_olympic_mean_drops_fastest_and_slowest():
    assert olympic_mean([10, 12, 13, 14, 30]) == 13.0


def test_five_runs_give_the_olympic_mean(tmp_path):
    write_runs(tmp_path, [(14, "success"), (10, "success"), (30, "success"), (12, "success"), (13, "success")])
    row = only_row(tmp_path)
    assert row.status == "valid" and row.converged == 5
    assert row.time_to_train_min == pytest.approx(13.0)


def test_one_aborted_run_counts_as_the_slowest(tmp_path):
    write_runs(tmp_path, [(10, "success"), (12, "success"), (3, "aborted"), (13, "success"), (14, "success")])
    row = only_row(tmp_path)
    assert row.status == "valid" and row.converged == 4
    assert row.time_to_train_min == pytest.approx(13.0)  # 10 dropped as fastest, the aborted run as slowest


def test_two_aborted_runs_are_invalid(tmp_path):
    write_runs(tmp_path, [(10, "success"), (12, "aborted"), (13, "success"), (14, "aborted"), (15, "success")])
    row = only_row(tmp_path)
    assert row.status == "invalid" and row.time_to_train_min is None
    assert row.time_to_train_text() == "invalid"


def test_fewer_runs_than_required_are_incomplete(tmp_path):
    write_runs(tmp_path, [(10, "success"), (12, "success"), (13, "success")])
    row = only_row(tmp_path)
    assert row.status == "incomplete"
    assert row.time_to_train_text() == "incomplete (3 of 5 runs)"


def test_only_the_first_required_runs_are_scored(tmp_path):
    runs = [(10, "success"), (12, "success"), (13, "success"), (14, "success"), (30, "success"), (1, "aborted"), (2, "aborted")]
    write_runs(tmp_path, runs)
    row = only_row(tmp_path)
    assert row.runs == 7 and row.status == "valid"
    assert row.time_to_train_min == pytest.approx(13.0)


def test_throughput_is_the_median_and_has_no_time_to_train(tmp_path):
    folder = tmp_path / "testbox" / "throughput" / "torch-2D"
    for i, rate in enumerate((30.0, 90.0, 60.0), start=1):
        write_log(folder / f"result_{i}.txt", benchmark="throughput", evals=(), throughput=(5.0, rate))
    row = only_row(tmp_path)
    assert row.images_per_second == 60.0
    assert row.status == "valid" and row.time_to_train_min is None
    assert row.time_to_train_text() == "n/a"


def test_a_failed_throughput_run_is_invalid(tmp_path):
    write_log(tmp_path / "testbox" / "throughput" / "torch-2D" / "result_1.txt", benchmark="throughput",
              status="aborted", evals=())
    row = only_row(tmp_path)
    assert row.status == "invalid" and row.runs == 0
    [rejected] = row.rejected
    assert rejected.reason.startswith("the compliance checker fails it: CHECK for 'run_stop' failed")


# ---------------------------------------------------------------- summarize checks every stored log again


def test_summarize_lists_every_log_that_is_no_compliant_result_and_invalidates_its_entry(tmp_path, capsys):
    write_runs(tmp_path, [(10, "success")] * 5)  # a valid entry beside
    folder = tmp_path / "testbox" / "mini" / "torch-3D"
    write_log(folder / "result_1.txt", implementation="torch-3D")
    write_log(folder / "result_2.txt", implementation="torch-3D", benchmark="none")
    write_log(folder / "result_3.txt", implementation="torch-3D", benchmark="closed")
    write_log(folder / "result_4.txt", implementation="torch-2D")
    write_log(folder / "result_5.txt", implementation="torch-3D", values={"train_samples": 1000})
    write_log(folder / "result_6.txt", implementation="torch-3D", drop=("run_start",))
    assert main(["summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| testbox | mini | 1.0 | torch-2D | 5 of 5 | 5 | 0 | 10.00 | no RCP | - | 0.0 % | 0.0 % | 50.00 | valid |" in out
    assert "| testbox | mini | 1.0 | torch-3D | 1 of 5 | 1 | 4 | invalid | - | - | - | - | 50.00 | invalid |" in out
    # as it logged
    assert "| testbox | mini | none | torch-3D | 0 of 5 | 0 | 1 | invalid | - | - | - | - | - | invalid |" in out
    reasons = [  # entry by entry, as the table lists them
        "- `testbox/mini/torch-3D/result_3.txt`: it is a run of the 'closed' benchmark, not of 'mini'",
        "- `testbox/mini/torch-3D/result_4.txt`: its implementation is 'torch-2D', not 'torch-3D'",
        "- `testbox/mini/torch-3D/result_5.txt`: the compliance checker fails it: CHECK for 'train_samples' failed",
        "- `testbox/mini/torch-3D/result_6.txt`: the compliance checker fails it: Required EXACTLY_ONE occurrence of "
        "'run_start' but found 0",
        "- `testbox/mini/torch-3D/result_2.txt`: it is an ordinary training run (cosmictagger_benchmark 'none'), "
        "not a run of the mini benchmark",
    ]
    listed = out[out.index("## Not scored"):].splitlines()[2:]
    assert len(listed) == len(reasons)
    for line, reason in zip(listed, reasons):
        assert line.startswith(reason), line
    assert (tmp_path / "summary.md").read_text().endswith(out)
    with open(tmp_path / "summary.csv") as handle:
        rows = {r["implementation"]: r for r in csv.DictReader(handle) if r["rules_version"] == "1.0"}
    assert (rows["torch-3D"]["not_compliant"], rows["torch-3D"]["status"]) == ("4", "invalid")


def test_summarize_lists_a_malformed_stored_log_instead_of_stopping(tmp_path):
    log = write_log(tmp_path / "testbox" / "mini" / "torch-2D" / "result_1.txt")
    with open(log, "a") as handle:
        handle.write(":::MLLOG {\n")
    row = only_row(tmp_path)
    assert row.status == "invalid" and row.rules_version is None  # what it logged cannot be read
    assert row.rejected[0].reason.startswith(f"{log}:") and "malformed MLLOG line" in row.rejected[0].reason


def test_runs_under_different_rules_versions_are_never_scored_together(tmp_path):
    folder = tmp_path / "testbox" / "mini" / "torch-2D"
    for i in range(1, 6):  # five fast runs under an older definition, then five under today's
        write_log(folder / f"result_{i}.txt", minutes=1, rules_version="0.9")
    for i, minutes in enumerate((14, 10, 30, 12, 13), start=6):
        write_log(folder / f"result_{i}.txt", minutes=minutes)
    older, current = summarize(str(tmp_path))
    assert (older.rules_version, older.runs, len(older.rejected), older.status) == ("0.9", 0, 5, "invalid")
    assert (current.rules_version, current.runs, len(current.rejected), current.status) == ("1.0", 5, 0, "valid")
    assert current.time_to_train_min == pytest.approx(13.0)
    assert older.rejected[0].reason == "it ran under rules version '0.9' of the mini benchmark, not the current 1.0"


def test_a_weak_scaling_job_with_a_bad_instance_is_invalid(tmp_path, capsys):
    parent = tmp_path / "testbox" / "mini" / "torch-2D"
    write_log(parent / "weak_1" / "result_0.txt")
    write_log(parent / "weak_1" / "result_1.txt", rules_version="0.9")
    write_log(parent / "weak_2" / "result_0.txt", minutes=9)
    write_log(parent / "weak_2" / "result_1.txt")
    assert main(["summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| testbox | mini | 0.9, 1.0 | torch-2D | weak_1 | 1 of 2 | 2 | 4 | invalid | invalid |" in out
    assert "| testbox | mini | 1.0 | torch-2D | weak_2 | 2 of 2 | 2 | 4 | 10.00 | valid |" in out
    assert "- `testbox/mini/torch-2D/weak_1/result_1.txt`: it ran under rules version '0.9'" in out


def test_summarize_checks_each_log_once(tmp_path, monkeypatch):
    import benchmark.results as results

    checked = []
    monkeypatch.setattr(results, "check", lambda log: checked.append(log) or check(log))
    write_runs(tmp_path, [(10, "success")] * 5)
    write_log(tmp_path / "testbox" / "mini" / "torch-2D" / "weak_1" / "result_0.txt")
    write_log(tmp_path / "testbox" / "mini" / "torch-2D" / "weak_1" / "result_1.txt")
    assert main(["summarize", str(tmp_path)]) == 0
    assert len(checked) == len(set(checked)) == 7


def test_summarize_removes_the_plots_of_entries_that_are_gone(tmp_path):
    write_runs(tmp_path, [(10, "success")] * 5)
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "accuracy_testbox_mini_torch-2D.png").write_bytes(PNG_MAGIC)  # an earlier layout's
    (plots / "accuracy_testbox_mini_rules1.0_torch-2D.png").write_bytes(PNG_MAGIC)  # and the one before
    (plots / "notes.txt").write_text("not summarize's")
    assert main(["summarize", str(tmp_path)]) == 0
    assert sorted(os.listdir(plots)) == ["metrics_testbox_mini_rules1.0_torch-2D.png", "notes.txt", "throughput.png"]


# ---------------------------------------------------------------- summarize: RCP checks, spread, plots

REFERENCE_EPOCHS = [4.0, 5.0] * 5  # the made-up mini RCP at batch size 8: olympic mean 4.5, stdev 0.5


def write_mini_rcps(folder):
    with open(folder / f"mini-{MINI.rules_version}.json", "w") as handle:
        json.dump({"mini_ref_8": {"Benchmark": "mini", "BS": 8, "Hyperparams": {},
                                  "Epochs to converge": REFERENCE_EPOCHS}}, handle)


def test_summarize_holds_each_valid_entry_to_its_rcp_and_shows_the_spread(tmp_path, rcp_dir, capsys):
    write_mini_rcps(rcp_dir)
    entry = tmp_path / "testbox" / "mini"
    submission(entry / "torch-2D", [4.0, 4.5, 4.0, 4.5, 5.0])  # olympic mean 4.333: faster, within the allowed
    submission(entry / "torch-3D", [3.0] * 5, implementation="torch-3D")  # too fast
    submission(tmp_path / "rcp" / "mini-1.0" / "bs8", REFERENCE_EPOCHS[:5])  # reference runs: not scored
    submission(tmp_path / "studies" / "explore" / "runs", [4.0] * 5)  # a convergence study's logs: not scored
    assert main(["summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # one minute per epoch and 0.1 to run_stop: time to train 4.43 (olympic), x 4.5 / 4.333 = 4.60;
    # CV: sample stdev / mean of 4.1, 4.6, 4.1, 4.6, 5.1 minutes and of 4, 4.5, 4, 4.5, 5 epochs
    assert "| testbox | mini | 1.0 | torch-2D | 5 of 5 | 5 | 0 | 4.43 | pass | 4.60 | 9.3 % | 9.5 % | 50.00 | valid |" in out
    assert "| testbox | mini | 1.0 | torch-3D | 5 of 5 | 5 | 0 | 3.10 | fail | - | 0.0 % | 0.0 % | 50.00 | valid |" in out
    assert out.count("| testbox |") == 2 and "| studies |" not in out  # results/rcp/ and studies/: no system's
    assert ("- testbox / mini (rules 1.0) / torch-2D: pass: RCP found (olympic mean 4.333 epochs at batch size 8; "
            "mini_ref_8: mean 4.500, at least 3.880; normalisation factor 1.0385)\n") in out
    assert ("- testbox / mini (rules 1.0) / torch-3D: fail: RCP found, but the submission converges faster than it "
            "allows (olympic mean 3.000 epochs at batch size 8; mini_ref_8: mean 4.500, at least 3.880)\n") in out
    with open(tmp_path / "summary.csv") as handle:
        rows = {r["implementation"]: r for r in csv.DictReader(handle)}
    assert (rows["torch-2D"]["rcp"], rows["torch-3D"]["rcp"]) == ("pass", "fail")
    assert float(rows["torch-2D"]["normalised_time_to_train_min"]) == pytest.approx(
        float(rows["torch-2D"]["time_to_train_min"]) * 4.5 / (13 / 3))
    assert rows["torch-3D"]["normalised_time_to_train_min"] == ""
    assert float(rows["torch-2D"]["time_to_train_cv"]) == pytest.approx(math.sqrt(0.7 / 4) / 4.5, rel=1e-4)
    assert float(rows["torch-2D"]["epochs_to_converge_cv"]) == pytest.approx(math.sqrt(0.7 / 4) / 4.4)


def test_the_metrics_plot_shows_each_target_metric_its_threshold_and_the_rcp_band(tmp_path, rcp_dir):
    write_mini_rcps(rcp_dir)
    submission(tmp_path / "testbox" / "mini" / "torch-2D", [4.0, 4.5, 4.0, 4.5, 5.0])
    results = collect(str(tmp_path))
    [(key, runs)] = results.runs.items()
    point = results.rows[0].rcp.verdict.point
    fig = metrics_figure(key, runs, point)
    target = MINI.target
    thresholds = (target.cosmic_iou, target.neutrino_iou, target.non_bkg_accuracy)
    assert len(fig.axes) == 3
    for ax, threshold in zip(fig.axes, thresholds):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines["the target's threshold"].get_ydata()) == [threshold, threshold]
        assert ax.get_ylabel().endswith(f"(target >= {threshold})")
        # result_5.txt: missed at epoch 2.5, reached at 5 (write_log logs each metric 0.01 under, then over)
        assert list(lines["result_5.txt"].get_xdata()) == [2.5, 5.0]
        assert list(lines["result_5.txt"].get_ydata()) == pytest.approx([threshold - 0.01, threshold + 0.01])
        [band] = ax.patches
        assert band.get_x() == pytest.approx(point.min_epochs) and band.get_x() + band.get_width() == pytest.approx(4.5)
    matplotlib.pyplot.close(fig)


def test_the_throughput_plot_has_a_log_scale(tmp_path):
    write_log(tmp_path / "cpu" / "throughput" / "torch-2D" / "result_1.txt", benchmark="throughput", evals=(),
              throughput=(5.0, 60.0))
    write_log(tmp_path / "h200" / "throughput" / "torch-2D" / "result_1.txt", benchmark="throughput", evals=(),
              throughput=(5.0, 6000.0))
    fig = throughput_figure(summarize(str(tmp_path)))
    [ax] = fig.axes
    assert ax.get_yscale() == "log"
    assert sorted(bar.get_height() for bar in ax.patches) == [60.0, 6000.0]
    matplotlib.pyplot.close(fig)


# ---------------------------------------------------------------- run_benchmark.sh stores compliant logs only

FAKE_LAUNCHER = """#!/usr/bin/env bash
# Stands in for the training run: writes the prepared MLPerf log where the run would have.
for arg in "$@"; do case "$arg" in run.output_dir=*) out=${arg#run.output_dir=} ;; esac; done
mkdir -p "$out" && cp "$FAKE_MLPERF_LOG" "$out/mlperf.log"
"""


def run_benchmark_with_log(tmp_path, log, options=("--benchmark", "throughput")):
    """run_benchmark.sh (one throughput run unless `options` say otherwise) whose 'training' writes `log`; the
    runs' output folders are removed."""
    launcher = tmp_path / "fake_run.sh"
    launcher.write_text(FAKE_LAUNCHER)
    launcher.chmod(0o755)
    root = tmp_path / "results"
    proc = subprocess.run(["bash", "run_benchmark.sh", "--system", "cpu-2core-debian12", *options,
                           "--results", str(root), "--launcher", str(launcher)],
                          cwd=ROOT, env=dict(os.environ, FAKE_MLPERF_LOG=str(log)), capture_output=True, text=True,
                          timeout=600)
    out = [line.split("output ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("=== run ")]
    assert out, proc.stdout + proc.stderr
    for folder in out:
        shutil.rmtree(os.path.join(ROOT, folder))
    stored = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
                    if f.startswith("result_"))
    return proc, stored


def test_run_benchmark_does_not_store_a_log_that_fails_the_checker(tmp_path):
    log = write_log(tmp_path / "mlperf.log", benchmark="throughput", system="cpu-2core-debian12", rules_version="0.9")
    proc, stored = run_benchmark_with_log(tmp_path, log)
    assert proc.returncode != 0
    assert "run 1: not stored in" in proc.stderr and "fails the compliance checker" in proc.stderr
    assert stored == []


def test_run_benchmark_stores_a_compliant_log(tmp_path):
    log = write_log(tmp_path / "mlperf.log", benchmark="throughput", system="cpu-2core-debian12")
    proc, stored = run_benchmark_with_log(tmp_path, log)
    assert proc.returncode == 0, proc.stderr
    assert stored == [os.path.join("cpu-2core-debian12", "throughput", "torch-2D", "result_1.txt")]
    assert ("| cpu-2core-debian12 | throughput | 1.0 | torch-2D | 1 of 1 | 1 | 0 | n/a | - | - | - | - | 50.00 | valid |"
            in proc.stdout)
    assert "RCP check" not in proc.stdout + proc.stderr  # throughput has no convergence to check


def test_run_benchmark_runs_the_rcp_check_once_a_submission_is_stored_and_reports_its_failure(tmp_path):
    # closed has no RCP file yet (tests/test_rcp.py checks that), so its submission fails the check
    log = write_log(tmp_path / "mlperf.log", benchmark="closed", system="cpu-2core-debian12")
    data = ("--benchmark", "closed", "--data-dir", str(tmp_path))
    folder = tmp_path / "results" / "cpu-2core-debian12" / "closed" / "torch-2D"
    proc, stored = run_benchmark_with_log(tmp_path, log, data + ("--runs", str(CLOSED.runs - 1)))
    assert proc.returncode == 0, proc.stderr
    assert len(stored) == CLOSED.runs - 1
    assert (f"RCP check: not yet a submission ({CLOSED.runs - 1} of {CLOSED.runs} runs under the current rules "
            f"stored in {folder}); it is checked once there are {CLOSED.runs}") in proc.stdout
    proc, stored = run_benchmark_with_log(tmp_path, log, data)
    assert proc.returncode == 1 and len(stored) == CLOSED.runs
    assert f"RCP check FAILED: no RCP file benchmark/rcps/closed-{CLOSED.rules_version}.json" in proc.stdout
    assert proc.stderr.endswith(f"error: the submission in {folder} fails the RCP check (see above): it is no valid "
                                "result\n")
    assert "| cpu-2core-debian12 | closed | 1.0 | torch-2D | 5 of 5 | 5 | 0 | 10.00 | no RCP | - |" in proc.stdout


# ---------------------------------------------------------------- command line


def test_summarize_command_writes_tables_and_plots(tmp_path, capsys):
    write_runs(tmp_path, [(10, "success"), (12, "success"), (13, "aborted"), (14, "success"), (30, "success")])
    write_log(tmp_path / "other" / "throughput" / "torch-2D" / "result_1.txt", benchmark="throughput", evals=())
    assert main(["summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # time to train CV: sample stdev of 10, 12, 14, 30 minutes / their mean; every run converged at epoch 1
    assert "| testbox | mini | 1.0 | torch-2D | 5 of 5 | 4 | 0 | 18.67 | no RCP | - | 55.4 % | 0.0 % | 50.00 | valid |" in out
    assert "Not scored" not in out
    assert (tmp_path / "summary.md").read_text().endswith(out)
    with open(tmp_path / "summary.csv") as handle:
        rows = {(r["system"], r["benchmark"], r["rules_version"]): r for r in csv.DictReader(handle)}
    assert float(rows["testbox", "mini", "1.0"]["time_to_train_min"]) == pytest.approx(56 / 3)
    assert rows["testbox", "mini", "1.0"]["not_compliant"] == "0"
    assert rows["other", "throughput", "1.0"]["time_to_train_min"] == ""
    assert rows["other", "throughput", "1.0"]["status"] == "valid"
    plots = tmp_path / "plots"
    assert sorted(os.listdir(plots)) == ["metrics_testbox_mini_rules1.0_torch-2D.png", "throughput.png"]
    for name in os.listdir(plots):
        assert (plots / name).read_bytes()[:8] == PNG_MAGIC


def test_summarize_empty_folder_is_one_line_error(tmp_path, capsys):
    assert main(["summarize", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no result files") and err.count("\n") == 1


def test_summarize_missing_folder_exits_1_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmark.results", "summarize", str(tmp_path / "absent")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == f"error: no results folder {tmp_path / 'absent'}\n"
    assert result.stdout == ""
