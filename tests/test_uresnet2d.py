"""Tests of the torch 2D UResNet: parameter counts, options, plane folding, per-plane batch norm."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch

from benchmark.config.schema import Connection, Downsampling, GrowthRate, NetworkConfig, Upsampling
from implementations.torch.blocks import PlaneBatchNorm2d
from implementations.torch.uresnet2d import DeepestBlock, UResNet, count_parameters

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


# A plane-by-plane forward pass over the same modules, the way upstream runs them.
def _per_plane(module, planes):
    return [module(plane) for plane in planes]


def _reference_core(level, planes):
    if isinstance(level, DeepestBlock):
        mixed = torch.cat(planes, dim=1)
        mixed = level.unbottleneck(level.blocks(level.bottleneck(mixed)))
        return list(mixed.chunk(3, dim=1))
    residuals = planes
    planes = _per_plane(level.down_blocks, planes)
    planes = _per_plane(level.downsample, planes)
    planes = _reference_core(level.main_module, planes)
    planes = _per_plane(level.upsample, planes)
    planes = [level.connection(torch.cat([x, r], dim=1)) for x, r in zip(planes, residuals)]
    return _per_plane(level.up_blocks, planes)


def reference_forward(model: UResNet, x: torch.Tensor) -> torch.Tensor:
    """Upstream's loop over planes; the model's PlaneBatchNorm2d must act as plain BatchNorm2d."""
    planes = list(x.chunk(3, dim=1))
    planes = _per_plane(model.initial_convolution, planes)
    planes = _reference_core(model.net_core, planes)
    planes = _per_plane(model.final_layer, planes)
    return torch.stack(_per_plane(model.bottleneck, planes), dim=1)


def test_training_batch_norm_is_per_plane_like_upstream():
    model = build(tiny(connections=Connection.concat, residual=True)).train()
    reference = copy.deepcopy(model)
    for module in reference.modules():
        if isinstance(module, PlaneBatchNorm2d):
            module.per_plane = False  # each call sees one plane already
    x = images()
    torch.testing.assert_close(model(x), reference_forward(reference, x), atol=1e-6, rtol=1e-6)
    buffers = dict(reference.named_buffers())
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, buffers[name], atol=1e-6, rtol=1e-6, msg=name)
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
