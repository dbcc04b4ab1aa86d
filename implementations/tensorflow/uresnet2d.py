"""The CosmicTagger 2D UResNet in Keras 3, computing the same function as the torch model.

It mirrors `implementations.torch.uresnet2d` layer for layer: the planes are
folded into the batch axis planes-major ([3B, H, W, C], channels-last), only
the deepest block unfolds them onto channels, and every layer is named after
the torch module it twins (e.g. "net_core.main_module.down_blocks.0.conv1.conv")
so that `convert.py` maps weights by name.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import keras
from keras import layers, ops

from .blocks import CLASSES, PLANES, Settings, block, block_series, choice, inner_channels, join_skip


class FoldPlanes(layers.Layer):
    """Images [B, P, H, W] -> [P*B, H, W, 1], planes-major."""

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(ops.transpose(x, (1, 0, 2, 3)), (-1, shape[2], shape[3], 1))


class UnfoldPlanes(layers.Layer):
    """Logits [P*B, H, W, K] (planes-major) -> [B, P, K, H, W], the torch layout."""

    def call(self, x):
        shape = ops.shape(x)
        x = ops.reshape(x, (PLANES, -1, shape[1], shape[2], shape[3]))
        return ops.transpose(x, (1, 0, 4, 2, 3))


class PlanesToChannels(layers.Layer):
    """[P*B, h, w, C] -> [B, h, w, P*C], plane 0's C channels first (torch's cat over planes)."""

    def call(self, x):
        shape = ops.shape(x)
        x = ops.reshape(x, (PLANES, -1, shape[1], shape[2], shape[3]))
        x = ops.transpose(x, (1, 2, 3, 0, 4))
        return ops.reshape(x, (-1, shape[1], shape[2], PLANES * shape[3]))


class ChannelsToPlanes(layers.Layer):
    """Inverse of PlanesToChannels: [B, h, w, P*C] -> [P*B, h, w, C]."""

    def call(self, x):
        shape = ops.shape(x)
        x = ops.reshape(x, (-1, shape[1], shape[2], PLANES, shape[3] // PLANES))
        x = ops.transpose(x, (3, 0, 1, 2, 4))
        return ops.reshape(x, (-1, shape[1], shape[2], shape[3] // PLANES))


def deepest_block(x, network: Any, settings: Settings, name: str):
    """1x1 bottleneck, a BlockSeries at the lowest resolution, 1x1 back; planes mixed unless block_concat."""
    mix_planes = not network.block_concat
    if mix_planes:
        x = PlanesToChannels()(x)
        # the mixed block sees each event once, so its normalisation is one plain batch norm
        settings = replace(settings, norm_planes=None if settings.norm_planes is None else 1)
    outer = x.shape[-1]
    x = block(x, settings, f"{name}bottleneck", network.bottleneck_deepest, kernel_size=1)
    x = block_series(x, settings, f"{name}blocks", network.blocks_deepest_layer, network.filter_size_deepest, network.residual)
    x = block(x, settings, f"{name}unbottleneck", outer, kernel_size=1)
    return ChannelsToPlanes()(x) if mix_planes else x


def _downsample(x, network: Any, settings: Settings, name: str, inner: int):
    if choice(network.downsampling) == "max_pooling":
        x = layers.MaxPooling2D(2)(x)
        return block(x, settings, f"{name}downsample.1", inner, kernel_size=1)
    return block(x, settings, f"{name}downsample", inner, kernel_size=2, stride=2)


def _upsample(x, network: Any, settings: Settings, name: str, channels: int):
    if choice(network.upsampling) == "interpolation":
        # half-pixel bilinear resize == torch's bilinear with align_corners=False
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        return block(x, settings, f"{name}upsample.1", channels, kernel_size=1)
    return block(x, settings, f"{name}upsample", channels, kernel_size=2, stride=2, conv=layers.Conv2DTranspose)


def unet_level(x, network: Any, settings: Settings, depth: int, name: str):
    """Down blocks, downsample, inner level, upsample, skip connection, up blocks; torch's UNetLevel.

    The skip is the level's input (before the down blocks), joined before the up blocks.
    """
    channels = x.shape[-1]
    residual = x
    x = block_series(x, settings, f"{name}down_blocks", network.blocks_per_layer, 3, network.residual)
    x = _downsample(x, network, settings, name, inner_channels(network, channels))
    x = core(x, network, settings, depth - 1, f"{name}main_module.")
    x = _upsample(x, network, settings, name, channels)
    x = join_skip(x, residual, network, settings, name, kernel_size=1)
    return block_series(x, settings, f"{name}up_blocks", network.blocks_per_layer, 3, network.residual)


def core(x, network: Any, settings: Settings, depth: int, name: str):
    """The U-Net from `depth` levels above the deepest block down to it; `name` is the torch prefix with its dot."""
    if depth > 0:
        return unet_level(x, network, settings, depth, name)
    return deepest_block(x, network, settings, name)


def build_uresnet(network: Any, per_plane_batch_norm: bool = True) -> keras.Model:
    """Images [B, 3, H, W] -> logits [B, 3 planes, 3 classes, H, W], like the torch UResNet.

    `network` has the attributes of `benchmark.config.schema.NetworkConfig`;
    H and W must be divisible by 2**network_depth. `per_plane_batch_norm=False`
    normalises all planes together in training (eval is the same either way).
    """
    filters = network.n_initial_filters
    norm_planes = (PLANES if per_plane_batch_norm else 1) if network.batch_norm else None
    settings = Settings(layers.Conv2D, network.bias, norm_planes)
    images = keras.Input(shape=(PLANES, None, None), name="images")
    x = FoldPlanes()(images)
    x = block(x, settings, "initial_convolution", filters, kernel_size=5)
    x = core(x, network, settings, network.network_depth, "net_core.")
    x = block_series(x, settings, "final_layer", network.blocks_final, 3, network.residual)
    x = layers.Conv2D(CLASSES, 1, name="bottleneck")(x)
    return keras.Model(images, UnfoldPlanes()(x), name="uresnet")


def count_parameters(model: keras.Model) -> int:
    """Number of trainable parameters (batch-norm running statistics excluded)."""
    return sum(int(ops.size(weight)) for weight in model.trainable_weights)
