"""Data-parallel runs on 2 CPU ranks: DDP under mpirun and torchrun; sharding, resume, failures, launch checks."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from exact_state import assert_same_checkpoints
from tiny import TINY_NETWORK, require_sample

from benchmark import config
from benchmark.errors import BenchmarkError, ConfigError
from benchmark.parallel.context import setup
from benchmark.parallel.placement import detect

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXEC = os.path.join(ROOT, "bin", "exec.py")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2"]
# No batch norm: under data parallelism each rank normalises its own share, which is not one rank's whole batch.
COMMON = [*TINY_NETWORK, "network.batch_norm=false", "data.synthetic=true", "data.synthetic_events=16", "data.seed=5",
          "run.seed=3", "run.minibatch_size=4", "run.aux_minibatch_size=4", "mode.optimizer.lr_schedule=flat",
          "mode.optimizer.learning_rate=0.01", "framework.intra_op_parallelism_threads=1"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def launch(prefix, *tokens, timeout=300):
    return subprocess.run([*prefix, sys.executable, EXEC, *tokens], capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


def train(prefix, out, *extra):
    done = launch(prefix, "mode=train", "run.id=d", f"run.output_dir={out}", *COMMON, *extra)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def torchrun(port):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={port}", "--no-python"]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=atol, msg=key)


def assert_same_gradients(path_a, path_b):
    """Adam's first moments (running means of the averaged gradients) agree within 1e-4 of each tensor's largest."""
    a, b = (torch.load(path, weights_only=True)["optimizer"]["state"] for path in (path_a, path_b))
    assert a.keys() == b.keys()
    for index in a:
        scale = float(a[index]["exp_avg"].abs().max())
        torch.testing.assert_close(b[index]["exp_avg"], a[index]["exp_avg"], rtol=0, atol=1e-4 * scale + 1e-12,
                                   msg=f"parameter {index}")


def losses(out):
    with open(out / "train_metrics.csv") as handle:
        return [(row["step"], float(row["loss"])) for row in csv.DictReader(handle)]


# -- where a process sits, and refused launches --------------------------------------------------------
@pytest.mark.parametrize("environ, expected", [
    ({}, (0, 1, 0, "none")),
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}, (3, 8, 1, "openmpi")),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_LOCALID": "2"}, (5, 6, 2, "slurm")),
    ({"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1"}, (1, 2, 1, "mpich")),
    ({"PALS_RANKID": "7", "PMI_SIZE": "12", "PALS_LOCAL_RANKID": "3"}, (7, 12, 3, "pals")),
    # torchrun inside an srun allocation: torchrun's own variables win
    ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_LOCALID": "0"},
     (1, 4, 1, "torchrun")),
])
def test_placement_comes_from_the_launcher(environ, expected):
    placement = detect(environ)
    assert (placement.rank, placement.size, placement.local_rank, placement.launcher) == expected


@pytest.mark.parametrize("tokens, environ, message", [
    ([], {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "0"},
     "launched on 2 ranks by openmpi but run.distributed=false"),
    (["run.instances=2"], {}, "run.instances=2 needs run.distributed=true"),
    (["run.distributed=true", "framework.name=tensorflow"], {}, "set framework.distributed_mode=horovod"),
    (["run.distributed=true", "framework.distributed_mode=horovod"],
     {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "torchrun launches PyTorch DDP runs only"),
    (["run.distributed=true", "run.instances=2"], {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"},
     "run.instances > 1 needs an MPI launcher"),
])
def test_a_launch_that_does_not_match_the_configuration_is_refused(tokens, environ, message):
    with pytest.raises(ConfigError, match=message):
        setup(config.load(["run.id=x", *tokens]), environ)


def test_horovod_that_is_not_installed_is_refused_before_the_run_starts(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "horovod" else find_spec(name, *a))
    with pytest.raises(BenchmarkError, match="Horovod is not installed"):
        setup(config.load(["run.id=x", "run.distributed=true", "framework.distributed_mode=horovod"]), {})


def test_a_batch_that_does_not_split_evenly_is_one_line():
    done = launch(MPIRUN, "mode=train", "run.id=d", "run.output_dir=/tmp/never-written", "run.distributed=true",
                  *COMMON, "run.minibatch_size=3")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert errors == ["error: run.minibatch_size=3 is the global batch and must divide evenly across 2 ranks"]
    assert not os.path.exists("/tmp/never-written")


# -- one update on 2 ranks equals one update on 1 rank -----------------------------------------------
# Adam moves a weight by lr * m / sqrt(v): where a gradient component is almost all rounding (the deepest
# level of these tiny networks on mostly empty events), that ratio is set by the rounding. Where the two
# runs round differently (the sparse model's densified deepest level; the compiled model's fused kernels
# against the reference's), the weights are compared to lr / 100 and the update's substance through the
# gradients.
WEIGHT_ATOL = {"2D": 1e-6, "sparse": 1e-4, "optimized": 1e-4}


@pytest.mark.parametrize("mode", ["2D", "sparse"])
def test_ddp_under_mpirun_equals_one_rank_with_accumulation(tmp_path, mode):
    steps = [f"network.conv_mode={mode}", "run.iterations=2", "run.aux_iterations=2", "mode.checkpoint_iteration=2",
             "mode.optimizer.gradient_accumulation=2"]
    one = train([], tmp_path / "one", *steps)
    two = train(MPIRUN, tmp_path / "two", "run.distributed=true", *steps)
    checkpoints = [tmp_path / name / "checkpoints" / "model-2.pt" for name in ("two", "one")]
    assert_same_gradients(*checkpoints)
    assert_same_weights(*map(weights, checkpoints), atol=WEIGHT_ATOL[mode])
    np.testing.assert_allclose([l for _, l in losses(tmp_path / "two")], [l for _, l in losses(tmp_path / "one")], rtol=1e-5)
    assert "validation after step 2" in two.stdout and two.stdout.count("step 2/2") == 1  # rank 0 alone prints
    assert "validation after step 2" in one.stdout
    log = [json.loads(line.split(":::MLLOG ", 1)[1]) for line in open(tmp_path / "two" / "mlperf.log")]
    values = {entry["key"]: entry["value"] for entry in log}
    assert values["number_of_ranks"] == 2 and values["number_of_nodes"] == 1 and values["global_batch_size"] == 8
    assert not list((tmp_path / "two").glob("mlperf.*.log"))  # one log, from rank 0


def test_the_optimized_path_under_ddp_equals_one_reference_rank(tmp_path):
    # Without batch norm (COMMON) the optimized model computes the reference's function, so one rank of the
    # reference (no compilation to wait for) is the yardstick for torch.compile over DDP with no_sync.
    steps = ["run.iterations=2", "run.aux_iterations=0", "mode.checkpoint_iteration=2",
             "mode.optimizer.gradient_accumulation=2"]
    train([], tmp_path / "one", *steps)
    two = train(MPIRUN, tmp_path / "two", "run.distributed=true", "framework.optimized=true", *steps)
    assert "implementation: torch-2D-optimized" in two.stdout
    checkpoints = [tmp_path / name / "checkpoints" / "model-2.pt" for name in ("two", "one")]
    assert_same_gradients(*checkpoints)
    assert_same_weights(*map(weights, checkpoints), atol=WEIGHT_ATOL["optimized"])
    np.testing.assert_allclose([l for _, l in losses(tmp_path / "two")], [l for _, l in losses(tmp_path / "one")], rtol=1e-5)
    values = {entry["key"]: entry["value"] for entry in
              (json.loads(line.split(":::MLLOG ", 1)[1]) for line in open(tmp_path / "two" / "mlperf.log"))}
    assert values["number_of_ranks"] == 2


def test_ddp_under_torchrun_equals_one_rank(tmp_path):
    steps = ["run.iterations=2", "run.aux_iterations=0", "mode.checkpoint_iteration=2"]
    train([], tmp_path / "one", *steps)
    train(torchrun(29517), tmp_path / "two", "run.distributed=true", *steps)
    assert_same_weights(weights(tmp_path / "two" / "checkpoints" / "model-2.pt"),
                        weights(tmp_path / "one" / "checkpoints" / "model-2.pt"))


def tensorflow_weights(path):
    with np.load(path) as archive:
        return {key: torch.from_numpy(archive[key]) for key in archive.files if key.startswith("model/")}


@pytest.mark.parametrize("framework, mode", [("torch", "2D"), ("tensorflow", "2D"), ("torch", "sparse")])
def test_horovod_equals_one_rank_with_accumulation(tmp_path, framework, mode):
    steps = [f"framework.name={framework}", f"network.conv_mode={mode}", "run.iterations=2", "run.aux_iterations=0",
             "mode.checkpoint_iteration=2", "mode.optimizer.gradient_accumulation=2"]
    train([], tmp_path / "one", *steps)
    train(MPIRUN, tmp_path / "two", "run.distributed=true", "framework.distributed_mode=horovod", *steps)
    if framework == "tensorflow":
        name = "model-2.tf.npz"
        assert_same_weights(*(tensorflow_weights(tmp_path / run / "checkpoints" / name) for run in ("two", "one")))
        return
    checkpoints = [tmp_path / run / "checkpoints" / "model-2.pt" for run in ("two", "one")]
    assert_same_gradients(*checkpoints)
    assert_same_weights(*map(weights, checkpoints), atol=WEIGHT_ATOL[mode])


def test_resume_on_two_ranks_continues_exactly(tmp_path):
    steps = ["run.aux_iterations=0", "mode.checkpoint_iteration=2", "run.distributed=true"]
    train(MPIRUN, tmp_path / "whole", "run.iterations=4", *steps)
    train(MPIRUN, tmp_path / "split", "run.iterations=2", *steps)
    train(MPIRUN, tmp_path / "split", "run.iterations=4", *steps)
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "split", steps=[4])  # weights, optimizer, RNG: every bit


# -- data: every event once across ranks -------------------------------------------------------------
def test_inference_on_two_ranks_covers_every_event_once(tmp_path):
    sample = require_sample()
    real = [f"data.data_directory={os.path.dirname(sample)}", f"data.file={os.path.basename(sample)}",
            "data.synthetic=false", "run.minibatch_size=2"]  # 5 events: batches of 2, 2 and 1 (rank 1's share empty)
    train([], tmp_path / "model", "run.iterations=1", "run.aux_iterations=0", "mode.checkpoint_iteration=1")
    weights_file = f"mode.weights_location={tmp_path / 'model' / 'checkpoints' / 'model-1.pt'}"
    one = launch([], "mode=inference", "run.id=i", f"run.output_dir={tmp_path / 'one'}", *COMMON, *real, weights_file)
    two = launch(MPIRUN, "mode=inference", "run.id=i", f"run.output_dir={tmp_path / 'two'}", "run.distributed=true",
                 *COMMON, *real, weights_file)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    with open(tmp_path / "two" / "inference_events.csv") as handle:
        assert sorted(int(row["entry"]) for row in csv.DictReader(handle)) == [0, 1, 2, 3, 4]
    report_one = json.load(open(tmp_path / "one" / "inference_report.json"))
    report_two = json.load(open(tmp_path / "two" / "inference_report.json"))
    assert report_two["events"] == 5
    for key in ("loss", "Average/mIoU", "Average/Non_Bkg_Accuracy"):
        np.testing.assert_allclose(report_two[key], report_one[key], rtol=1e-5, err_msg=key)
    with h5py.File(tmp_path / "two" / "predictions.h5") as handle, h5py.File(tmp_path / "one" / "predictions.h5") as ref:
        for name in ("voxels", "voxel_extents"):
            group = [key for key in handle["Data"]][0]
            np.testing.assert_array_equal(handle["Data"][group][name][:], ref["Data"][group][name][:])


# -- failures end the whole job ----------------------------------------------------------------------
def test_an_error_on_one_rank_ends_the_job_naming_the_rank(tmp_path):
    shutil.copy(require_sample(), tmp_path / "bad.h5")
    label = "Data/sparse2d_sbnd_cosmicseg_group"
    with h5py.File(tmp_path / "bad.h5", "r+") as handle:  # entry 2 (rank 1's share of the first batch) gets label 9
        extent = handle[f"{label}/voxel_extents"][2 * 3]
        voxels = handle[f"{label}/voxels"][:]
        voxels["value"][int(extent["first"])] = 9.0
        handle[f"{label}/voxels"][:] = voxels
    begin = time.monotonic()
    done = launch(MPIRUN, "mode=inference", "run.id=f", f"run.output_dir={tmp_path / 'run'}", "run.distributed=true",
                  *COMMON, f"data.data_directory={tmp_path}", "data.file=bad.h5", "data.synthetic=false",
                  f"mode.weights_location={tmp_path / 'absent.pt'}", timeout=120)
    assert done.returncode != 0 and time.monotonic() - begin < 60
    # the missing weights fail on every rank alike; the corrupt entry on rank 1 alone
    assert "error on rank" in done.stderr and "no such checkpoint" in done.stderr
    train([], tmp_path / "model", "run.iterations=1", "run.aux_iterations=0", "mode.checkpoint_iteration=1")
    done = launch(MPIRUN, "mode=inference", "run.id=f", f"run.output_dir={tmp_path / 'run2'}", "run.distributed=true",
                  *COMMON, f"data.data_directory={tmp_path}", "data.file=bad.h5", "data.synthetic=false",
                  f"mode.weights_location={tmp_path / 'model' / 'checkpoints' / 'model-1.pt'}", timeout=120)
    assert done.returncode != 0
    assert "error on rank 1: " in done.stderr and "entry 2 plane 0: label values outside {0, 1, 2}" in done.stderr


def test_a_killed_rank_ends_the_job(tmp_path):
    job = subprocess.Popen([*MPIRUN, sys.executable, EXEC, "mode=train", "run.id=k", f"run.output_dir={tmp_path / 'run'}",
                            "run.distributed=true", *COMMON, "run.iterations=100000", "run.aux_iterations=0",
                            "mode.checkpoint_iteration=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=ENV, cwd=ROOT)
    try:
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:  # rank 1, once it trains
            time.sleep(1)
            for pid in os.listdir("/proc"):
                try:
                    environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
                    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
                except (OSError, ValueError):
                    continue
                if b"OMPI_COMM_WORLD_RANK=1" in environ and b"exec.py" in cmdline and b"run.id=k" in cmdline:
                    victim = int(pid)
            if victim is not None and not (tmp_path / "run" / "train_metrics.csv").exists():
                victim = None
        assert victim is not None, "rank 1 never started training"
        os.kill(victim, signal.SIGKILL)
        begin = time.monotonic()
        out, err = job.communicate(timeout=60)
        assert job.returncode != 0 and time.monotonic() - begin < 60
        assert "rank 1" in err or "rank 1" in out
    finally:
        if job.poll() is None:
            job.kill()


# -- weak scaling: instances of the benchmark in one job ------------------------------------------------
def test_weak_scaling_instances_have_their_own_logs_seeds_and_a_score(tmp_path):
    from benchmark.compliance.checker import check
    from benchmark.results import collect_weak, main as results_main

    train(MPIRUN, tmp_path / "job", "run.distributed=true", "run.instances=2", "run.iterations=2", "run.aux_iterations=2",
          "run.minibatch_size=2", "run.aux_minibatch_size=2")
    logs = [tmp_path / "job" / f"instance-{k}" / "mlperf.log" for k in (0, 1)]
    seeds = []
    for log in logs:
        events = {e["key"]: e["value"] for e in (json.loads(line.split(":::MLLOG ", 1)[1]) for line in open(log))}
        assert events["number_of_ranks"] == 1
        seeds.append((events["seed"], events["data_seed"]))
        assert check(str(log)).passed
    assert seeds == [(3, 5), (4, 6)]  # the seeds given, plus the instance's index
    root = tmp_path / "results"
    common = ["--root", str(root), "--system", "cpu", "--benchmark", "mini", "--implementation", "torch-2D"]
    assert results_main(["store", "--weak", *map(str, logs), *common]) == 1  # ordinary runs are no benchmark result
    from mlperf_logs import events as logged, relabel, write

    logs = [write(log.with_name("as-mini.log"), relabel(logged(log), "mini")) for log in logs]  # the results under test
    assert results_main(["store", "--weak", *map(str, logs), *common]) == 0
    assert results_main(["store", str(logs[0]), str(logs[1]), *common]) == 1  # several logs only with --weak
    [row] = collect_weak(str(root))
    assert (row.job, row.models, row.converged, row.instance_ranks, row.total_ranks) == ("weak_1", 2, 2, 1, 2)
    assert 0 < row.time_to_train_all_min < 5
    assert results_main(["summarize", str(root)]) == 0
    assert "## Weak scaling" in (root / "summary.md").read_text()
