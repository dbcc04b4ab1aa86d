"""The optimized PyTorch path (framework.optimized=true): the reference's function, compiled; and the perf script."""
import argparse
import csv

import numpy as np
import pytest
import torch
from tiny import TINY_NETWORK, TINY_SHAPE

from benchmark import config, registry
from benchmark.cli import main
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from benchmark.errors import ConfigError
from benchmark.perf import activation_scale, isolated_trial_peak_bytes, largest_batch, main as perf_main, max_batch

TOKENS = ["run.id=o", *TINY_NETWORK, "run.seed=3"]


def implementation(optimized: bool, *extra):
    cfg = config.load([*TOKENS, f"framework.optimized={str(optimized).lower()}", *extra])
    return registry.load_class(cfg)(cfg, TINY_SHAPE)


@pytest.mark.parametrize("mode", ["2D", "3D"])
def test_the_optimized_path_is_the_reference_model_compiled(mode):
    reference, optimized = (implementation(flag, f"network.conv_mode={mode}") for flag in (False, True))
    assert optimized.name == f"torch-{mode}-optimized"
    assert optimized.parameter_count() == reference.parameter_count()
    optimized.import_weights(reference.export_weights())  # one checkpoint layout for both
    batch = load_batch(SyntheticSource(8, seed=9), np.arange(4), downsample=5)
    image, _ = reference._to_device(batch)
    reference.model.eval()
    optimized.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(optimized.evaluation_model(image), reference.model(image), rtol=1e-4, atol=1e-5)
    want, got = reference.evaluate(batch, with_predictions=True), optimized.evaluate(batch, with_predictions=True)
    np.testing.assert_allclose(got.loss.item(), want.loss.item(), rtol=1e-5)
    assert (got.predictions != want.predictions).float().mean() < 1e-3


def test_a_short_training_run_follows_the_reference_loss_curve(tmp_path):
    common = ["data.synthetic=true", "data.synthetic_events=16", *TINY_NETWORK, "run.minibatch_size=4", "run.seed=11",
              "data.seed=5", "run.iterations=8", "run.aux_iterations=0", "mode.optimizer.lr_schedule=flat",
              "mode.optimizer.learning_rate=0.01"]
    curves = {}
    for optimized in ("false", "true"):
        out = tmp_path / optimized
        assert main(["mode=train", "run.id=c", f"run.output_dir={out}", f"framework.optimized={optimized}", *common]) == 0
        with open(out / "train_metrics.csv") as handle:
            curves[optimized] = np.array([float(row["loss"]) for row in csv.DictReader(handle)])
    # Pooled batch-norm statistics change the arithmetic a little; the curve must stay the reference's.
    np.testing.assert_allclose(curves["true"], curves["false"], rtol=0.05)
    assert curves["true"][-1] < curves["true"][0]


def test_a_resumed_optimized_run_continues_exactly(tmp_path):
    common = ["data.synthetic=true", "data.synthetic_events=16", *TINY_NETWORK, "run.minibatch_size=4", "run.seed=11",
              "data.seed=5", "run.aux_iterations=0", "mode.checkpoint_iteration=2", "framework.optimized=true"]
    assert main(["mode=train", "run.id=w", f"run.output_dir={tmp_path / 'whole'}", "run.iterations=4", *common]) == 0
    for iterations in (2, 4):  # the second invocation resumes from the first one's checkpoint
        assert main(["mode=train", "run.id=s", f"run.output_dir={tmp_path / 'split'}", f"run.iterations={iterations}",
                     *common]) == 0
    whole, split = (torch.load(tmp_path / run / "checkpoints" / "model-4.pt", weights_only=True) for run in ("whole", "split"))
    for key, value in whole["model"].items():
        torch.testing.assert_close(split["model"][key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("shape", [(2, 3, 4, 6), (1, 2, 1, 5), (3, 4, 7, 2)])
def test_pointwise_bilinear_upsampling_is_torch_s(shape):
    from implementations.torch.blocks import Bilinear2x, torch_bilinear2x

    x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    upstream_x = x.detach().clone().requires_grad_(True)
    ours, theirs = Bilinear2x()(x), torch_bilinear2x()(upstream_x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(theirs)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(x.grad, upstream_x.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting, expected", [([], "default"), (["framework.compile_mode=max-autotune"], "max-autotune")])
def test_the_compile_mode_comes_from_the_configuration(monkeypatch, setting, expected):
    modes = []

    def record(function, mode=None, **kwargs):
        modes.append(mode)
        return function

    monkeypatch.setattr(torch, "compile", record)
    implementation(True, *setting)
    assert modes[:2] == [expected, expected]  # the training and the evaluation forwards (auto: default on the CPU)


def test_a_compile_mode_without_the_optimized_path_is_refused():
    with pytest.raises(ConfigError, match="framework.compile_mode=max-autotune applies to framework.optimized=true only"):
        config.load(["run.id=x", "framework.compile_mode=max-autotune"])


def test_there_is_no_optimized_tensorflow_path():
    with pytest.raises(ConfigError, match="no optimized path for framework.name=tensorflow"):
        registry.check_available(config.load(["run.id=x", "framework.name=tensorflow", "framework.optimized=true"]))


@pytest.mark.parametrize("guess", [1, 2, 7, 50, 99, 100, 101, 3000, 10_000])
@pytest.mark.parametrize("budget, expected", [(0, 0), (1, 1), (7, 7), (8, 8), (100, 100), (10_000, 4096)])
def test_largest_batch_search(budget, expected, guess):
    calls = []

    def fits(batch):
        assert 1 <= batch <= 4096 and batch not in calls
        calls.append(batch)
        return batch <= budget

    assert largest_batch(fits, guess=guess) == expected
    assert len(calls) < 30
    if guess == expected and expected < 4096:
        assert sorted(calls) == [expected, expected + 1]  # a right guess costs two trials


def test_max_batch_fits_memory_from_two_trials_and_checks_the_guess():
    fixed, per_image, budget = 3.0 * 2**30, 0.7 * 2**30, 40.0
    trials = []

    def trial(args, path, batch):  # affine with some noise, out of memory above 60 GiB
        trials.append(batch)
        peak = fixed + batch * per_image + (batch % 3) * 2**20
        return None if peak > 60 * 2**30 else peak

    found = max_batch(None, "reference", budget, True, trial=trial)
    assert found == "52 (measured, 4 trials; 3.00 GiB + 0.701 GiB per image)", found
    assert trials[:2] == [1, 2] and sorted(trials[2:]) == [52, 53]
    assert max_batch(None, "reference", budget, True, trial=lambda *a: None) == "0 (measured, 1 trial)"


def test_a_memory_trial_runs_in_a_process_of_its_own():
    args = argparse.Namespace(network="a21", downsample=5, precision="float32", warmup=1,
                              settings=["network.network_depth=2", "run.compute_mode=CPU"])
    peak = isolated_trial_peak_bytes(args, "reference", 2)
    assert 50 * 2**20 < peak < 8 * 2**30  # the new process's RSS: interpreter, torch, model and one step


def test_the_perf_script_prints_its_table(capsys):
    status = perf_main(["--network", "a21", "--downsample", "5", "--batch", "2", "--steps", "2", "--warmup", "1",
                        "--paths", "reference", "--max-batch", "1", "network.network_depth=2",
                        "run.compute_mode=CPU"])
    assert status == 0
    out = capsys.readouterr().out
    assert "| reference | torch-2D |" in out and "roofline share" in out
    assert "images/s (2 worker processes); memory bandwidth" in out  # the throughput benchmark's workers
    assert "largest batch within 1 GiB, reference:" in out and "(estimated)" in out


@pytest.mark.parametrize("option, value", [("--max-batch", "-1"), ("--max-batch", "nan"), ("--bandwidth", "0")])
def test_the_perf_script_refuses_a_budget_or_bandwidth_that_is_not_positive(capsys, option, value):
    assert perf_main([option, value, "run.compute_mode=CPU"]) == 2
    assert capsys.readouterr().err == f"error: {option} {value}: must be > 0\n"


def test_the_perf_script_profiles_each_path(tmp_path, capsys):
    # settings right after --paths are settings, not paths
    status = perf_main(["--network", "a21", "--downsample", "5", "--batch", "1", "--steps", "1", "--warmup", "1",
                        "--profile", str(tmp_path), "--paths", "reference", "network.network_depth=2",
                        "run.compute_mode=CPU"])
    assert status == 0
    table = (tmp_path / "reference" / "torch_operators.txt").read_text()
    assert "aten::" in table
    out = capsys.readouterr().out
    assert "profile of torch-2D, 3 steps" in out and "Self CPU" in out


def test_autocast_halves_the_counted_activation_bytes():
    # the roofline and the CPU batch estimate count saved activations at 2 bytes under 16-bit autocast
    assert activation_scale("bfloat16") == activation_scale("mixed") == 0.5
    assert activation_scale("float32") == activation_scale("tf32") == 1.0
