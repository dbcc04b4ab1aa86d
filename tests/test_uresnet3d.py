"""Tests of the torch 3D UResNet: parameter count, options, per-plane layers outside the deepest block."""
from __future__ import annotations

import pytest
import torch

from benchmark.config.schema import Connection, Downsampling, GrowthRate, NetworkConfig, Upsampling
from implementations.torch.uresnet3d import DeepestBlock3D, UResNet3D, count_parameters

from tiny import BATCH, HEIGHT, WIDTH, images, network, tiny


def build(config: NetworkConfig, seed: int = 0) -> UResNet3D:
    torch.manual_seed(seed)
    return UResNet3D(config)


def test_default_parameter_count_matches_upstream_uresnet3d():
    with torch.device("meta"):
        model = UResNet3D(network())
    assert count_parameters(model) == 18_381_459


def test_only_the_deepest_block_mixes_planes():
    with torch.device("meta"):
        model = UResNet3D(network())
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv3d) and module.kernel_size[0] != 1:
            assert name.split(".")[-2] in ("merger", "splitter"), name
            assert isinstance(model.get_submodule(name.rsplit(".", 2)[0]), DeepestBlock3D)
            assert module.kernel_size == (3, 1, 1) and module.padding == (1, 0, 0)


VARIANTS = [
    dict(),
    dict(connections=Connection.sum, residual=False),
    dict(connections=Connection.none),
    dict(downsampling=Downsampling.convolutional, upsampling=Upsampling.convolutional),
    dict(connections=Connection.sum, downsampling=Downsampling.convolutional, growth_rate=GrowthRate.multiplicative),
    dict(upsampling=Upsampling.convolutional, residual=False, batch_norm=False, bias=False),
]


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: "-".join(f"{k}={getattr(v, 'value', v)}" for k, v in o.items()) or "default")
def test_forward_shape_and_finite_gradients(options):
    model = build(tiny(**options))
    logits = model(images())
    assert logits.shape == (BATCH, 3, 3, HEIGHT, WIDTH)
    logits.square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_eval_output_is_finite_and_deterministic():
    model = build(tiny()).eval()
    with torch.no_grad():
        first, second = model(images()), model(images())
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)  # the same computation on the CPU: bit for bit, not merely close


def test_planes_share_weights_outside_the_deepest_block():
    """Swapping planes 0 and 1 of the input swaps them in the per-plane features (eval mode)."""
    model = build(tiny()).eval()
    x = images()
    swap = [1, 0, 2]

    def features(images: torch.Tensor) -> torch.Tensor:
        level = model.net_core
        return level.down_blocks(model.initial_convolution(images.unsqueeze(1)))  # [B, C, planes, H, W]

    with torch.no_grad():
        torch.testing.assert_close(features(x[:, swap]), features(x)[:, :, swap])
        # and the planes really differ, so the check is not vacuous
        assert not torch.allclose(features(x)[:, :, 0], features(x)[:, :, 1])


def test_planes_mix_in_the_deepest_block():
    """A change on one plane reaches the other planes' logits (through merger/splitter)."""
    model = build(tiny()).eval()
    x = images()
    y = x.clone()
    y[:, 0] += 1.0
    with torch.no_grad():
        changed = (model(y) - model(x)).abs().amax(dim=(0, 2, 3, 4))
    assert (changed > 0).all()
