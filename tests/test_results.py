"""Stored results and scoring, on synthetic MLPerf logs written here."""
import csv
import json
import os
import subprocess
import sys

import pytest

from benchmark.errors import BenchmarkError
from benchmark.results import main, olympic_mean, parse_log, store, summarize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_MS = 1_700_000_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def mllog(time_ms, key, value=None, event_type="POINT_IN_TIME", **metadata):
    """One line as mllog writes it."""
    line = {"namespace": "", "time_ms": time_ms, "event_type": event_type, "key": key, "value": value,
            "metadata": {"file": "train.py", "lineno": 1, **metadata}}
    return ":::MLLOG " + json.dumps(line)


def write_log(path, minutes=10.0, status="success", benchmark="mini", system="testbox", implementation="torch-2D",
              evals=((0.5, 0.3, 0.5), (1.0, 0.5, 1.0)), throughput=(40.0, 50.0), seed=1234, prefix="",
              stopped=True):
    """A realistic run log: header events, evals at (minute, mIoU, epoch), tracked throughput, run_stop."""
    lines = ["running on testbox", mllog(START_MS - 5000, "init_start", event_type="INTERVAL_START")]
    lines += [mllog(START_MS - 4000, key, value) for key, value in (
        ("submission_benchmark", "cosmictagger"), ("submission_platform", system),
        ("cosmictagger_benchmark", benchmark), ("implementation", implementation), ("seed", seed),
        ("global_batch_size", 8), ("number_of_ranks", 2))]
    lines.append(mllog(START_MS, "run_start", event_type="INTERVAL_START"))
    for step, rate in enumerate(throughput, start=1):
        lines.append(mllog(START_MS + 1000 * step, "tracked_stats", {"throughput": rate}, step_num=10 * step))
        lines.append("step %d loss 0.3" % step)
    for minute, miou, epoch in evals:
        lines.append(mllog(START_MS + int(minute * 60000), "eval_accuracy", miou, epoch_num=epoch, step_num=100,
                           cosmic_iou=0.9, neutrino_iou=0.4, non_bkg_accuracy=0.7))
    if stopped:
        lines.append(mllog(START_MS + int(minutes * 60000), "run_stop", event_type="INTERVAL_END", status=status))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(prefix + line + "\n" for line in lines))
    return str(path)


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
    log = write_log(tmp_path / "run.log")
    args = ["store", log, "--root", str(tmp_path / "r"), "--system", "s", "--benchmark", "closed", "--implementation", "i"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "s" / "closed" / "i" / "result_1.txt")


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
    assert only_row(tmp_path).status == "invalid"


# ---------------------------------------------------------------- command line


def test_summarize_command_writes_tables_and_plots(tmp_path, capsys):
    write_runs(tmp_path, [(10, "success"), (12, "success"), (13, "aborted"), (14, "success"), (30, "success")])
    write_log(tmp_path / "other" / "throughput" / "torch-2D" / "result_1.txt", benchmark="throughput", evals=())
    assert main(["summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| testbox | mini | torch-2D | 5 of 5 | 4 | 18.67 | 50.00 | valid |" in out
    assert (tmp_path / "summary.md").read_text().endswith(out)
    with open(tmp_path / "summary.csv") as handle:
        rows = {(r["system"], r["benchmark"]): r for r in csv.DictReader(handle)}
    assert float(rows["testbox", "mini"]["time_to_train_min"]) == pytest.approx(56 / 3)
    assert rows["other", "throughput"]["time_to_train_min"] == ""
    assert rows["other", "throughput"]["status"] == "valid"
    plots = tmp_path / "plots"
    assert sorted(os.listdir(plots)) == ["accuracy_testbox_mini_torch-2D.png", "throughput.png"]
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
