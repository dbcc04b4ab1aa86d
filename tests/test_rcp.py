"""Reference convergence points: the port of MLPerf's rule against mlperf_logging.rcp_checker on that package's own
hpc 3.0.0 RCP files, and the check and write commands on constructed logs of a made-up mini RCP."""
import json
import math
import os
import subprocess
import sys

import pytest
import scipy.stats
from mlperf_logging.rcp_checker import rcp_checker

from benchmark.rcp.__main__ import main
from benchmark.rcp.check import NO_RCP, PASS, check_runs, epochs_to_converge
from benchmark.rcp.files import load, rcp_path
from benchmark.rcp.points import FULL, PRUNED, evaluate
from benchmark.results import parse_log
from benchmark.rules import CLOSED, MINI
from mlperf_logs import converged_run, submission, write_log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLPERF_RCPS = os.path.join(os.path.dirname(rcp_checker.__file__), "hpc_3.0.0")
N = MINI.runs  # runs per submission; the made-up RCPs have 2N per batch size, as MLPerf asks


def records(folder):
    return [parse_log(str(folder / f"result_{i}.txt")) for i in range(1, len(os.listdir(folder)) + 1)]


# ---------------------------------------------------------------- the port against mlperf_logging.rcp_checker


@pytest.mark.parametrize("benchmark", ["deepcam", "cosmoflow", "oc20", "openfold"])
def test_reference_points_and_pruning_match_mlperf_on_its_rcp_files(benchmark):
    mlperf = rcp_checker.RCP_Checker("hpc", "3.0.0", benchmark, False)
    runs = rcp_checker.submission_runs["hpc"][benchmark]
    ours = load(os.path.join(MLPERF_RCPS, f"rcps_{benchmark}.json"), benchmark, runs)
    assert [p.name for p in ours.full] == list(mlperf.rcp_data)
    for point in ours.full:
        record = mlperf.rcp_data[point.name]
        assert point.batch_size == record["BS"]
        assert point.mean == pytest.approx(record["RCP Mean"], rel=1e-12)
        assert point.stdev == pytest.approx(record["RCP Stdev"], rel=1e-12)
        assert point.min_epochs == pytest.approx(record["Min Epochs"], rel=1e-12)
        assert point.max_speedup == pytest.approx(record["Max Speedup"], rel=1e-12)
    assert [p.name for p in ours.pruned] == list(mlperf.pruned_rcp_data)


def test_deepcam_pruning_drops_points_slower_than_their_neighbours():
    # 256 (9 epochs) and 512 (11.1) converge slower than the line from 128 (6.9) to 1024 (13) and 2048 (22.6)
    ours = load(os.path.join(MLPERF_RCPS, "rcps_deepcam.json"), "deepcam", 5)
    assert [p.batch_size for p in ours.full] == [128, 256, 512, 1024, 2048]
    assert [p.batch_size for p in ours.pruned] == [128, 1024, 2048]


# (batch size, epochs to converge per run (None: did not converge), passes the pruned pass, passes the full pass)
DEEPCAM_SUBMISSIONS = [
    (128, [7, 7, 7, 7, 8], True, True),  # about the RCP mean (6.94)
    (128, [6, 7, 6, 7, 6], True, True),  # faster than the mean (6.33), within the allowed speedup: normalised
    (128, [5, 5, 5, 6, 5], False, False),  # too fast
    (128, [6, 7, 7, None, 7], True, True),  # one run missed: the slowest
    (128, [7, None, 7, None, 7], False, False),  # two missed
    (192, [8, 8, 8, 8, 8], True, True),  # interpolated: 128-1024 pruned, 128-256 full
    (192, [7, 7, 7, 7, 7], True, False),  # the full pass's neighbour (256, 9 epochs, stdev 0) is stricter
    (256, [8, 8, 8, 8, 8], True, False),  # pruned: interpolated from 128 and 1024; full: RCP found, 9 epochs
    (4096, [30, 30, 30, 30, 30], False, False),  # above every RCP
    (64, [7, 7, 7, 7, 7], True, True),  # below every RCP: held to the smallest, converges no faster
    (64, [5, 5, 5, 5, 5], False, False),  # below every RCP and faster than it
]


def mlperf_point(checker, batch_size, rcp_pass):
    """The record MLPerf's check_directory holds a submission at this batch size to (None: none)."""
    found = checker._find_rcp(batch_size, rcp_pass)
    low, high = checker._find_top_min_rcp(batch_size, rcp_pass), checker._find_bottom_max_rcp(batch_size, rcp_pass)
    if found is not None:
        return found
    if low is not None and high is not None:
        return checker._create_interp_rcp(batch_size, low, high)[1]
    return checker._find_min_rcp(rcp_pass) if high is not None else None


@pytest.mark.parametrize("batch_size, epochs, pruned_passes, full_passes", DEEPCAM_SUBMISSIONS)
def test_verdicts_and_numbers_match_mlperf_on_made_up_deepcam_submissions(tmp_path, batch_size, epochs, pruned_passes,
                                                                          full_passes):
    folder = submission(tmp_path, epochs, batch_size, values={"submission_benchmark": "deepcam"})
    references = load(os.path.join(MLPERF_RCPS, "rcps_deepcam.json"), "deepcam", 5)
    checker = rcp_checker.RCP_Checker("hpc", "3.0.0", "deepcam", False)
    for rcp_pass, expected in ((PRUNED, pruned_passes), (FULL, full_passes)):
        passed, message, norm = rcp_checker.check_directory(str(folder), "hpc", "3.0.0", False, False,
                                                            rcp_pass=rcp_pass)
        verdict = evaluate(references, batch_size, epochs_to_converge(records(folder)), rcp_pass)
        assert verdict.passed == passed == expected, (rcp_pass, message, verdict.reason)
        assert verdict.norm_factor == pytest.approx(norm, rel=1e-12)
        record = mlperf_point(checker, batch_size, rcp_pass)
        if record is None or epochs.count(None) > 1:
            assert verdict.point is None
            continue
        assert verdict.point.mean == pytest.approx(record["RCP Mean"], rel=1e-12)
        assert verdict.point.min_epochs == pytest.approx(record["Min Epochs"], rel=1e-12)
        assert verdict.point.max_speedup == pytest.approx(record["Max Speedup"], rel=1e-12)


def test_epochs_to_converge_are_read_as_mlperf_reads_them(tmp_path):
    log = write_log(tmp_path / "run.log", evals=((1.0, 0.2, 0.5), (2.0, 0.4, 1.0), (3.0, 0.6, 1.4999)))
    not_converged, epochs, batch_size, _ = rcp_checker.read_submission_file(log, "3.0.0", False)
    record = parse_log(log)
    assert (not_converged, epochs, batch_size) == (0, 1.5, 8)
    assert (record.epochs_to_converge, record.global_batch_size) == (1.5, 8)
    aborted = write_log(tmp_path / "aborted.log", status="aborted")
    assert rcp_checker.read_submission_file(aborted, "3.0.0", False)[0] == 1
    assert parse_log(aborted).epochs_to_converge is None


# ---------------------------------------------------------------- a made-up mini RCP

MINI_EPOCHS = {  # batch size: reference runs' epochs (olympic means 4.0, 4.5, 6.0: no point is pruned)
    4: [4.0, 3.5, 4.0, 4.5, 4.0, 4.0, 3.5, 4.5, 4.0, 4.0],
    8: [4.0, 4.0, 4.5, 4.5, 4.5, 5.0, 5.0, 4.5, 4.0, 5.0],
    16: [6.0, 5.5, 6.0, 6.5, 6.0, 6.0, 5.5, 6.5, 6.0, 6.0],
}


@pytest.fixture
def mini_rcps(tmp_path):
    path = tmp_path / "mini-rcps.json"
    path.write_text(json.dumps({f"mini_ref_{size}": {"Benchmark": "mini", "BS": size, "Hyperparams": {},
                                                     "Epochs to converge": epochs}
                                for size, epochs in MINI_EPOCHS.items()}))
    return str(path)


def mini_check(tmp_path, rcps, epochs, batch_size=8):
    folder = submission(tmp_path / f"submission-{batch_size}-{len(os.listdir(tmp_path))}", epochs, batch_size)
    return check_runs("mini", MINI.rules_version, records(folder), rcps)


def test_the_bound_is_the_one_sided_pooled_t_test(mini_rcps):
    point = {p.batch_size: p for p in load(mini_rcps, "mini", N).full}[8]
    runs = MINI_EPOCHS[8]
    assert point.mean == pytest.approx(4.5)
    assert point.stdev == pytest.approx(math.sqrt(0.15))  # every run 0.5 from 4.5 but four
    # the mean at which the one-sided test at alpha 0.05 starts to call a submission faster, in closed form
    reference_n, submission_n = len(runs) - 2, N - 2
    t = scipy.stats.t.ppf(0.95, reference_n + submission_n - 2)
    bound = point.mean - t * point.stdev * math.sqrt(1 / reference_n + 1 / submission_n)
    assert point.min_epochs == pytest.approx(bound, abs=1e-4)
    assert 4.0 < point.min_epochs < 4.1


def test_far_faster_than_the_rcp_fails(tmp_path, mini_rcps):
    outcome = mini_check(tmp_path, mini_rcps, [2.0] * N)
    assert outcome.status == "fail" and not outcome.passed
    assert outcome.reason == "RCP found, but the submission converges faster than it allows"
    assert outcome.verdict.submission_mean == 2.0 and outcome.verdict.norm_factor == pytest.approx(2.25)
    assert outcome.normalised_min is None


def test_at_the_rcp_mean_passes_unscaled(tmp_path, mini_rcps):
    outcome = mini_check(tmp_path, mini_rcps, [4.5] * N)
    assert outcome.status == PASS and outcome.reason == "RCP found"
    assert outcome.verdict.point.name == "mini_ref_8"
    assert outcome.verdict.norm_factor == 1.0
    assert outcome.time_to_train_min == pytest.approx(4.6)  # one minute per epoch, run_stop 0.1 after
    assert outcome.normalised_min == pytest.approx(4.6)


def test_faster_than_the_mean_within_the_allowed_speedup_passes_normalised(tmp_path, mini_rcps):
    epochs = ([4.0, 4.5] * N)[:N - 1] + [5.0]
    outcome = mini_check(tmp_path, mini_rcps, epochs)
    mean = sum(sorted(epochs)[1:-1]) / (N - 2)
    assert outcome.passed and outcome.verdict.submission_mean == pytest.approx(mean)
    assert mean < 4.5 and outcome.verdict.norm_factor == pytest.approx(4.5 / mean)
    assert outcome.time_to_train_min == pytest.approx(mean + 0.1, abs=1e-4)  # the logs' times are whole ms
    assert outcome.normalised_min == pytest.approx(outcome.time_to_train_min * 4.5 / mean)


def test_interpolation_between_two_batch_sizes(tmp_path, mini_rcps):
    at_8 = mini_check(tmp_path, mini_rcps, [4.5] * N, batch_size=8)
    at_12 = mini_check(tmp_path, mini_rcps, [4.5] * N, batch_size=12)
    assert at_8.passed and not at_12.passed  # 12 is held to the mean between 8 (4.5) and 16 (6.0): 5.25
    assert at_12.verdict.point.name == "mini_interp_12" and at_12.verdict.point.mean == pytest.approx(5.25)
    assert at_12.reason.startswith("RCP interpolated between batch sizes 8 and 16, but")
    assert mini_check(tmp_path, mini_rcps, [5.5] * N, batch_size=12).passed


def test_a_batch_size_above_every_rcp_fails(tmp_path, mini_rcps):
    outcome = mini_check(tmp_path, mini_rcps, [10.0] * N, batch_size=32)
    assert not outcome.passed and outcome.verdict.point is None
    assert outcome.reason == "batch size 32 is above every RCP (the largest is 16): it needs a new RCP at batch size 32"


def test_one_run_that_did_not_converge_is_the_slowest_and_two_fail(tmp_path, mini_rcps):
    one = mini_check(tmp_path, mini_rcps, [4.5] * (N - 1) + [None])
    assert one.passed and one.epochs[-1] == math.inf and one.verdict.submission_mean == 4.5
    two = mini_check(tmp_path, mini_rcps, [4.5] * (N - 2) + [None, None])
    assert not two.passed and two.verdict.point is None
    assert two.reason == f"insufficient convergence: 2 of {N} runs did not converge (at most one may)"


def test_fewer_runs_than_a_submission_needs_fail(tmp_path, mini_rcps):
    outcome = mini_check(tmp_path, mini_rcps, [4.5] * (N - 1))
    assert not outcome.passed and outcome.reason == f"incomplete: {N - 1} of {N} runs"


def test_closed_without_an_rcp_file_fails_naming_it(tmp_path):
    path = rcp_path("closed", CLOSED.rules_version)
    assert not os.path.exists(path)
    folder = submission(tmp_path, [10.0] * CLOSED.runs, benchmark="closed")
    outcome = check_runs("closed", CLOSED.rules_version, records(folder))
    assert outcome.status == NO_RCP and not outcome.passed
    assert outcome.reason.startswith(f"no RCP file benchmark/rcps/closed-{CLOSED.rules_version}.json: the closed "
                                     "benchmark")
    assert "python -m benchmark.rcp write --benchmark closed" in outcome.reason


# ---------------------------------------------------------------- the commands


def test_check_command_prints_the_numbers_and_exits_0_only_when_it_passes(tmp_path, mini_rcps, capsys):
    epochs = ([4.0, 4.5] * N)[:N - 1] + [5.0]
    passing = submission(tmp_path / "pass", epochs)
    assert main(["check", str(passing), "--rcps", mini_rcps]) == 0
    out = capsys.readouterr().out
    mean = sum(sorted(epochs)[1:-1]) / (N - 2)
    assert f"RCP file {mini_rcps}, pruned_rcps pass: batch sizes 4, 8, 16\n" in out
    assert f"{N} runs at global batch size 8, epochs to converge: {', '.join(f'{e:g}' for e in epochs)}\n" in out
    assert "mini_ref_8 (10 reference runs): mean 4.5000 epochs, stdev 0.3873; largest allowed speedup" in out
    assert f"submission: olympic mean {mean:.4f} epochs; normalisation factor {4.5 / mean:.4f} (faster than" in out
    time = mean + 0.1  # one minute per epoch, run_stop 0.1 after the last evaluation
    assert f"time to train: {time:.2f} min (olympic mean), normalised score {time * 4.5 / mean:.2f} min" in out
    assert out.endswith("RCP check PASSED: RCP found\n")
    failing = submission(tmp_path / "fail", [2.0] * N)
    assert main(["check", str(failing), "--rcps", mini_rcps, "--rcp-pass", "full_rcps"]) == 1
    assert capsys.readouterr().out.endswith(
        "RCP check FAILED: RCP found, but the submission converges faster than it allows\n")


def test_check_command_fails_a_submission_with_a_log_that_is_not_compliant(tmp_path, mini_rcps, capsys):
    folder = submission(tmp_path / "s", [4.5] * N)
    converged_run(folder / "result_2.txt", 4.5, drop=("eval_samples",))
    assert main(["check", str(folder), "--rcps", mini_rcps]) == 1
    out = capsys.readouterr().out
    assert (f"RCP check FAILED: 1 of {N} logs are no compliant result: {folder / 'result_2.txt'}: the compliance "
            "checker fails it: ") in out


def test_check_command_sets_aside_logs_of_older_rules_and_waits_for_a_whole_submission(tmp_path, mini_rcps, capsys):
    folder = submission(tmp_path / "s", [4.5] * 2, rules_version="0.9")  # an older definition's runs
    for i in range(3, N + 2):
        converged_run(folder / f"result_{i}.txt", 4.5, seed=100 + i)
    assert main(["check", str(folder), "--rcps", mini_rcps, "--if-complete"]) == 0
    assert capsys.readouterr().out == (f"RCP check: not yet a submission ({N - 1} of {N} runs under the current rules "
                                       f"stored in {folder}); it is checked once there are {N}\n")
    assert main(["check", str(folder), "--rcps", mini_rcps]) == 1  # without --if-complete: incomplete fails
    assert capsys.readouterr().out.endswith(f"RCP check FAILED: incomplete: {N - 1} of {N} runs\n")
    converged_run(folder / f"result_{N + 2}.txt", 4.5, seed=200)
    assert main(["check", str(folder), "--rcps", mini_rcps, "--if-complete"]) == 0
    out = capsys.readouterr().out
    assert "set aside: 2 logs of other rules versions (result_1.txt, result_2.txt)\n" in out
    assert out.endswith("RCP check PASSED: RCP found\n")
    older = submission(tmp_path / "older", [4.5] * N, rules_version="0.9")
    assert main(["check", str(older), "--rcps", mini_rcps]) == 2
    assert (f"error: no run in {older} ran under the mini benchmark's current rules (version {MINI.rules_version}): "
            f"its {N} logs belong to older ones") in capsys.readouterr().err


def test_check_command_of_closed_fails_without_its_rcp_file(tmp_path):
    folder = submission(tmp_path, [10.0] * CLOSED.runs, benchmark="closed")
    proc = subprocess.run([sys.executable, "-m", "benchmark.rcp", "check", str(folder)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert f"RCP check FAILED: no RCP file benchmark/rcps/closed-{CLOSED.rules_version}.json" in proc.stdout


def test_check_command_bad_input_is_one_line_and_exit_2(tmp_path, mini_rcps):
    malformed = submission(tmp_path / "malformed", [4.5] * N)
    with open(malformed / "result_3.txt", "a") as handle:
        handle.write(":::MLLOG {\n")
    (tmp_path / "empty").mkdir()
    bad_rcps = tmp_path / "bad.json"
    bad_rcps.write_text(json.dumps({"x": {"Benchmark": "deepcam", "BS": 8, "Epochs to converge": [1, 2, 3]}}))
    cases = [
        ([str(tmp_path / "absent")], f"error: no such folder {tmp_path / 'absent'}"),
        ([str(tmp_path / "empty")], f"error: no result_<i>.txt logs in {tmp_path / 'empty'}"),
        ([str(malformed)], f"error: {malformed / 'result_3.txt'}:"),
        ([str(submission(tmp_path / "ok", [4.5] * N)), "--rcps", str(bad_rcps)],
         f"error: RCP file {bad_rcps}, entry x: its Benchmark is 'deepcam', not 'mini'"),
        ([str(tmp_path / "ok"), "--rcps", str(tmp_path / "none.json")],
         f"error: cannot read RCP file {tmp_path / 'none.json'}: No such file or directory"),
    ]
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "benchmark.rcp", "check", *args], cwd=ROOT, capture_output=True,
                              text=True)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stdout == ""


def reference_runs(folder, batch_size, epochs, **options):
    """Stored reference runs at one batch size, one per entry of `epochs`."""
    for i, value in enumerate(epochs, start=1):
        converged_run(folder / f"bs{batch_size}" / f"result_{i}.txt", value, batch_size, seed=batch_size * 100 + i,
                      **options)


def test_write_builds_the_rcp_file_from_logs_and_never_overwrites_silently(tmp_path, capsys):
    logs = tmp_path / "results" / "rcp"
    alternating = {8: [4.0, 5.0] * N, 16: [5.5, 6.5] * N}  # 2N runs: olympic mean 4.5 and 6.0, stdev 0.5
    for size, epochs in alternating.items():
        reference_runs(logs, size, epochs)
    out = tmp_path / "rcps" / "mini.json"
    assert main(["write", "--benchmark", "mini", "--out", str(out), str(logs)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: {4 * N} reference runs, batch sizes 8, 16\n")
    assert f"         8  {2 * N:>4}       4.5000  0.5000" in printed
    written = json.loads(out.read_text())
    assert list(written) == ["mini_ref_8", "mini_ref_16"]
    entry = written["mini_ref_8"]
    assert entry["Benchmark"] == "mini" and entry["BS"] == 8
    assert entry["Epochs to converge"] == alternating[8]
    assert entry["Hyperparams"] == {"global_batch_size": 8, "gradient_accumulation_frequency": 1,
                                    "opt_base_learning_rate": 0.001, "opt_name": "adam"}
    # the day of write_log's run_start
    assert (entry["Platform"], entry["Precision"], entry["When"]) == ("testbox", "float32", "2023-11-14")
    assert entry["Logs"][0] == str(logs / "bs8" / "result_1.txt")  # outside the repository: absolute
    assert '"Epochs to converge": [4.0, 5.0, 4.0,' in out.read_text()  # one line, as MLPerf's files
    # the file it wrote is what check reads
    assert [p.mean for p in load(str(out), "mini", N).full] == [pytest.approx(4.5), pytest.approx(6.0)]
    before = out.read_text()
    assert main(["write", "--benchmark", "mini", "--out", str(out), str(logs / "bs8"), str(logs / "bs16")]) == 1
    assert capsys.readouterr().err == f"error: {out} exists; nothing written (give --force to replace it)\n"
    assert out.read_text() == before
    assert main(["write", "--benchmark", "mini", "--out", str(out), "--force", str(logs / "bs8")]) == 0
    assert capsys.readouterr().out.startswith(f"replaced {out}: {2 * N} reference runs, batch sizes 8\n")
    assert list(json.loads(out.read_text())) == ["mini_ref_8"]


def test_write_refuses_logs_that_are_no_reference_runs_and_writes_nothing(tmp_path, capsys):
    logs = tmp_path / "rcp"
    reference_runs(logs, 8, [4.5] * (2 * N))
    old = converged_run(logs / "bs8" / "result_2.txt", 4.5, seed=2, rules_version="0.9")
    aborted = converged_run(logs / "bs8" / "result_3.txt", None, seed=3)
    other = converged_run(logs / "bs8" / "result_4.txt", 4.5, seed=4, benchmark="closed")
    out = tmp_path / "mini.json"
    assert main(["write", "--benchmark", "mini", "--out", str(out), str(logs)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: 3 of {2 * N} logs are no reference run of the mini benchmark (rules "
                      f"{MINI.rules_version}); nothing written:")
    assert err[1].startswith(f"  {old}: it ran under rules version '0.9'")
    assert err[2] == f"  {aborted}: it did not converge (status aborted): every reference run must reach the target"
    assert err[3] == f"  {other}: it is a run of the 'closed' benchmark, not of 'mini'"
    assert not out.exists()


def test_write_refuses_too_few_runs_or_mixed_hyperparameters(tmp_path, capsys):
    logs = tmp_path / "rcp"
    reference_runs(logs, 8, [4.5] * (2 * N - 1))
    reference_runs(logs, 16, [6.0] * (2 * N))
    changed = converged_run(logs / "bs16" / "result_2.txt", 6.0, 16, seed=2, values={"opt_base_learning_rate": 0.002})
    out = tmp_path / "mini.json"
    assert main(["write", "--benchmark", "mini", "--out", str(out), str(logs)]) == 1
    first = logs / "bs16" / "result_1.txt"
    assert capsys.readouterr().err == (
        f"error: batch size 8 has {2 * N - 1} reference runs; an RCP needs at least {2 * N} (twice the {N} runs of a "
        f"submission); batch size 16: its runs differ in opt_base_learning_rate (0.001 in {first}, 0.002 in "
        f"{changed}): an RCP is one set of hyperparameters; nothing written\n")
    assert not out.exists()


def test_write_bad_input_exits_2(tmp_path, capsys):
    for args, message in [
        (["--benchmark", "bogus", str(tmp_path)], "error: unknown benchmark 'bogus'"),
        (["--benchmark", "throughput", str(tmp_path)],
         "error: the throughput benchmark is not scored by time to train"),
        (["--benchmark", "mini", "--rules-version", "0.9", str(tmp_path)], "error: rules version 0.9 is not the mini"),
        (["--benchmark", "mini", str(tmp_path / "absent")], f"error: no such log or folder {tmp_path / 'absent'}"),
        (["--benchmark", "mini", str(tmp_path)],
         f"error: no MLPerf logs (result_<i>.txt, mlperf.log) under {tmp_path}"),
    ]:
        assert main(["write", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err


def test_the_rcp_commands_import_no_framework():
    code = ("import sys, benchmark.rcp.__main__, benchmark.rcp.check; "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"
