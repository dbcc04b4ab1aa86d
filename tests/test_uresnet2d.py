"""Tests of the torch 2D UResNet: parameter counts, options, plane folding, per-plane batch norm."""
from __future__ import annotations

import itertools

import pytest
import torch

from benchmark.config.schema import Connection, Downsampling, GrowthRate, NetworkConfig, Upsampling
from implementations.torch.blocks import PlaneBatchNorm2d
from implementations.torch.upstream_like import PlaneByPlaneUResNet
from implementations.torch.uresnet2d import UResNet, count_parameters

from tiny import BATCH, HEIGHT, WIDTH, images, network, tiny


def build(config: NetworkConfig, seed: int = 0, **kwargs) -> UResNet:
    torch.manual_seed(seed)
    return UResNet(config, **kwargs)


# The upstream presets and their trainable parameter counts (reference sect. 2.3).
PRESETS = {
    "uresnet": (dict(), 18_382_131),
    "a21": (dict(n_initial_filters=8, residual=False, blocks_final=0, connections=Connection.sum), 8_510_547),
    "polaris": (dict(blocks_deepest_layer=2, blocks_final=2, network_depth=7, bottleneck_deepest=96,
                     residual=False, connections=Connection.sum), 1_926_403),
    "scc21": (dict(batch_norm=False), 18_367_891),
    "uresnet_multiplicative": (dict(growth_rate=GrowthRate.multiplicative), 45_291_155),
}


@pytest.mark.parametrize("preset", PRESETS)
def test_parameter_count_matches_upstream(preset):
    options, expected = PRESETS[preset]
    with torch.device("meta"):
        model = UResNet(network(**options))
    assert count_parameters(model) == expected


OPTIONS = {
    "connections": list(Connection),
    "residual": [True, False],
    "growth_rate": list(GrowthRate),
    "downsampling": list(Downsampling),
    "upsampling": list(Upsampling),
    "block_concat": [False, True],
}
COMBINATIONS = [dict(zip(OPTIONS, values)) for values in itertools.product(*OPTIONS.values())]


def _forward_backward(config: NetworkConfig) -> None:
    model = build(config)
    logits = model(images())
    assert logits.shape == (BATCH, 3, 3, HEIGHT, WIDTH)
    logits.square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("options", COMBINATIONS, ids=lambda o: "-".join(str(getattr(v, "value", v)) for v in o.values()))
def test_every_structure_runs_forward_and_backward(options):
    _forward_backward(tiny(**options))


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_normalisation_and_bias_options(batch_norm, bias):
    config = tiny(batch_norm=batch_norm, bias=bias)
    _forward_backward(config)
    model = build(config)
    has_norm = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    conv_biases = [m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert has_norm == batch_norm
    assert conv_biases[:-1] == [bias] * (len(conv_biases) - 1)
    assert conv_biases[-1]  # the output 1x1 always has a bias


FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _plane_by_plane(norm: torch.nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """The split/concat definition of the per-plane norm: upstream's one call per plane, in plane order."""
    return torch.cat([norm(plane) for plane in x.chunk(3)], dim=0)


@pytest.mark.parametrize("layout", FORMATS)
@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("momentum", [0.3, None], ids=["momentum", "cumulative"])
def test_per_plane_batch_norm_is_upstream_s_one_call_per_plane(layout, events, momentum):
    torch.manual_seed(events)
    norm = PlaneBatchNorm2d(5, momentum=momentum)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    upstream = torch.nn.BatchNorm2d(5, momentum=momentum)
    upstream.load_state_dict(norm.state_dict())
    for step in range(2):  # the second step updates running statistics that are no longer the initial ones
        # each plane its own location and scale, so pooled statistics would differ from per-plane ones
        offsets = torch.tensor([3.0, -1.0, 0.5]).repeat_interleave(events).view(-1, 1, 1, 1)
        x = (torch.randn(3 * events, 5, 6, 10) * (1 + offsets.abs()) + offsets).to(memory_format=FORMATS[layout])
        ours, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y, expected = norm(ours), _plane_by_plane(upstream, theirs)
        assert y.is_contiguous(memory_format=FORMATS[layout])
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
        weights = torch.randn_like(expected)
        (y * weights).sum().backward()
        (expected * weights).sum().backward()
        assert ours.grad.is_contiguous(memory_format=FORMATS[layout])
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-5)
        for name in ("weight", "bias"):
            torch.testing.assert_close(getattr(norm, name).grad, getattr(upstream, name).grad, rtol=1e-5, atol=1e-5,
                                       msg=name)
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(getattr(norm, name), getattr(upstream, name), rtol=1e-6, atol=1e-6, msg=name)
        assert int(norm.num_batches_tracked) == int(upstream.num_batches_tracked) == 3 * (step + 1)


@pytest.mark.parametrize("layout", FORMATS)
def test_per_plane_batch_norm_concatenates_and_copies_no_plane_data(layout):
    """Forward and backward write each result once, into one tensor for the whole folded batch: no plane is
    split off into a tensor of its own to be concatenated or copied back (only [C]-sized statistics move)."""
    norm = PlaneBatchNorm2d(4)
    x = torch.randn(6, 4, 5, 5).to(memory_format=FORMATS[layout]).requires_grad_(True)
    with torch.profiler.profile(record_shapes=True) as profile:
        norm(x).sum().backward()
    events = profile.key_averages(group_by_input_shape=True)
    assert not [event.key for event in events if event.key in ("aten::cat", "aten::stack")]
    moved = [(event.key, event.input_shapes) for event in events
             if event.key in ("aten::copy_", "aten::clone", "aten::contiguous")
             and any(shape and torch.Size(shape).numel() > 4 for shape in event.input_shapes if isinstance(shape, list))]
    assert not moved, moved


def test_per_plane_batch_norm_in_evaluation_is_a_plain_batch_norm():
    norm = PlaneBatchNorm2d(4)
    norm(torch.randn(6, 4, 5, 5) * 3 + 1)  # running statistics away from their initial values
    plain = torch.nn.BatchNorm2d(4)
    plain.load_state_dict(norm.state_dict())
    x = torch.randn(6, 4, 5, 5)
    assert torch.equal(norm.eval()(x), plain.eval()(x))


def test_per_plane_batch_norm_refuses_a_batch_that_is_not_whole_planes():
    with pytest.raises(ValueError, match="a batch of 4 is not 3 planes of equal size"):
        PlaneBatchNorm2d(2)(torch.randn(4, 2, 3, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        PlaneBatchNorm2d(2)(torch.randn(3, 2, 1, 1))


@pytest.mark.parametrize("layout", FORMATS)
@pytest.mark.parametrize("options", [dict(connections=Connection.concat, residual=True),
                                     dict(connections=Connection.sum, residual=False, block_concat=True)],
                         ids=["concat-residual", "sum-plain-unmixed"])
def test_training_is_upstream_s_plane_by_plane_network(layout, options):
    """Logits, every gradient and every buffer of one training step equal upstream's loop over the planes.

    In float64: the tiny network's deep batch norms see few values, and float32 rounding alone moves its logits
    by ~1e-4 in either implementation, so float32 could not tell a wrong function from rounding here (the
    single layer is compared in float32 above)."""
    model = build(tiny(**options)).train().to(torch.float64, memory_format=FORMATS[layout])
    upstream = PlaneByPlaneUResNet(tiny(**options)).train().to(torch.float64, memory_format=FORMATS[layout])
    upstream.load_state_dict(model.state_dict())
    assert not any(isinstance(m, PlaneBatchNorm2d) for m in upstream.modules())  # plain BatchNorm2d layers
    x = images().to(torch.float64, memory_format=FORMATS[layout])
    logits, expected = model(x), upstream(x)
    torch.testing.assert_close(logits, expected, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(expected)
    (logits * weights).sum().backward()
    (expected * weights).sum().backward()
    parameters = dict(upstream.named_parameters())
    for name, parameter in model.named_parameters():
        # a convolution bias before a batch norm has a zero gradient: rounding noise, compared against the scale
        scale = parameters[name].grad.abs().max().item()
        torch.testing.assert_close(parameter.grad, parameters[name].grad, rtol=1e-8, atol=1e-8 * max(scale, 1.0),
                                   msg=name)
    buffers = dict(upstream.named_buffers())
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, buffers[name], rtol=1e-10, atol=1e-12, msg=name)
    assert int(model.initial_convolution.norm.num_batches_tracked) == 3


def test_shared_statistics_differ_in_training_but_not_in_eval():
    config = tiny()
    per_plane = build(config)
    per_plane.train()(images(1))  # running statistics away from their initial values
    shared = UResNet(config, per_plane_batch_norm=False)
    shared.load_state_dict(per_plane.state_dict())
    x = images()
    assert torch.equal(per_plane.eval()(x), shared.eval()(x))
    assert not torch.allclose(per_plane.train()(x), shared.train()(x))


def test_planes_share_weights_without_the_mixing_block():
    model = build(tiny(block_concat=True)).eval()
    x = images()
    swapped = x[:, [2, 1, 0]]
    with torch.no_grad():
        torch.testing.assert_close(model(swapped), model(x)[:, [2, 1, 0]])


def test_channels_last_gives_the_same_output():
    model = build(tiny()).eval()
    x = images()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), expected, atol=1e-5, rtol=1e-5)
        model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), expected, atol=1e-5, rtol=1e-5)


def test_bfloat16_autocast_runs():
    model = build(tiny())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images())
    assert logits.shape == (BATCH, 3, 3, HEIGHT, WIDTH)
    assert torch.isfinite(logits.float()).all()
