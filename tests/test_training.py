"""End to end through the command line: train, resume, inference, iotest, summary (tiny, CPU)."""
import csv
import json
import os

import pytest
import torch
from exact_state import assert_same_checkpoints
from tiny import TINY_NETWORK

from benchmark.cli import main

TINY = [
    "data.synthetic=true",
    "data.synthetic_events=12",
    *TINY_NETWORK,
    "run.minibatch_size=2",
    "run.aux_minibatch_size=2",
    "run.seed=11",
    "data.seed=5",
    "mode.optimizer.lr_schedule=flat",
    "mode.optimizer.learning_rate=0.01",
    "framework.intra_op_parallelism_threads=1",
]


def run(tmp_path, name, *extra, mode="train"):
    out = tmp_path / name
    status = main([f"mode={mode}", f"run.id={name}", f"run.output_dir={out}", *TINY, *extra])
    return status, out


def losses(out):
    with open(out / "train_metrics.csv") as handle:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(handle)]


def test_train_writes_config_metrics_checkpoints_and_throughput(tmp_path, capsys):
    status, out = run(tmp_path, "basic", "run.iterations=4", "run.aux_iterations=2", "mode.checkpoint_iteration=2")
    assert status == 0
    text = capsys.readouterr().out
    assert text.startswith("-- CONFIG --")
    assert "trainable parameters:" in text
    assert "implementation: torch-2D on cpu" in text and f"(PyTorch {torch.__version__})" in text  # where, and what
    assert "validation after step 2" in text and "validation after step 4" in text
    assert "throughput:" in text and "images/s over 2 iterations (first 2 left out" in text
    assert (out / "config.yaml").exists()
    rows = list(csv.DictReader(open(out / "train_metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    for key in ("loss", "Average/Cosmic_IoU", "Average/Neutrino_IoU", "Average/mIoU", "images_per_second", "plane2/Non_Bkg_Accuracy"):
        assert all(r[key] not in ("", "nan") for r in rows), key
    assert len(list(csv.DictReader(open(out / "val_metrics.csv")))) == 2
    index = json.load(open(out / "checkpoints" / "latest.json"))
    assert index["latest"]["step"] == 4 and os.path.exists(out / "checkpoints" / "model-2.pt")


def test_the_host_waits_for_the_device_only_where_it_needs_to(tmp_path, capsys, monkeypatch):
    from implementations.torch.implementation import TorchDense2D

    waits = []
    monkeypatch.setattr(TorchDense2D, "synchronize", lambda self: waits.append(len(waits)))
    # 40 events / batch 2 = 20 steps an epoch: the epoch ends only with the run
    status, out = run(tmp_path, "windows", "run.iterations=20", "run.aux_iterations=0", "mode.logging_iteration=8",
                      "data.synthetic_events=40")
    assert status == 0
    # after each warm-up step, then the metric lines at 8 and 16, then the run's (and the epoch's) end at 20
    assert len(waits) == 5
    rows = list(csv.DictReader(open(out / "train_metrics.csv")))
    assert [int(r["step"]) for r in rows] == [8, 16, 20]
    assert all(float(r["images_per_second"]) > 0 for r in rows)
    assert "images/s over 18 iterations (first 2 left out" in capsys.readouterr().out


def test_throughput_windows_leave_out_the_warm_up_iterations():
    from benchmark.throughput import Throughput

    rates = Throughput()
    rates.add(2, 10.0)  # compilation
    rates.add(2, 1.0)
    rates.add(12, 3.0, iterations=6)
    rates.add(4, 1.0, iterations=2)
    assert rates.steady_iterations == 8 and rates.steady_state() == 16 / 4.0
    assert rates.window(2) == 4.0 and rates.window(3) == 16 / 4.0 and rates.window(100) == 20 / 15.0
    assert "over 8 iterations (first 2 left out" in rates.report()
    short = Throughput()
    short.add(2, 1.0)
    short.add(2, 3.0)
    assert short.steady_iterations == 0 and short.steady_state() == 1.0  # too few to skip: all of them


def _damaged_checkpoints(folder):
    """A missing, a garbage, a truncated and a bit-flipped checkpoint, with the refusal each gets."""
    whole = folder / "whole.pt"
    torch.save({"model": {"w": torch.arange(4096.0)}}, whole)
    data = whole.read_bytes()
    (folder / "garbage.pt").write_bytes(b"not a checkpoint\n")
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    start = data.index(torch.arange(4096.0).numpy().tobytes()[:64])  # inside the stored tensor
    flipped[start + 100] ^= 0xFF
    (folder / "flipped.pt").write_bytes(bytes(flipped))
    return [(folder / "absent.pt", "no such checkpoint"), (folder / "garbage.pt", "not a readable checkpoint"),
            (folder / "truncated.pt", "not a readable checkpoint"), (folder / "flipped.pt", "fails its CRC check")]


@pytest.mark.parametrize("mode", ["train", "inference"])
def test_missing_or_damaged_weights_are_refused_before_anything_is_written(tmp_path, capsys, mode):
    for path, refusal in _damaged_checkpoints(tmp_path):
        assert run(tmp_path, mode, f"mode.weights_location={path}", "run.iterations=1", mode=mode)[0] == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith(f"error: {path}: ") and refusal in errors[0]
        assert not (tmp_path / mode).exists()


def test_a_device_that_is_not_there_is_refused_before_anything_is_written(tmp_path, capsys):
    assert run(tmp_path, "gpu", "run.compute_mode=GPU", "run.iterations=1")[0] == 1
    assert "run.compute_mode=GPU but torch sees no GPU" in capsys.readouterr().err
    assert not (tmp_path / "gpu").exists()


def test_same_seeds_give_identical_losses(tmp_path):
    assert run(tmp_path, "a", "run.iterations=3", "run.aux_iterations=0")[0] == 0
    assert run(tmp_path, "b", "run.iterations=3", "run.aux_iterations=0")[0] == 0
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert run(tmp_path, "c", "run.iterations=3", "run.aux_iterations=0", "run.seed=12")[0] == 0
    assert losses(tmp_path / "c") != losses(tmp_path / "a")


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_resume_continues_exactly(tmp_path, capsys, precision):
    common = ["run.aux_iterations=0", "mode.checkpoint_iteration=2", f"run.precision={precision}"]
    assert run(tmp_path, "whole", "run.iterations=5", *common)[0] == 0
    assert run(tmp_path, "split", "run.iterations=3", *common)[0] == 0
    capsys.readouterr()
    # Steps 4 and 5 must come from the checkpoint after step 3 (written at the end).
    assert run(tmp_path, "split", "run.iterations=5", *common)[0] == 0
    assert "resuming from" in capsys.readouterr().out
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "split", steps=[4, 5])  # weights, optimizer, RNG: every bit


def test_rerun_of_a_finished_run_does_nothing(tmp_path, capsys):
    assert run(tmp_path, "done", "run.iterations=2", "run.aux_iterations=0")[0] == 0
    capsys.readouterr()
    assert run(tmp_path, "done", "run.iterations=2", "run.aux_iterations=0")[0] == 0
    assert "nothing to do" in capsys.readouterr().out


def test_inference_reports_every_event(tmp_path, capsys):
    assert run(tmp_path, "inf", "run.iterations=2", "run.aux_iterations=0")[0] == 0
    capsys.readouterr()
    status, out = run(tmp_path, "inf", "data.synthetic_events=5", mode="inference")
    assert status == 0
    text = capsys.readouterr().out
    assert "-- INFERENCE REPORT -- 5 events" in text and "Average/mIoU" in text
    rows = list(csv.DictReader(open(out / "inference_events.csv")))
    assert sorted(int(r["entry"]) for r in rows) == [0, 1, 2, 3, 4]
    report = json.load(open(out / "inference_report.json"))
    assert report["events"] == 5 and 0.0 <= report["Average/mIoU"] <= 1.0


def test_inference_without_weights_is_refused(tmp_path, capsys):
    status, out = run(tmp_path, "noweights", mode="inference")
    assert status == 1
    assert "inference needs weights" in capsys.readouterr().err
    assert not out.exists()


def test_iotest_reports_images_per_second(tmp_path, capsys):
    status, _ = run(tmp_path, "io", "run.iterations=4", mode="iotest")
    assert status == 0
    text = capsys.readouterr().out
    assert "iotest: 4 batches of 2 images of 3x40x64" in text and "images/s" in text


@pytest.mark.parametrize("preset, count", [("uresnet", 18_382_131), ("a21", 8_510_547), ("uresnet3d", 18_381_459)])
def test_summary_sizes_the_network(tmp_path, capsys, preset, count):
    out = tmp_path / preset
    assert main(["mode=summary", f"run.id={preset}", f"run.output_dir={out}", f"network={preset}", "run.compute_mode=CPU"]) == 0
    text = capsys.readouterr().out
    assert f"trainable parameters: {count:,}" in text
    assert "forward FLOP per image" in text and "activations per image" in text


def test_summary_flop_matches_the_reference_analysis(tmp_path, capsys):
    """Upstream analysis: 323.0 GFLOP forward per image for uresnet at 640x1024."""
    out = tmp_path / "flop"
    assert main(["mode=summary", "run.id=flop", f"run.output_dir={out}", "run.compute_mode=CPU"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "forward FLOP per image" in l)
    gflop = float(line.split(":")[1].split()[0].replace(",", ""))
    assert gflop == pytest.approx(323.0, rel=0.01)


def test_progress_bar_on_a_terminal_plain_lines_otherwise(monkeypatch, capsys):
    import io
    import sys

    from benchmark.reporting import Progress

    plain = Progress(3)
    assert plain.bar is None
    plain.print("a line")
    assert capsys.readouterr().out == "a line\n"

    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stdout", terminal)
    bar = Progress(3, description="train")
    assert bar.bar is not None
    bar.advance(**{"img/s": "1.0"})
    bar.close()
    assert Progress(3, enabled=False).bar is None  # ranks other than 0 print nothing


def test_profile_writes_a_flame_graph_and_a_framework_trace(tmp_path, capsys):
    status, out = run(tmp_path, "prof", "run.iterations=6", "run.aux_iterations=0", "run.profile=true")
    assert status == 0
    assert (out / "profile" / "flamegraph.svg").read_text().lstrip().startswith("<?xml")
    assert (out / "profile" / "torch_trace.json").stat().st_size > 0
    assert "aten::" in (out / "profile" / "torch_operators.txt").read_text()
    assert "torch_operators.txt, torch_trace.json by torch-2D's profiler" in capsys.readouterr().out


def test_tensorflow_3d_trains_under_xla_with_its_profiler(tmp_path, capsys):
    status, out = run(tmp_path, "tf3d", "framework.name=tensorflow", "network.conv_mode=3D", "framework.xla=true",
                      "run.iterations=5", "run.aux_iterations=0", "run.profile=true")
    assert status == 0
    text = capsys.readouterr().out
    assert "implementation: tensorflow-3D" in text and "by tensorflow-3D's profiler" in text
    assert (out / "profile" / "flamegraph.svg").read_text().lstrip().startswith("<?xml")
    traces = list((out / "profile" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    assert all(loss != "nan" for _, loss in losses(out))


def test_bad_batch_size_is_one_line(tmp_path, capsys):
    status, _ = run(tmp_path, "big", "data.synthetic_events=4", "run.minibatch_size=8")
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "4 events are fewer than one global batch of 8" in err


def assert_resumes_exactly(tmp_path, capsys, name, implementation, *settings):
    """4 steps in one go, and 2 then 2 more after a restart from the checkpoint: the same losses, and the same
    weights and optimizer state, bit for bit."""
    common = [*settings, "run.aux_iterations=2", "mode.checkpoint_iteration=2"]
    assert run(tmp_path, f"{name}-whole", "run.iterations=4", *common)[0] == 0
    assert f"implementation: {implementation}" in capsys.readouterr().out
    assert run(tmp_path, f"{name}-split", "run.iterations=2", *common)[0] == 0
    assert run(tmp_path, f"{name}-split", "run.iterations=4", *common)[0] == 0
    assert losses(tmp_path / f"{name}-split") == losses(tmp_path / f"{name}-whole")
    assert_same_checkpoints(tmp_path / f"{name}-whole", tmp_path / f"{name}-split", steps=[4])
    capsys.readouterr()


def test_the_3d_network_trains_and_resumes_through_the_same_harness(tmp_path, capsys):
    assert_resumes_exactly(tmp_path, capsys, "3d", "torch-3D", "network.conv_mode=3D")


def test_tensorflow_trains_resumes_and_infers_through_the_same_harness(tmp_path, capsys):
    assert_resumes_exactly(tmp_path, capsys, "tf", "tensorflow-2D", "framework.name=tensorflow")
    status, out = run(tmp_path, "tf-whole", "framework.name=tensorflow", "data.synthetic_events=4", mode="inference")
    assert status == 0 and "-- INFERENCE REPORT -- 4 events" in capsys.readouterr().out
    out = tmp_path / "tf-size"
    assert main(["mode=summary", "run.id=s", f"run.output_dir={out}", "network=a21", "framework.name=tensorflow",
                 "run.compute_mode=CPU"]) == 0
    assert "trainable parameters: 8,510,547" in capsys.readouterr().out
