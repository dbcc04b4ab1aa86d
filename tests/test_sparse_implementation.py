"""The sparse implementation (network.conv_mode=sparse) through the harness: training, profiling, resume,
inference, summary, MLPerf logs, precision (its 2-rank DDP run is in test_distributed.py)."""
import csv
import json

from exact_state import assert_same_checkpoints
from tiny import TINY_NETWORK

from benchmark.cli import main
from benchmark.compliance.checker import check

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
    printed = capsys.readouterr().out
    assert "implementation: torch-sparse" in printed and "throughput:" in printed and "images/s" in printed
    assert (tmp_path / "whole" / "profile" / "torch_trace.json").stat().st_size > 0
    assert run(tmp_path, "split", "run.iterations=2", *common)[0] == 0
    assert run(tmp_path, "split", "run.iterations=4", *common)[0] == 0
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert_same_checkpoints(tmp_path / "whole", tmp_path / "split", steps=[4])  # weights, optimizer, RNG: every bit
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


def test_precisions_spconv_lacks_are_refused_before_anything_is_written(tmp_path, capsys):
    assert run(tmp_path, "bf16", "run.precision=bfloat16", "run.iterations=1")[0] == 2
    assert "spconv has no bfloat16 kernels" in capsys.readouterr().err
    assert not (tmp_path / "bf16").exists()
    # a finished run's folder gains nothing: no new configuration, no half-started MLPerf log
    assert run(tmp_path, "done", "run.iterations=1", "run.aux_iterations=0")[0] == 0
    before = sorted(path.name for path in (tmp_path / "done").iterdir())
    assert run(tmp_path, "done", "run.precision=mixed", "run.iterations=2", mode="train")[0] == 2
    assert "spconv computes in float32 on the CPU" in capsys.readouterr().err
    assert sorted(path.name for path in (tmp_path / "done").iterdir()) == before
