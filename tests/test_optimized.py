"""The optimized PyTorch path (framework.optimized=true): the reference's function, compiled; and the perf script."""
import argparse
import csv
import re

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


def _training_step(impl, image, label):
    """Training-mode logits, loss, parameter gradients and buffers of one forward and backward pass."""
    impl.model.train()
    logits = impl.training.train_model(image)
    loss = impl.loss_fn(logits, label)
    loss.backward()
    return {"logits": logits.detach().double(), "loss": loss.detach().double(),
            **{f"gradient {name}": p.grad.double() for name, p in impl.model.named_parameters()},
            **{f"buffer {name}": b.double() for name, b in impl.model.named_buffers()}}


@pytest.mark.parametrize("mode", ["2D", "3D"])
def test_the_optimized_path_trains_the_reference_s_function(mode):
    """From the same weights and batch: the same training-mode logits, loss, gradients and running statistics.

    The same function: in float64 both paths agree to 1e-6 of each tensor's largest value. Within float32
    tolerance: 1e-3 of each tensor's largest value, or twice the reference's own float32 error (against the
    same step in float64) where that is larger. (This tiny network has nearly constant channels, whose batch
    norms magnify rounding: some of the float32 reference's gradients differ from float64 by 3 %, so two
    correct float32 orders of summation, an AVX-512 CPU's compiled kernels and the reference's, can differ
    by more than 1e-4.) Pooled batch-norm statistics move the logits and gradients by tens of percents.
    Dynamo starts afresh and the test checks that compiled graphs ran: past its recompile limit (other
    tests' models) dynamo would run the optimized path eagerly and prove nothing."""
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]  # reset() keeps the counters
    impls = {(flag, dtype): implementation(flag, f"network.conv_mode={mode}")
             for flag in (False, True) for dtype in (torch.float32, torch.float64)}
    weights = impls[False, torch.float32].export_weights()
    for (_, dtype), impl in impls.items():
        impl.import_weights(weights)
        impl.model.to(dtype)
    batch = load_batch(SyntheticSource(8, seed=9), np.arange(4), downsample=5)
    image, label = impls[False, torch.float32]._to_device(batch)
    steps = {key: _training_step(impl, image.to(key[1]), label) for key, impl in impls.items()}
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs, "the optimized path ran nothing compiled"
    for precision, reference_tolerance in ((torch.float64, 1e-6), (torch.float32, 1e-3)):
        want, got, truth = steps[False, precision], steps[True, precision], steps[False, torch.float64]
        assert got.keys() == want.keys()
        largest_gradient = max(value.abs().max().item() for key, value in want.items() if key.startswith("gradient"))
        for key, value in want.items():
            scale = value.abs().max().item()
            if key.startswith("gradient") and scale < 1e-6 * largest_gradient:
                # a convolution bias before a batch norm: zero but for rounding, in both paths
                assert got[key].abs().max().item() < 1e-6 * largest_gradient, key
                continue
            tolerance = max(reference_tolerance * scale, 2 * (value - truth[key]).abs().max().item())
            error = (got[key] - value).abs().max().item()
            assert error <= tolerance, (str(precision), key, error, tolerance)
    torch.testing.assert_close(steps[True, torch.float32]["loss"], steps[False, torch.float32]["loss"], rtol=1e-5, atol=0)


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
    # The same function: the first step's loss agrees to the printed digits; rounding differences, which Adam's
    # steps grow, stay near 1.5e-3 by step 8 (pooled batch-norm statistics, the old arithmetic: 7e-3 at step 1).
    np.testing.assert_allclose(curves["true"][0], curves["false"][0], rtol=1e-5)
    np.testing.assert_allclose(curves["true"], curves["false"], rtol=3e-3)
    assert curves["true"][-1] < curves["true"][0]


def test_a_resumed_optimized_run_continues_exactly(tmp_path):
    common = ["data.synthetic=true", "data.synthetic_events=16", *TINY_NETWORK, "run.minibatch_size=4", "run.seed=11",
              "data.seed=5", "run.aux_iterations=0", "mode.checkpoint_iteration=2", "framework.optimized=true"]
    assert main(["mode=train", "run.id=w", f"run.output_dir={tmp_path / 'whole'}", "run.iterations=4", *common]) == 0
    for iterations in (2, 4):  # the second invocation resumes from the first one's checkpoint
        assert main(["mode=train", "run.id=s", f"run.output_dir={tmp_path / 'split'}", f"run.iterations={iterations}",
                     *common]) == 0
    whole, split = (torch.load(tmp_path / run / "checkpoints" / "model-4.pt", weights_only=True) for run in ("whole", "split"))
    for part in ("model", "optimizer"):  # weights and buffers; Adam's step counts and moments, and its settings
        want, got = _flat(whole[part]), _flat(split[part])
        assert got.keys() == want.keys() and any(torch.is_tensor(value) for value in want.values()), part
        for key, value in want.items():
            if torch.is_tensor(value):
                assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
                assert torch.equal(_bits(got[key]), _bits(value)), f"{key}: not the same bits"
            else:
                assert got[key] == value, key


def _flat(state, prefix: str = "") -> dict:
    """A nested state_dict as {"a/b/0": value}."""
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {prefix: state}
    return {key: value for name, item in items for key, value in _flat(item, f"{prefix}/{name}").items()}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes: equal bits, not merely equal values (signed zeros, NaNs)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


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


@pytest.mark.parametrize("interpolation", ["Bilinear2x", "torch_bilinear2x"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["contiguous", "channels_last"])
def test_projecting_before_the_interpolation_is_the_same_function(interpolation, layout):
    from implementations.torch import blocks
    from implementations.torch.blocks import Block, ConvSettings, ProjectThenInterpolate

    torch.manual_seed(0)
    settings = ConvSettings(bias=True, norm=blocks.PlaneBatchNorm2d)
    upstream = torch.nn.Sequential(getattr(blocks, interpolation)(), Block(settings, 6, 4, kernel_size=1)).double()
    projected = ProjectThenInterpolate(getattr(blocks, interpolation)(), Block(settings, 6, 4, kernel_size=1)).double()
    projected.load_state_dict(upstream.state_dict())  # the same module names
    x = torch.randn(6, 6, 5, 7, dtype=torch.float64).contiguous(memory_format=layout)
    inputs = [x.clone().requires_grad_(True) for _ in range(2)]
    outputs = [model(value) for model, value in zip((upstream, projected), inputs)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(outputs[0])
    for output in outputs:
        (output * weights).sum().backward()
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, rtol=1e-12, atol=1e-12)
    gradients = dict(upstream.named_parameters())
    for name, parameter in projected.named_parameters():
        torch.testing.assert_close(parameter.grad, gradients[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_the_optimized_2d_model_projects_before_interpolating():
    from implementations.torch.blocks import Bilinear2x, ProjectThenInterpolate

    optimized = implementation(True)
    upsamplers = [m for m in optimized.model.modules() if isinstance(m, ProjectThenInterpolate)]
    assert upsamplers and all(isinstance(m[0], Bilinear2x) for m in upsamplers)
    assert not any(isinstance(m, ProjectThenInterpolate) for m in implementation(False).model.modules())


@pytest.mark.parametrize("setting, expected", [([], "default"), (["framework.compile_mode=max-autotune"], "max-autotune")])
def test_the_compile_mode_comes_from_the_configuration(monkeypatch, setting, expected):
    modes = []

    def record(function, mode=None, **kwargs):
        modes.append(mode)
        return function

    monkeypatch.setattr(torch, "compile", record)
    implementation(True, *setting)
    assert modes[:2] == [expected, expected]  # the training and the evaluation forwards (auto: default on the CPU)


@pytest.mark.parametrize("capability, filters, simdlen", [("AVX512", 8, 256), ("AVX512", 16, None), ("AVX2", 8, None)])
def test_narrow_networks_compile_256_bit_wide_on_avx512(monkeypatch, capability, filters, simdlen):
    import torch._inductor.config as inductor_config
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch, "compile", lambda function, **kwargs: function)
    with inductor_config.patch({"cpp.simdlen": None}):  # the process's setting, restored after the test
        implementation(True, f"network.n_initial_filters={filters}")
        assert inductor_config.cpp.simdlen == simdlen


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
    # the throughput benchmark's source: the synthetic pool (made untimed when opened), gathered by loader threads
    assert re.search(r"input pipeline: [\d.]+ images/s \(2 worker threads gathering from a pool of 64 events "
                     r"\([\d.]+ MB, made in [\d.]+ s by \d processes?\)\); memory bandwidth", out), out
    assert "largest batch within 1 GiB, reference:" in out and "(estimated)" in out


def test_the_perf_script_times_upstream_s_plane_by_plane_network(capsys):
    status = perf_main(["--network", "a21", "--downsample", "5", "--batch", "1", "--steps", "1", "--warmup", "1",
                        "--paths", "reference", "upstream", "network.network_depth=2", "run.compute_mode=CPU"])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("| path |"))
    assert "| x reference | x upstream |" in header
    row = next(line for line in lines if line.startswith("| upstream |")).split("|")
    assert row[2].strip() == "torch-2D-upstream-like" and float(row[4]) > 0
    assert row[5].strip() == "1.00"  # the upstream path against itself


def test_the_upstream_path_is_the_reference_network_run_plane_by_plane():
    from implementations.torch.blocks import PlaneBatchNorm2d
    from implementations.torch.upstream_like import TorchUpstreamLike2D

    cfg = config.load(TOKENS)
    reference, upstream = registry.load_class(cfg)(cfg, TINY_SHAPE), TorchUpstreamLike2D(cfg, TINY_SHAPE)
    assert upstream.parameter_count() == reference.parameter_count()
    shapes = {key: value.shape for key, value in reference.model.state_dict().items()}
    assert {key: value.shape for key, value in upstream.model.state_dict().items()} == shapes
    norms = [m for m in upstream.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and not any(isinstance(m, PlaneBatchNorm2d) for m in norms)  # plain batch norms, one call per plane
    upstream.import_weights(reference.export_weights())
    batch = load_batch(SyntheticSource(8, seed=9), np.arange(2), downsample=5)
    losses = [float(impl.fetch(impl.accumulate(batch, 1.0).loss)) for impl in (reference, upstream)]
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


def test_the_perf_script_refuses_the_upstream_path_outside_torch_2d_before_measuring(capsys):
    assert perf_main(["--paths", "reference", "upstream", "network.conv_mode=3D", "run.compute_mode=CPU"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("error: --paths upstream: the plane-by-plane network is PyTorch's 2D UResNet, not "
                            "framework.name=torch network.conv_mode=3D\n")
    assert "images/s" not in captured.out  # nothing was measured


def test_the_perf_table_marks_an_estimated_training_flop():
    from benchmark.perf import Figures, table

    figures = [Figures("reference", "tensorflow-2D", 2.0, 1.0, False, 4.0, 0.024, "estimated, 3x forward", 10.0),
               Figures("optimized", "torch-2D-optimized", 3.0, 1.0, False, 4.0, 0.036, "counted", 10.0)]
    rows = table(figures, (100.0, "2 threads"), 20.0, "given").splitlines()
    assert "| 0.024 (estimated, 3x forward) |" in rows[2] and "| 0.036 |" in rows[3]
    assert "x upstream" not in rows[0]


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
