"""The CosmicTagger UResNet with the three wire planes as a depth axis.

The input [B, 3, H, W] is viewed as [B, 1, 3, H, W] and every layer is a
Conv3d with a [1, k, k] kernel, so each plane is processed alone with shared
weights. Planes only see each other in the deepest block, whose `merger` and
`splitter` have [3, 1, 1] kernels (padding 1 on the plane axis, so the depth
stays 3). BatchNorm3d normalises over the three planes together.

Structure as upstream's torch `uresnet3D.py` (18,381,459 parameters for the
default network): the skip is taken after a level's down blocks and joined
after its up blocks (concat order [x, skip]); interpolation upsampling is
nearest-neighbour; the convolutional down/up samplers end in a plain ReLU.
Unlike upstream (which keeps torch's defaults) the weights get the 2D
model's init: xavier-uniform Conv3d with zero bias, unit BatchNorm.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block, BlockSeries, ConvSettings, initialise, join_skip
from .uresnet2d import CLASSES, PLANES, _choice, _inner_channels, count_parameters

__all__ = ["UResNet3D", "Block3D", "BlockSeries3D", "DeepestBlock3D", "UNetLevel3D", "count_parameters"]

Kernel = Tuple[int, int, int]


def _planar(k: int) -> Kernel:
    """A k x k kernel applied to each plane alone."""
    return (1, k, k)


# The 2D model's blocks with Conv3d. Padding is "same" for odd kernels along each axis: 0 on the plane
# axis for [1, k, k], 1 for the [3, 1, 1] merger/splitter, 0 for the [1, 2, 2] stride-2 samplers.
Block3D = partial(Block, conv=nn.Conv3d)
BlockSeries3D = partial(BlockSeries, block=Block3D)


class DeepestBlock3D(nn.Module):
    """The only cross-plane layers: merger [3,1,1] C->bottleneck, per-plane blocks, splitter [3,1,1] back to C."""

    def __init__(self, network: Any, settings: ConvSettings, channels: int):
        super().__init__()
        inner = network.bottleneck_deepest
        self.merger = Block3D(settings, channels, inner, kernel_size=(PLANES, 1, 1))
        self.blocks = BlockSeries3D(settings, inner, network.blocks_deepest_layer, _planar(network.filter_size_deepest), network.residual)
        self.splitter = Block3D(settings, inner, channels, kernel_size=(PLANES, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.splitter(self.blocks(self.merger(x)))


class UNetLevel3D(nn.Module):
    """One resolution level: down blocks, skip, downsample, inner level, upsample, up blocks, connection.

    As upstream's 3D model: the skip is taken after the down blocks and
    joined after the up blocks.
    """

    def __init__(self, network: Any, settings: ConvSettings, depth: int, channels: int):
        super().__init__()
        inner = _inner_channels(network, channels)
        self.connection_kind = _choice(network.connections)
        self.down_blocks = BlockSeries3D(settings, channels, network.blocks_per_layer, _planar(3), network.residual)
        self.downsample = _downsample(network, settings, channels, inner)
        self.main_module = build_core_3d(network, settings, depth - 1, inner)
        self.upsample = _upsample(network, settings, inner, channels)
        self.up_blocks = BlockSeries3D(settings, channels, network.blocks_per_layer, _planar(3), network.residual)
        if self.connection_kind == "concat":
            self.connection = Block3D(settings, 2 * channels, channels, kernel_size=(1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down_blocks(x)
        residual = x
        x = self.main_module(self.downsample(x))
        x = self.up_blocks(self.upsample(x))
        return self._connect(x, residual)

    def _connect(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return join_skip(self.connection_kind, x, residual, getattr(self, "connection", None))


def _downsample(network: Any, settings: ConvSettings, channels: int, inner: int) -> nn.Module:
    if _choice(network.downsampling) == "max_pooling":
        return nn.Sequential(nn.MaxPool3d(_planar(2)), Block3D(settings, channels, inner, kernel_size=(1, 1, 1)))
    return Block3D(settings, channels, inner, kernel_size=_planar(2), stride=_planar(2), activation=F.relu)


def _upsample(network: Any, settings: ConvSettings, inner: int, channels: int) -> nn.Module:
    if _choice(network.upsampling) == "interpolation":
        interpolate = nn.Upsample(scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        return nn.Sequential(interpolate, Block3D(settings, inner, channels, kernel_size=(1, 1, 1)))
    return Block3D(settings, inner, channels, kernel_size=_planar(2), stride=_planar(2), activation=F.relu, conv=nn.ConvTranspose3d)


def build_core_3d(network: Any, settings: ConvSettings, depth: int, channels: int) -> Union[UNetLevel3D, DeepestBlock3D]:
    """The U-Net from `depth` levels above the deepest block down to it."""
    if depth > 0:
        return UNetLevel3D(network, settings, depth, channels)
    return DeepestBlock3D(network, settings, channels)


class UResNet3D(nn.Module):
    """Segments each of the 3 wire planes into background, cosmic and neutrino pixels.

    `network` has the attributes of `benchmark.config.schema.NetworkConfig`
    (`block_concat` does not apply: the deepest block always mixes planes).
    """

    def __init__(self, network: Any):
        super().__init__()
        filters = network.n_initial_filters
        settings = ConvSettings(bias=network.bias, norm=nn.BatchNorm3d if network.batch_norm else None)
        self.initial_convolution = Block3D(settings, 1, filters, kernel_size=_planar(5))
        self.net_core = build_core_3d(network, settings, network.network_depth, filters)
        self.final_layer = BlockSeries3D(settings, filters, network.blocks_final, _planar(3), network.residual)
        self.bottleneck = nn.Conv3d(filters, CLASSES, kernel_size=1, bias=network.bias)
        initialise(self, nn.Conv3d, nn.BatchNorm3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> logits [B, 3 planes, 3 classes, H, W] (a strided view).

        H and W must be divisible by 2**network_depth.
        """
        x = self.initial_convolution(x.unsqueeze(1))
        x = self.net_core(x)
        x = self.final_layer(x)
        return self.bottleneck(x).transpose(1, 2)
