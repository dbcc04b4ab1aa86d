"""Nothing a run wrote is overwritten or lost, and a benchmark's time-to-train keeps one clock: a benchmark run
never resumes; inference numbers its files; metric CSVs are appended; generated datasets appear whole;
checkpoints reach the disk before they are published; the MLPerf log counts every implementation's GPUs."""
import csv
import json
import os
import signal
import subprocess
import sys

import pytest
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.data.commands import main as data_main
from benchmark.data.dataset import partial_folder, verify
from benchmark.errors import DataError
from benchmark.output import MetricsCSV, unused_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["data.synthetic=true", "data.synthetic_events=12", *TINY_NETWORK, "run.minibatch_size=2",
        "run.aux_minibatch_size=2", "run.seed=11", "data.seed=5", "mode.optimizer.lr_schedule=flat",
        "mode.optimizer.learning_rate=0.01", "framework.intra_op_parallelism_threads=1"]
DATASET = ["--train", "3", "--val", "2", "--test", "1", "--seed", "4", "--workers", "1"]
SPLITS = ["cosmic_tagging_train.h5", "cosmic_tagging_val.h5", "cosmic_tagging_test.h5"]


def run(out, *extra, mode="train"):
    return main([f"mode={mode}", f"run.id={os.path.basename(out)}", f"run.output_dir={out}", *TINY, *extra])


def snapshot(folder):
    """Every file under `folder` with its bytes."""
    return {os.path.relpath(os.path.join(top, name), folder): open(os.path.join(top, name), "rb").read()
            for top, _, names in os.walk(folder) for name in names}


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def mlperf_values(path):
    with open(path) as handle:
        return {entry["key"]: entry["value"] for entry in
                (json.loads(line.split(":::MLLOG ", 1)[1]) for line in handle if ":::MLLOG" in line)}


# -- a benchmark run keeps one clock -----------------------------------------------------------------------
def test_a_benchmark_run_never_resumes_and_is_refused_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "bench"
    assert run(out, "run.iterations=2", "run.aux_iterations=0", "mode.checkpoint_iteration=2") == 0
    before = snapshot(out)
    capsys.readouterr()
    status = main(["mode=train", "benchmark=throughput", "run.id=bench", f"run.output_dir={out}", "run.compute_mode=CPU"])
    assert status == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert len(errors) == 1, captured.err
    checkpoint = out / "checkpoints" / "model-2.pt"
    assert errors[0].startswith(f"error: {checkpoint}: run.id=bench has a checkpoint (after step 2)")
    assert "time-to-train has one clock" in errors[0] and "use a new run.id" in errors[0]
    assert snapshot(out) == before  # no MLPerf log, configuration or metrics row
    # Outside a benchmark the same run resumes as before.
    assert run(out, "run.iterations=3", "run.aux_iterations=0", "mode.checkpoint_iteration=2") == 0
    assert f"resuming from {checkpoint} after step 2" in capsys.readouterr().out


# -- inference keeps earlier inferences' files ---------------------------------------------------------------
def test_a_second_inference_keeps_the_first_ones_files(tmp_path, capsys):
    out = tmp_path / "inf"
    assert run(out, "run.iterations=1", "run.aux_iterations=0", "mode.checkpoint_iteration=1") == 0
    assert run(out, "data.synthetic_events=4", mode="inference") == 0
    first = {name: (out / name).read_bytes()
             for name in ("predictions.h5", "inference_events.csv", "inference_report.json")}
    capsys.readouterr()
    assert run(out, "data.synthetic_events=6", mode="inference") == 0
    printed = capsys.readouterr().out
    assert {name: (out / name).read_bytes() for name in first} == first
    assert f"predictions: {out / 'predictions.1.h5'}" in printed
    assert f"per-event metrics: {out / 'inference_events.1.csv'}; report: {out / 'inference_report.1.json'}" in printed
    assert json.loads((out / "inference_report.1.json").read_text())["events"] == 6
    assert len(rows(out / "inference_events.1.csv")) == 6 and (out / "predictions.1.h5").stat().st_size > 0


def test_files_that_go_together_are_numbered_together(tmp_path):
    names = ["predictions.h5", "inference_report.json"]
    assert unused_paths(str(tmp_path), names) == [str(tmp_path / name) for name in names]
    (tmp_path / "inference_report.json").write_text("{}")  # one of the group is enough to move all of them on
    assert unused_paths(str(tmp_path), names) == [str(tmp_path / "predictions.1.h5"),
                                                  str(tmp_path / "inference_report.1.json")]
    (tmp_path / "predictions.1.h5").write_text("")
    assert unused_paths(str(tmp_path), ["mlperf.log", *names])[1:] == [str(tmp_path / "predictions.2.h5"),
                                                                        str(tmp_path / "inference_report.2.json")]


# -- metric CSVs are appended ----------------------------------------------------------------------------
def test_a_resumed_run_appends_to_its_metrics_and_keeps_the_rows_past_the_checkpoint(tmp_path, monkeypatch):
    from benchmark.modes.train import Trainer

    out = tmp_path / "csv"
    common = ["run.iterations=4", "run.aux_iterations=2", "mode.checkpoint_iteration=2"]
    checkpoint = Trainer.checkpoint

    def crash_at_4(self, done):
        if done == 4:
            raise RuntimeError("the node went down")
        checkpoint(self, done)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "checkpoint", crash_at_4)
        with pytest.raises(RuntimeError, match="the node went down"):
            run(out, *common)
    interrupted = {name: (out / name).read_bytes() for name in ("train_metrics.csv", "val_metrics.csv")}
    assert run(out, *common) == 0  # resumes after step 2
    for name, earlier in interrupted.items():
        assert (out / name).read_bytes().startswith(earlier), name
    train = rows(out / "train_metrics.csv")
    assert [(int(r["step"]), r["mlperf_log"]) for r in train] == [
        (1, "mlperf.log"), (2, "mlperf.log"), (3, "mlperf.log"), (4, "mlperf.log"), (3, "mlperf.1.log"), (4, "mlperf.1.log")]
    # the steps ran twice, the same way (an exact resume)
    assert [r["loss"] for r in train[2:4]] == [r["loss"] for r in train[4:]]
    validation = rows(out / "val_metrics.csv")
    assert [(int(r["step"]), r["mlperf_log"]) for r in validation] == [(2, "mlperf.log"), (4, "mlperf.log"), (4, "mlperf.1.log")]


def test_metrics_of_another_layout_are_kept_and_a_cut_row_stays_on_its_line(tmp_path, capsys):
    older = tmp_path / "train_metrics.csv"
    older.write_bytes(b"step,loss\r\n1,0.5\r\n")
    table = MetricsCSV(str(older), ["step", "loss", "mlperf_log"])
    table.start()
    table.append({"step": 2, "loss": 0.25, "mlperf_log": "mlperf.1.log"})
    assert older.read_bytes() == b"step,loss\r\n1,0.5\r\n"
    assert table.path == str(tmp_path / "train_metrics.1.csv")
    assert "has other columns" in capsys.readouterr().out
    resumed = MetricsCSV(str(older), ["step", "loss", "mlperf_log"])
    resumed.start()  # the next invocation continues the numbered file
    resumed.append({"step": 3, "loss": 0.125, "mlperf_log": "mlperf.2.log"})
    assert resumed.path == table.path and [r["step"] for r in rows(table.path)] == ["2", "3"]

    cut = tmp_path / "cut.csv"
    cut.write_bytes(b"step,loss\r\n1,0.5\r\n2,0.2")  # a crash in the middle of a row
    table = MetricsCSV(str(cut), ["step", "loss"])
    table.start()
    table.append({"step": 2, "loss": 0.25})
    assert cut.read_bytes() == b"step,loss\r\n1,0.5\r\n2,0.2\r\n2,0.25\r\n"


# -- generated datasets appear whole ---------------------------------------------------------------------
def test_an_interrupted_generation_leaves_nothing_and_the_next_one_completes(tmp_path, monkeypatch, capsys):
    from benchmark.data import dataset

    out = tmp_path / "data"
    append = dataset.LarcvWriter.append
    written = []

    def fail_midway(self, products):
        written.append(1)
        if len(written) == 4:  # the first event of the second split
            raise KeyboardInterrupt
        append(self, products)

    with monkeypatch.context() as patch:
        patch.setattr(dataset.LarcvWriter, "append", fail_midway)
        with pytest.raises(KeyboardInterrupt):
            data_main(["generate", "--out", str(out), *DATASET])
    assert not out.exists() or os.listdir(out) == []
    assert not os.path.exists(partial_folder(str(out)))
    assert data_main(["generate", "--out", str(out), *DATASET]) == 0
    assert sorted(verify(str(out))["files"]) == sorted(SPLITS)


def test_a_killed_generation_is_cleaned_up_by_the_next_one(tmp_path, capsys):
    out = tmp_path / "data"
    # A hard crash (no exception handler runs): the process kills itself while writing the validation split.
    script = ("import os, signal, sys\n"
              "from benchmark.data import dataset\n"
              "from benchmark.data.commands import main\n"
              "append, count = dataset.LarcvWriter.append, []\n"
              "def crash(self, products):\n"
              "    count.append(1)\n"
              "    if len(count) == 5:\n"
              "        os.kill(os.getpid(), signal.SIGKILL)\n"
              "    append(self, products)\n"
              "dataset.LarcvWriter.append = crash\n"
              "main(sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", script, "generate", "--out", str(out), *DATASET], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftover = partial_folder(str(out))
    assert "cosmic_tagging_train.h5" in os.listdir(leftover)  # what the crash left, beside --out
    assert os.listdir(out) == []  # nothing of the dataset in --out
    assert data_main(["generate", "--out", str(out), *DATASET]) == 0
    assert f"removed {leftover}, left by an interrupted generation" in capsys.readouterr().out
    assert not os.path.exists(leftover)
    assert sorted(verify(str(out))["files"]) == sorted(SPLITS)


def test_generate_needs_a_new_or_empty_folder_and_verify_counts_events(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert data_main(["generate", "--out", str(busy), *DATASET]) == 1
    assert capsys.readouterr().err.strip() == (f"error: {busy}: holds other files (notes.txt); "
                                               "a dataset is written into a new or empty --out")
    assert os.listdir(busy) == ["notes.txt"]
    out = tmp_path / "data"
    assert data_main(["generate", "--out", str(out), *DATASET]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["cosmic_tagging_val.h5"]["events"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="cosmic_tagging_val.h5: 2 events, but .* says 3"):
        verify(str(out))


# -- published files reach the disk before their name -------------------------------------------------------
@pytest.fixture
def disk_events(monkeypatch):
    """(what, path) of every fsync and rename, in order."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        return fsync(descriptor)

    def recording_replace(source, target, **options):
        events.append(("rename", os.path.realpath(source), os.path.realpath(target)))
        return replace(source, target, **options)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return events


def assert_flushed_then_published(events, path):
    """`path` was written aside, flushed, renamed into place, and its folder flushed after the rename."""
    path = os.path.realpath(path)
    rename = next(i for i, event in enumerate(events) if event[0] == "rename" and event[2] == path)
    temporary = events[rename][1]
    assert ("fsync", temporary) in events[:rename], f"{temporary} is not flushed before it becomes {path}"
    assert ("fsync", os.path.dirname(path)) in events[rename + 1:], f"{os.path.dirname(path)} is not flushed"
    return rename


def test_checkpoints_are_flushed_to_disk_before_they_are_published(tmp_path, disk_events):
    out = tmp_path / "run"
    assert run(out, "run.iterations=2", "run.aux_iterations=0", "mode.checkpoint_iteration=2") == 0
    model = assert_flushed_then_published(disk_events, out / "checkpoints" / "model-2.pt")
    index = assert_flushed_then_published(disk_events, out / "checkpoints" / "latest.json")
    assert model < index  # the index never names a checkpoint that is not on disk


@pytest.mark.parametrize("mode", ["sparse", "tensorflow"])
def test_every_implementation_flushes_its_checkpoint_before_publishing_it(tmp_path, disk_events, mode):
    from quiet_tensorflow import tf  # noqa: F401  (quiet, before TensorFlow starts)
    from tiny import TINY_SHAPE

    from benchmark import config, registry

    framework, conv_mode = ("tensorflow", "2D") if mode == "tensorflow" else ("torch", mode)
    cfg = config.load(["run.id=t", *TINY_NETWORK, "run.seed=3", f"framework.name={framework}",
                       f"network.conv_mode={conv_mode}"])
    impl = registry.load_class(cfg)(cfg, TINY_SHAPE)
    path = tmp_path / f"model-1{impl.checkpoint_suffix()}"
    impl.save(str(path))
    assert_flushed_then_published(disk_events, path)


def test_a_generated_dataset_is_flushed_to_disk_before_it_is_published(tmp_path, disk_events):
    out = tmp_path / "data"
    assert data_main(["generate", "--out", str(out), *DATASET]) == 0
    rename = assert_flushed_then_published(disk_events, out)
    partial = disk_events[rename][1]
    for name in [*SPLITS, "manifest.json"]:
        assert ("fsync", os.path.join(partial, name)) in disk_events[:rename], name


def test_a_failed_write_leaves_the_published_file_as_it_was(tmp_path):
    from benchmark.durable import published

    target = tmp_path / "latest.json"
    target.write_text("old")
    with pytest.raises(OSError), published(str(target)) as temporary:
        open(temporary, "w").write("half")
        raise OSError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["latest.json"]


# -- exact resume is checked exactly ---------------------------------------------------------------------
def test_the_state_comparison_sees_one_bit(tmp_path):
    import numpy as np
    import torch
    from exact_state import assert_same_state

    state = {"model": {"w": torch.tensor([1.0, 0.0])}, "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}}}
    torch.save(state, tmp_path / "a.pt")
    torch.save(state, tmp_path / "b.pt")
    assert_same_state(tmp_path / "a.pt", tmp_path / "b.pt")
    nudged = {**state, "model": {"w": torch.tensor([np.nextafter(np.float32(1.0), np.float32(2.0)), 0.0])}}
    torch.save(nudged, tmp_path / "c.pt")  # one unit in the last place: equal to six printed digits
    with pytest.raises(AssertionError, match="/model/w"):
        assert_same_state(tmp_path / "a.pt", tmp_path / "c.pt")
    torch.save({**state, "model": {"w": torch.tensor([1.0, -0.0])}}, tmp_path / "d.pt")
    with pytest.raises(AssertionError, match="different bits"):
        assert_same_state(tmp_path / "a.pt", tmp_path / "d.pt")
    np.savez(tmp_path / "a.tf.npz", **{"model/0": np.ones(2, np.float32), "optimizer/0": np.zeros(1, np.int64)})
    np.savez(tmp_path / "b.tf.npz", **{"model/0": np.ones(2, np.float32), "optimizer/0": np.ones(1, np.int64)})
    with pytest.raises(AssertionError, match="optimizer/0"):
        assert_same_state(tmp_path / "a.tf.npz", tmp_path / "b.tf.npz")


# -- accelerators_per_node counts every implementation's GPUs ------------------------------------------------------
def test_the_tensorflow_gpu_device_string_counts_as_an_accelerator():
    from quiet_tensorflow import tf  # noqa: F401  (quiet, before TensorFlow starts)

    from implementations.tensorflow.implementation import is_gpu

    assert is_gpu("/GPU:0") and is_gpu("/GPU:3") and is_gpu("/device:GPU:1")
    assert is_gpu("/job:localhost/replica:0/task:0/device:GPU:0")
    assert not is_gpu("/CPU:0") and not is_gpu("/device:CPU:0")


@pytest.mark.parametrize("framework, mode", [("torch", "2D"), ("torch", "3D"), ("torch", "sparse"),
                                             ("tensorflow", "2D")])
def test_implementations_on_the_cpu_use_no_accelerator(framework, mode):
    from quiet_tensorflow import tf  # noqa: F401
    from tiny import TINY_SHAPE

    from benchmark import config, registry

    cfg = config.load(["run.id=t", *TINY_NETWORK, "run.seed=3", f"framework.name={framework}",
                       f"network.conv_mode={mode}"])
    impl = registry.load_class(cfg)(cfg, TINY_SHAPE)
    assert impl.uses_accelerator() is False
    if framework == "tensorflow":  # what it answers reads the device it placed the model on
        impl.device = "/GPU:0"
        assert impl.uses_accelerator() is True


def test_the_mlperf_log_counts_the_gpus_an_implementation_says_it_uses(tmp_path, monkeypatch):
    from benchmark import registry
    from implementations.torch.implementation import TorchDense2D

    common = ["run.iterations=1", "run.aux_iterations=0", "mode.checkpoint_iteration=0"]
    assert run(tmp_path / "cpu", *common) == 0
    assert mlperf_values(tmp_path / "cpu" / "mlperf.log")["accelerators_per_node"] == 0

    class OnAGPU(TorchDense2D):
        """Computes on the CPU but reports a GPU as TensorFlow names one (its description has no 'cuda')."""

        def uses_accelerator(self) -> bool:
            return True

        def device_description(self) -> str:
            return "/GPU:0 a stand-in"

    monkeypatch.setattr(registry, "load_class", lambda cfg: OnAGPU)
    assert run(tmp_path / "gpu", *common) == 0
    assert mlperf_values(tmp_path / "gpu" / "mlperf.log")["accelerators_per_node"] == 1
