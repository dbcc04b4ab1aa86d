"""Convergence studies (benchmark.convergence): running seeds, resuming, keeping interrupted runs aside, the
report's numbers and figure, and one-line refusals of bad input.

Most tests run tests/fake_training_run.py in place of bin/exec.py (the same settings, a constructed MLPerf log
in a fraction of a second); one slow test studies real tiny explore runs end to end."""
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmark.convergence import records, report, stats
from benchmark.convergence.__main__ import main
from benchmark.convergence.records import Evaluation, RunRecord
from benchmark.convergence.spec import StudySpec, plan
from benchmark.convergence.study import StudyFolder, core_slots, run_study
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.rules import MINI, Target
import mlperf_logs
from fake_training_run import EVALUATIONS, curve
from tiny import TINY_NETWORK

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = [sys.executable, os.path.join(HERE, "fake_training_run.py")]
MINI_TARGET = Target(cosmic_iou=0.65, neutrino_iou=0.35, non_bkg_accuracy=0.75)


def data_folder(tmp_path):
    """A folder where the mini definition's files exist (the fake run never reads them)."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    for name in ("cosmic_tagging_train.h5", "cosmic_tagging_val.h5"):
        (folder / name).write_bytes(b"")
    return str(folder)


def mini_plan(tmp_path, *sets):
    return plan("mini", [f"data.data_directory={data_folder(tmp_path)}", *sets])


def tree_digest(folder):
    """Every file below `folder` with its sha256 and modification time."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, folder)] = (hashlib.sha256(handle.read()).hexdigest(),
                                                        os.stat(path).st_mtime_ns)
    return found


def fake_seed_result(seed):
    """(epochs, evaluations, minutes) of a fake mini run by the fake's own formula and the target's rule."""
    for k in range(1, EVALUATIONS + 1):
        cosmic, neutrino, accuracy = curve(seed, k)
        if cosmic >= 0.65 and neutrino >= 0.35 and accuracy >= 0.75:
            return k / 2, k, (60_000 * k + 500) / 60_000
    return None


# ---------------------------------------------------------------- running and resuming (the fake run)


def test_a_study_publishes_each_seed_with_its_curve_and_mlperf_reading(tmp_path, capsys):
    out = tmp_path / "study"
    assert run_study(mini_plan(tmp_path), str(out), [1, 2, 3], program=FAKE) == [1, 2, 3]
    for seed in (1, 2, 3):
        run = out / "runs" / f"seed-{seed}"
        record = records.load(str(run / "record.json"))
        events = mlperf_logs.events(run / "mlperf.log")
        evals = [e for e in events if e["key"] == "eval_accuracy"]
        start = next(e["time_ms"] for e in events if e["key"] == "run_start")
        stop = next(e for e in events if e["key"] == "run_stop")
        epochs, count, minutes = fake_seed_result(seed)
        assert record.status == stop["metadata"]["status"] == "success"
        assert record.epochs_to_target == evals[-1]["metadata"]["epoch_num"] == epochs
        assert record.time_to_train_s == (stop["time_ms"] - start) / 1000 == pytest.approx(minutes * 60)
        assert [(e.epoch, e.step, e.cosmic_iou, e.neutrino_iou, e.non_bkg_accuracy, e.miou, e.seconds)
                for e in record.evaluations] == [
            (e["metadata"]["epoch_num"], e["metadata"]["step_num"], e["metadata"]["cosmic_iou"],
             e["metadata"]["neutrino_iou"], e["metadata"]["non_bkg_accuracy"], e["value"],
             (e["time_ms"] - start) / 1000) for e in evals]
        assert len(record.evaluations) == count
        assert record.seed == seed and record.parallel == 1 and record.implementation == "fake"
        assert "benchmark=mini" in record.command and f"run.seed={seed}" in record.command
        assert f"data.seed={seed}" in record.command
        assert (run / "console.log").read_text() == f"fake run of seed {seed}: success\n"
    assert json.loads((out / "study.json").read_text())["benchmark"] == "mini"
    assert os.listdir(out / "running") == []


def test_a_started_again_study_skips_finished_seeds_and_leaves_their_files_byte_identical(tmp_path, capsys):
    out = str(tmp_path / "study")
    study = mini_plan(tmp_path)
    run_study(study, out, [1, 2], program=FAKE)
    before = tree_digest(os.path.join(out, "runs"))
    assert run_study(mini_plan(tmp_path), out, [1, 2, 3], program=FAKE) == [3]
    assert "seeds 1, 2: finished before, skipped" in capsys.readouterr().out
    after = tree_digest(os.path.join(out, "runs"))
    assert {k: v for k, v in after.items() if not k.startswith("seed-3")} == before
    assert "seed-3/record.json" in after


def test_an_interrupted_runs_leftovers_are_kept_aside_and_its_seed_runs_again(tmp_path, capsys):
    out = tmp_path / "study"
    run_study(mini_plan(tmp_path), str(out), [1], program=FAKE)
    partial = out / "running" / "seed-2"
    partial.mkdir()
    items = mlperf_logs.events(out / "runs" / "seed-1" / "mlperf.log")
    cut = [e for e in items if e["key"] != "run_stop"][:-2]  # stopped mid-run: no run_stop
    mlperf_logs.write(partial / "mlperf.log", cut)
    (partial / "console.log").write_text("step 3/512 ...\n")
    left = tree_digest(partial)
    assert run_study(mini_plan(tmp_path), str(out), [1, 2], program=FAKE) == [2]
    kept = out / "interrupted" / "seed-2.1"
    assert tree_digest(kept) == left
    assert f"seed 2: an interrupted run's folder is kept as {kept}" in capsys.readouterr().out
    record = records.load(str(out / "runs" / "seed-2" / "record.json"))
    assert record.status == "success" and record.epochs_to_target == fake_seed_result(2)[0]
    # a second interruption of the same seed goes beside the first, which stays as it was
    (out / "running" / "seed-3").mkdir()
    run_study(mini_plan(tmp_path), str(out), [3], program=FAKE)
    (out / "running" / "seed-3").mkdir()
    run_study(mini_plan(tmp_path), str(out), [3], program=FAKE)
    assert sorted(os.listdir(out / "interrupted")) == ["seed-2.1", "seed-3.1", "seed-3.2"]
    assert tree_digest(kept) == left


def test_a_failed_run_is_kept_and_stops_the_study_and_its_seed_runs_at_the_next_start(tmp_path, monkeypatch):
    out = tmp_path / "study"
    monkeypatch.setenv("FAKE_FAIL_SEED", "2")
    with pytest.raises(BenchmarkError) as failure:
        run_study(mini_plan(tmp_path), str(out), [1, 2, 3], program=FAKE)
    message = str(failure.value)
    assert "seed 2 failed (exit status 1: error: a simulated failure)" in message
    assert "\n" not in message
    assert sorted(os.listdir(out / "runs")) == ["seed-1"]  # seed 3 was not started
    assert (out / "failed" / "seed-2.1" / "console.log").read_text() == "error: a simulated failure\n"
    monkeypatch.delenv("FAKE_FAIL_SEED")
    assert run_study(mini_plan(tmp_path), str(out), [1, 2, 3], program=FAKE) == [2, 3]


def test_a_stopped_study_interrupts_its_runs_and_the_next_start_redoes_them(tmp_path):
    """SIGTERM to the study (as Ctrl-C): the running seed is told to stop and stays unpublished; no later seed
    starts; the next start keeps its folder aside and runs it again."""
    out = tmp_path / "study"
    script = (f"import sys; sys.path.insert(0, {HERE!r})\n"
              "from test_convergence import FAKE, mini_plan\n"
              "from benchmark.convergence.study import run_study\n"
              "import pathlib\n"
              "try:\n"
              f"    run_study(mini_plan(pathlib.Path({str(tmp_path)!r})), {str(out)!r}, [1, 2], program=FAKE)\n"
              "except KeyboardInterrupt:\n"
              "    sys.exit(130)\n")
    study = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "FAKE_HANG_SEED": "1"},
                             cwd=os.path.dirname(HERE), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "running" / "seed-1" / "mlperf.log"
    deadline = time.monotonic() + 60
    while not log.exists() and time.monotonic() < deadline and study.poll() is None:
        time.sleep(0.05)
    assert log.exists(), study.communicate()[0]
    study.send_signal(signal.SIGTERM)
    output = study.communicate(timeout=60)[0]
    assert study.returncode == 130, output
    assert os.listdir(out / "runs") == [] and os.listdir(out / "running") == ["seed-1"]
    assert "interrupted" in (out / "running" / "seed-1" / "console.log").read_text()  # it got SIGINT and logged
    assert [e["metadata"]["status"] for e in mlperf_logs.events(log) if e["key"] == "run_stop"] == ["aborted"]
    left = tree_digest(out / "running" / "seed-1")
    assert run_study(mini_plan(tmp_path), str(out), [1, 2], program=FAKE) == [1, 2]
    assert tree_digest(out / "interrupted" / "seed-1.1") == left


def test_a_run_that_misses_the_target_is_published_as_aborted(tmp_path, monkeypatch):
    out = tmp_path / "study"
    monkeypatch.setenv("FAKE_MISS_SEED", "2")
    run_study(mini_plan(tmp_path), str(out), [1, 2], program=FAKE)
    record = records.load(str(out / "runs" / "seed-2" / "record.json"))
    assert record.status == "aborted" and record.epochs_to_target is None
    assert len(record.evaluations) == EVALUATIONS


def test_parallel_runs_get_disjoint_cores_and_their_share_of_threads(tmp_path):
    out = tmp_path / "study"
    run_study(mini_plan(tmp_path), str(out), [1, 2], parallel=2, program=FAKE)
    share = max(len(os.sched_getaffinity(0)) // 2, 1)
    for seed in (1, 2):
        record = records.load(str(out / "runs" / f"seed-{seed}" / "record.json"))
        assert record.parallel == 2
        assert f"framework.intra_op_parallelism_threads={share}" in record.command
        assert "framework.inter_op_parallelism_threads=1" in record.command
    text = report.markdown(report.build(str(out)))
    assert "Seeds 1, 2 ran beside other seeds (--parallel > 1)" in text


def test_core_slots_split_the_cores():
    cores = sorted(os.sched_getaffinity(0))
    assert core_slots(1) == [tuple(cores)]
    slots = core_slots(len(cores))
    assert slots == [(core,) for core in cores]
    assert core_slots(len(cores) + 1)[-1] == (cores[0],)  # more runs than cores: they share


def test_explicit_threads_are_kept_in_parallel_studies(tmp_path):
    study = mini_plan(tmp_path, "framework.intra_op_parallelism_threads=7")
    command = study.command(5, "somewhere", ["exec"], threads=(1, 1))
    assert "framework.intra_op_parallelism_threads=7" in command
    assert "framework.intra_op_parallelism_threads=1" not in command
    assert "framework.inter_op_parallelism_threads=1" in command


def test_a_second_study_in_the_same_folder_is_refused_while_the_first_holds_it(tmp_path):
    out = str(tmp_path / "study")
    folder = StudyFolder(out)
    with folder.locked():
        with pytest.raises(BenchmarkError, match="another study, or a run it started, is running there"):
            run_study(mini_plan(tmp_path), out, [1], program=FAKE)


def test_a_folder_of_another_study_is_refused_and_left_alone(tmp_path):
    out = str(tmp_path / "study")
    run_study(mini_plan(tmp_path), out, [1], program=FAKE)
    before = tree_digest(out)
    with pytest.raises(ConfigError, match="holds another study"):
        run_study(mini_plan(tmp_path, "run.minibatch_size=8"), out, [2], program=FAKE)
    assert tree_digest(out) == before


def test_explore_runs_the_definitions_settings_as_a_plain_run_for_the_whole_curve(tmp_path):
    study = plan("mini", ["data.synthetic=true", "data.synthetic_events=64", "network.network_depth=2"],
                 explore=True, epochs=3, eval_every=0.25)
    study.prepare()
    command = study.command(4, "there", ["exec"])
    assert not any(token.startswith("benchmark=") for token in command)
    for token in MINI.overrides():  # the definition's settings, except those replaced
        if not token.startswith(("network.network_depth=", "data.synthetic=")):
            assert token in command
    assert "network.network_depth=4" not in command and "network.network_depth=2" in command
    # 64 events in batches of 4: 16 steps an epoch; evaluations every 4 steps over 48 steps
    assert "run.validation=full" in command
    assert "run.iterations=48" in command and "run.aux_iterations=4" in command


# ---------------------------------------------------------------- the report


def evaluation(epoch, cosmic, neutrino, accuracy, seconds):
    return Evaluation(epoch=epoch, step=int(epoch * 100), cosmic_iou=cosmic, neutrino_iou=neutrino,
                      non_bkg_accuracy=accuracy, miou=(cosmic + neutrino) / 2, seconds=seconds)


def constructed_study(tmp_path, epochs_by_seed, explore=False):
    """A study folder with one record per seed; a seed's run reaches the mini target at its epochs (None: never)
    after climbing linearly, evaluated every half epoch, each evaluation 100 s after the last."""
    out = tmp_path / "constructed"
    spec = StudySpec(benchmark="mini", rules_version=MINI.rules_version, target=(0.65, 0.35, 0.75),
                     explore=explore, epochs=6.0 if explore else 0.0, eval_every=0.5 if explore else 0.0)
    StudyFolder(str(out)).claim(spec)
    for seed, reach in epochs_by_seed.items():
        last = reach if reach is not None and not explore else 6.0
        points = []
        for k in range(1, int(last * 2) + 1):
            epoch = k / 2
            level = 0.8 * min(epoch / reach, 1.0) if reach is not None else 0.4 * epoch / 6
            points.append(evaluation(epoch, level, level * 0.5, level, 100.0 * k))
        if reach is not None:
            points[int(reach * 2) - 1] = evaluation(reach, 0.7, 0.4, 0.8, 100.0 * reach * 2)
        success = reach is not None
        record = RunRecord(seed=seed, status="success" if success or explore else "aborted",
                           time_to_train_s=points[-1].seconds + 1.0,
                           epochs_to_target=reach if success and not explore else None, evaluations=points,
                           benchmark="none" if explore else "mini", rules_version=MINI.rules_version,
                           implementation="torch-2D", global_batch_size=4)
        os.makedirs(out / "runs" / f"seed-{seed}")
        records.save(record, str(out / "runs" / f"seed-{seed}" / "record.json"))
    return str(out)


def test_spread_statistics_have_their_known_values():
    spread = stats.spread([2.0, 3.5, 2.5, 6.0, 3.0])
    assert spread.mean == pytest.approx(3.4)
    assert spread.stdev == pytest.approx(math.sqrt(9.7 / 4))
    assert spread.cv == pytest.approx(math.sqrt(9.7 / 4) / 3.4)
    assert spread.olympic == pytest.approx(3.0)  # 2.0 and 6.0 dropped
    assert (spread.median, spread.low, spread.high, spread.n) == (3.0, 2.0, 6.0, 5)
    two = stats.spread([1.0, 3.0])
    assert two.olympic is None and two.stdev == pytest.approx(math.sqrt(2))
    one = stats.spread([4.0])
    assert one.stdev is None and one.cv is None
    assert stats.spread([]) is None


def test_the_knee_is_where_the_scaled_curve_is_farthest_above_its_chord():
    assert stats.knee([0, 1, 2, 3], [0, 0.8, 0.9, 1.0]) == 1  # scaled gaps 0, 0.467, 0.233, 0
    xs = [k / 4 for k in range(17)]  # 1 - exp(-x) on [0, 4]: the continuous knee is at ln(4 / (1 - e^-4)) = 1.405
    assert xs[stats.knee(xs, [1 - math.exp(-x) for x in xs])] == 1.5
    assert stats.knee([0, 1, 2, 3], [0, 1, 2, 3]) is None  # a straight line has none
    assert stats.knee([0, 1, 2], [0.5, 0.5, 0.5]) is None
    assert stats.knee([0, 1], [0, 1]) is None


def test_the_mean_curve_averages_the_runs_evaluated_at_each_epoch():
    assert stats.mean_curve([[(0.5, 0.2), (1.0, 0.6)], [(0.5, 0.4)]]) == [
        (0.5, pytest.approx(0.3), 2), (1.0, pytest.approx(0.6), 1)]


def test_the_report_of_benchmark_runs_uses_mlperfs_reading_and_leaves_out_runs_that_missed(tmp_path):
    out = constructed_study(tmp_path, {1: 2.0, 2: 3.5, 3: 2.5, 4: 6.0, 5: 3.0, 6: None})
    result = report.build(out)
    assert result.own_target
    assert [(row.seed, row.epochs, row.evaluations) for row in result.rows] == [
        (1, 2.0, 4), (2, 3.5, 7), (3, 2.5, 5), (4, 6.0, 12), (5, 3.0, 6), (6, None, None)]
    assert result.rows[0].minutes == pytest.approx(401 / 60)  # run_start to run_stop
    assert result.epochs.n == 5 and result.epochs.cv == pytest.approx(math.sqrt(9.7 / 4) / 3.4)
    assert result.epochs.olympic == pytest.approx(3.0)
    text, written = report.write(out)
    assert written == [os.path.join(out, "report.md"), os.path.join(out, "curves.png")]
    assert open(written[0]).read() == text
    assert "| 1 | success | 2.00 | 6.68 | 4 |" in text
    assert "| 6 | aborted | not reached | - | - |" in text
    assert "Runs that reached the target: 5 of 6." in text
    assert "| CV | 45.8 % |" in text
    assert "| olympic mean | 3.00 |" in text
    assert "Never reached the target: seed 6 (aborted, last evaluation at epoch 6.00)" in text
    assert "the CV included" in text
    with open(written[1], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(written[1]) > 20_000  # three panels of curves, not an empty figure


def test_another_target_is_found_on_each_curve(tmp_path):
    out = constructed_study(tmp_path, {1: 2.0, 2: 4.0, 3: None}, explore=True)
    result = report.build(out, report.parse_target("0.4,0.2,0.4"))
    assert not result.own_target
    # seed 1 climbs 0.2 a half epoch, seed 2 0.1: 0.4 (neutrino 0.2) at evaluations 2 and 4; seed 3 reaches 0.4
    # only at epoch 6, its last evaluation
    rows = {row.seed: (row.epochs, row.evaluations, row.minutes) for row in result.rows}
    assert rows[1] == (1.0, 2, pytest.approx(200 / 60))
    assert rows[2] == (2.0, 4, pytest.approx(400 / 60))
    assert rows[3] == (6.0, 12, pytest.approx(1200 / 60))
    strict = report.build(out, report.parse_target("0.9,0.9,0.9"))
    assert [row.reached for row in strict.rows] == [False, False, False]
    assert strict.epochs is None
    assert "| mean | - | - | - |" in report.markdown(strict)


def test_the_report_marks_the_knee_of_each_mean_curve(tmp_path):
    out = constructed_study(tmp_path, {1: 2.0, 2: 2.0}, explore=True)
    result = report.build(out)
    # both runs' cosmic IoU: 0.2, 0.4, 0.6, 0.7 (epoch 2), then 0.8 to epoch 6; scaled by the chord from (0.5, 0.2)
    # to (6, 0.8), the gaps y - x are 0, 0.24, 0.48, 0.56, 0.64 (epoch 2.5), then falling
    assert result.knees["cosmic_iou"].epoch == 2.5
    assert result.knees["cosmic_iou"].value == pytest.approx(0.8)
    assert result.knees["cosmic_iou"].final == pytest.approx(0.8)
    assert "| cosmic IoU | 0.65 | 2.50 | 0.800 | 0.800 |" in report.markdown(result)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, says", [
    (["study", "--benchmark", "nosuch", "--seeds", "2"], "unknown benchmark 'nosuch'"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--set", "network.network_depth=2"],
     "network.network_depth is fixed by the mini benchmark"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--set", "run.seed=3"], "the study sets"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--set", "oops"], "is not a setting"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--set", "run.nosuch=1"], "unknown configuration key"),
    (["study", "--benchmark", "throughput", "--seeds", "2"], "has no target"),
    (["study", "--benchmark", "mini", "--seeds", "0"], "not a positive integer"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--epochs", "3"], "apply to --explore runs"),
    (["study", "--benchmark", "mini", "--seeds", "2", "--explore", "--epochs", "1", "--eval-every", "2"],
     "need 0 < eval-every <= epochs"),
])
def test_bad_study_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, says):
    out = tmp_path / "study"
    assert main([*argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and says in captured.err
    assert not out.exists()


def test_report_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nowhere'}: no such study folder\n"
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("target", ["0.5,0.5", "a,b,c", "0.5,0.5,1.5"])
def test_a_bad_target_is_one_line_and_writes_nothing(tmp_path, capsys, target):
    out = constructed_study(tmp_path, {1: 2.0})
    assert main(["report", out, "--target", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "three numbers between 0 and 1" in err
    assert not os.path.exists(os.path.join(out, "report.md"))


def test_the_command_line_refuses_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmark.convergence", "study", "--benchmark", "mini", "--seeds",
                           "2", "--out", str(tmp_path / "s"), "--set", "network=uresnet"],
                          capture_output=True, text=True, cwd=os.path.dirname(HERE))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- real runs


@pytest.mark.slow
def test_a_real_explore_study_runs_resumes_and_reports_what_its_logs_say(tmp_path):
    """Tiny explore runs on synthetic events through bin/exec.py: 2 seeds, then a third on a second start."""
    out = tmp_path / "study"
    sets = ["data.synthetic=true", "data.synthetic_events=16", "data.synthetic_pool=16", *TINY_NETWORK,
            "run.aux_minibatch_size=8", "mode.checkpoint_iteration=0", "data.workers=1"]
    command = [sys.executable, "-m", "benchmark.convergence", "study", "--benchmark", "mini", "--explore",
               "--epochs", "2", "--eval-every", "0.5", "--seeds", "2", "--out", str(out), "--set", *sets]
    root = os.path.dirname(HERE)
    first = subprocess.run(command, capture_output=True, text=True, cwd=root)
    assert first.returncode == 0, first.stderr
    before = tree_digest(out / "runs")
    command[command.index("--seeds") + 1] = "3"
    second = subprocess.run(command, capture_output=True, text=True, cwd=root)
    assert second.returncode == 0, second.stderr
    assert "seeds 1, 2: finished before, skipped" in second.stdout
    after = tree_digest(out / "runs")
    assert {k: v for k, v in after.items() if not k.startswith("seed-3")} == before
    # a target the first seed meets at its third evaluation: each run's first evaluation meeting it, from its log
    first_log = mlperf_logs.events(out / "runs" / "seed-1" / "mlperf.log")
    third = [e for e in first_log if e["key"] == "eval_accuracy"][2]["metadata"]
    target = [third["cosmic_iou"], third["neutrino_iou"], third["non_bkg_accuracy"]]
    result = report.build(str(out), report.parse_target(",".join(repr(value) for value in target)))
    assert [row.seed for row in result.rows] == [1, 2, 3]
    for row in result.rows:
        events = mlperf_logs.events(out / "runs" / f"seed-{row.seed}" / "mlperf.log")
        assert next(e["value"] for e in events if e["key"] == "seed") == row.seed
        start = next(e["time_ms"] for e in events if e["key"] == "run_start")
        evals = [e for e in events if e["key"] == "eval_accuracy"]
        assert [e["metadata"]["epoch_num"] for e in evals] == [0.5, 1.0, 1.5, 2.0]
        assert next(e for e in events if e["key"] == "run_stop")["metadata"]["status"] == "success"
        hits = [i for i, e in enumerate(evals) if e["metadata"]["cosmic_iou"] >= target[0]
                and e["metadata"]["neutrino_iou"] >= target[1] and e["metadata"]["non_bkg_accuracy"] >= target[2]]
        if not hits:
            assert not row.reached
            continue
        hit = evals[hits[0]]
        assert (row.epochs, row.evaluations) == (hit["metadata"]["epoch_num"], hits[0] + 1)
        assert row.minutes == pytest.approx((hit["time_ms"] - start) / 60_000)
    assert result.rows[0].evaluations <= 3
    text = (out / "report.md").read_text()  # written by the study with the definition's target
    assert "# Convergence study: mini" in text and "explore runs of mini" in text
    assert "| completed |" in text and "| success |" not in text  # an explore run's success says it ran its epochs
    assert (out / "curves.png").stat().st_size > 20_000
