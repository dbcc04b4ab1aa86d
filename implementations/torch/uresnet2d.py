"""The CosmicTagger 2D UResNet with the three wire planes folded into the batch.

Upstream applies shared-weight layers to each plane in a Python loop. Here
the planes are folded into the batch axis, planes-major, so each layer is one
call over [3B, C, H, W]; only the deepest block unfolds them to mix planes
on channels. Module names and parameter counts follow upstream.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, Union

import torch
from torch import nn

from .blocks import (Bilinear2x, Block, BlockSeries, ConvSettings, PlaneBatchNorm2d, ProjectThenInterpolate, initialise,
                     join_skip, torch_bilinear2x)

PLANES = 3
CLASSES = 3  # background, cosmic, neutrino


def _choice(option: Any) -> str:
    """The string of a schema enum option (a plain string passes through)."""
    return getattr(option, "value", option)


def planes_to_batch(x: torch.Tensor) -> torch.Tensor:
    """[B, P, C, H, W] -> [P*B, C, H, W], planes-major."""
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


def batch_to_planes(x: torch.Tensor, planes: int = PLANES) -> torch.Tensor:
    """[P*B, C, H, W] (planes-major) -> [B, P, C, H, W]; a view, not a copy."""
    return x.reshape(planes, -1, *x.shape[1:]).transpose(0, 1)


class DeepestBlock(nn.Module):
    """1x1 bottleneck, a BlockSeries at the lowest resolution, 1x1 back.

    With `mix_planes` the planes are concatenated on channels (plane 0's C
    first) so this is the only place where planes see each other; it then
    normalises over the B events once, as upstream. Otherwise the same stack
    runs per plane (C -> bottleneck -> C) on the folded batch.
    """

    def __init__(self, network: Any, settings: ConvSettings, channels: int, mix_planes: bool):
        super().__init__()
        self.mix_planes = mix_planes
        outer = PLANES * channels if mix_planes else channels
        inner = network.bottleneck_deepest
        self.bottleneck = Block(settings, outer, inner, kernel_size=1)
        self.blocks = BlockSeries(settings, inner, network.blocks_deepest_layer, network.filter_size_deepest, network.residual)
        self.unbottleneck = Block(settings, inner, outer, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.mix_planes:
            return self.unbottleneck(self.blocks(self.bottleneck(x)))
        channels = x.shape[1]
        x = batch_to_planes(x).flatten(1, 2)
        x = self.unbottleneck(self.blocks(self.bottleneck(x)))
        return planes_to_batch(x.unflatten(1, (PLANES, channels)))


class UNetLevel(nn.Module):
    """One resolution level: down blocks, downsample, inner level, upsample, skip connection, up blocks.

    The skip is the level's input (before the down blocks) and is joined
    before the up blocks, as in upstream's torch model.
    """

    def __init__(self, network: Any, settings: ConvSettings, depth: int, channels: int):
        super().__init__()
        inner = _inner_channels(network, channels)
        self.connection_kind = _choice(network.connections)
        self.down_blocks = BlockSeries(settings, channels, network.blocks_per_layer, 3, network.residual)
        self.downsample = _downsample(network, settings, channels, inner)
        self.main_module = build_core(network, settings, depth - 1, inner)
        self.upsample = _upsample(network, settings, inner, channels)
        if self.connection_kind == "concat":
            self.connection = Block(settings, 2 * channels, channels, kernel_size=1)
        self.up_blocks = BlockSeries(settings, channels, network.blocks_per_layer, 3, network.residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        x = self.down_blocks(x)
        x = self.main_module(self.downsample(x))
        x = self.upsample(x)
        x = self._connect(x, residual)
        return self.up_blocks(x)

    def _connect(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return join_skip(self.connection_kind, x, residual, getattr(self, "connection", None))


def _inner_channels(network: Any, channels: int) -> int:
    if _choice(network.growth_rate) == "multiplicative":
        return 2 * channels
    return channels + network.n_initial_filters


def _downsample(network: Any, settings: ConvSettings, channels: int, inner: int) -> nn.Module:
    if _choice(network.downsampling) == "max_pooling":
        return nn.Sequential(nn.MaxPool2d(2), Block(settings, channels, inner, kernel_size=1))
    return Block(settings, channels, inner, kernel_size=2, stride=2)


def _upsample(network: Any, settings: ConvSettings, inner: int, channels: int) -> nn.Module:
    if _choice(network.upsampling) == "interpolation":
        kind = ProjectThenInterpolate if settings.project_first else nn.Sequential
        return kind(settings.interpolation(), Block(settings, inner, channels, kernel_size=1))
    return Block(settings, inner, channels, kernel_size=2, stride=2, conv=nn.ConvTranspose2d)


def build_core(network: Any, settings: ConvSettings, depth: int, channels: int) -> Union[UNetLevel, DeepestBlock]:
    """The U-Net from `depth` levels above the deepest block down to it."""
    if depth > 0:
        return UNetLevel(network, settings, depth, channels)
    if network.block_concat:
        return DeepestBlock(network, settings, channels, mix_planes=False)
    # the mixed block sees each event once, so its normalisation is a plain BatchNorm2d
    mixed = replace(settings, norm=nn.BatchNorm2d if settings.norm is not None else None)
    return DeepestBlock(network, mixed, channels, mix_planes=True)


class UResNet(nn.Module):
    """Segments each of the 3 wire planes into background, cosmic and neutrino pixels.

    `network` has the attributes of `benchmark.config.schema.NetworkConfig`.
    `per_plane_batch_norm=False` normalises all planes together in training
    (not upstream's semantics; eval mode is the same either way).
    `pointwise_upsampling=True` interpolates with `Bilinear2x` (the same
    function, a backward that compiles better). `project_first=True` runs
    each interpolation's 1x1 convolution before it (`ProjectThenInterpolate`:
    the same function, less work). Activations overwrite their input unless
    `inplace_activation=False` (the same values, fewer large allocations).
    """

    def __init__(self, network: Any, per_plane_batch_norm: bool = True, pointwise_upsampling: bool = False,
                 project_first: bool = False, inplace_activation: bool = True):
        super().__init__()
        filters = network.n_initial_filters
        norm = partial(PlaneBatchNorm2d, planes=PLANES, per_plane=per_plane_batch_norm) if network.batch_norm else None
        settings = ConvSettings(bias=network.bias, norm=norm, project_first=project_first,
                                inplace_activation=inplace_activation,
                                interpolation=Bilinear2x if pointwise_upsampling else torch_bilinear2x)
        self.initial_convolution = Block(settings, 1, filters, kernel_size=5)
        self.net_core = build_core(network, settings, network.network_depth, filters)
        self.final_layer = BlockSeries(settings, filters, network.blocks_final, 3, network.residual)
        self.bottleneck = nn.Conv2d(filters, CLASSES, kernel_size=1)
        initialise(self, nn.Conv2d, nn.BatchNorm2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> logits [B, 3 planes, 3 classes, H, W] (a strided view).

        H and W must be divisible by 2**network_depth.
        """
        x = planes_to_batch(x.unsqueeze(2))
        x = self.initial_convolution(x)
        x = self.net_core(x)
        x = self.final_layer(x)
        return batch_to_planes(self.bottleneck(x))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
