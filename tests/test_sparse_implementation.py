"""The sparse implementation (network.conv_mode=sparse) through the harness: training, profiling, resume,
inference, summary, MLPerf logs, precision, and a 2-rank DDP run."""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.compliance.checker import check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMON = ["network.conv_mode=sparse", "data.synthetic=true", "data.synthetic_events=8", *TINY_NETWORK,
          "run.minibatch_size=2", "run.aux_minibatch_size=2", "run.seed=11", "data.seed=5",
          "mode.optimizer.lr_schedule=flat", "mode.optimizer.learning_rate=0.01"]


def run(tmp_path, name, *extra, mode="train"):
    out = tmp_path / name
    return main([f"mode={mode}", f"run.id={name}", f"run.output_dir={out}", *COMMON, *extra]), out


def losses(out):
    with open(out / "train_metrics.csv") as handle:
        return [(row["step"], row["loss"]) for row in csv.DictReader(handle)]


def test_sparse_trains_resumes_and_infers(tmp_path, capsys):
    common = ["run.aux_iterations=2", "mode.checkpoint_iteration=2", "run.validation=full"]
    assert run(tmp_path, "whole", "run.iterations=4", "run.profile=true", *common)[0] == 0
    assert "implementation: torch-sparse" in capsys.readouterr().out
    assert (tmp_path / "whole" / "profile" / "torch_trace.json").stat().st_size > 0
    assert run(tmp_path, "split", "run.iterations=2", *common)[0] == 0
    assert run(tmp_path, "split", "run.iterations=4", *common)[0] == 0
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert check(str(tmp_path / "whole" / "mlperf.log")).passed
    status, out = run(tmp_path, "whole", "data.synthetic_events=4", mode="inference")
    assert status == 0 and "-- INFERENCE REPORT -- 4 events" in capsys.readouterr().out
    assert (out / "predictions.h5").exists()
    assert json.load(open(out / "inference_report.json"))["events"] == 4


def test_summary_counts_the_sparse_network(tmp_path, capsys):
    out = tmp_path / "summary"
    assert main(["mode=summary", "run.id=s", f"run.output_dir={out}", "network=uresnet_sparse", "data.downsample=1",
                 "run.compute_mode=CPU"]) == 0
    text = capsys.readouterr().out
    # the dense 2D model's count: the 3D model's 18,381,459 plus the 2D-style deepest block's 672
    assert "trainable parameters: 18,382,131" in text
    assert "forward FLOP per image" in text and "net_core" in text


def test_reduced_precision_is_refused_on_the_cpu(tmp_path, capsys):
    assert run(tmp_path, "bf16", "run.precision=bfloat16", "run.iterations=1")[0] == 2
    assert "spconv computes in float32 on the CPU" in capsys.readouterr().err


def test_ddp_with_the_sparse_model_equals_one_rank(tmp_path):
    steps = ["run.iterations=2", "run.aux_iterations=0", "mode.checkpoint_iteration=2", "network.batch_norm=false",
             "run.minibatch_size=4", "framework.intra_op_parallelism_threads=1"]
    env = {**os.environ, "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    exe = [sys.executable, os.path.join(ROOT, "bin", "exec.py"), "mode=train", "run.id=d", *COMMON, *steps]
    one = subprocess.run([*exe, f"run.output_dir={tmp_path / 'one'}"], capture_output=True, text=True, env=env, cwd=ROOT)
    two = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", *exe, "run.distributed=true",
                          f"run.output_dir={tmp_path / 'two'}"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "checkpoints" / "model-2.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "two" / "checkpoints" / "model-2.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
