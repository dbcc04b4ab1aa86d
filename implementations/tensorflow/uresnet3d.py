"""The CosmicTagger 3D UResNet in Keras 3, computing the same function as the torch model.

It mirrors `implementations.torch.uresnet3d` layer for layer: the images
[B, 3, H, W] become [B, 3, H, W, 1] (the planes a depth axis, channels-last),
every convolution has a [1, k, k] kernel so each plane is processed alone
with shared weights, and only the deepest block's merger and splitter
([3, 1, 1] kernels, "same" padding on the plane axis) mix the planes. Batch
norm pools the three planes, as torch's BatchNorm3d. Layers are named after
the torch modules they twin, so `convert.py` maps weights by name.
"""
from __future__ import annotations

from typing import Any, Tuple

import keras
from keras import layers, ops

from .blocks import CLASSES, PLANES, Settings, block, block_series, choice, inner_channels, join_skip

Kernel = Tuple[int, int, int]


def _planar(k: int) -> Kernel:
    """A k x k kernel applied to each plane alone."""
    return (1, k, k)


class AddChannel(layers.Layer):
    """Images [B, P, H, W] -> [B, P, H, W, 1]."""

    def call(self, x):
        return ops.expand_dims(x, -1)


class ClassesFirst(layers.Layer):
    """Logits [B, P, H, W, K] -> [B, P, K, H, W], the torch layout."""

    def call(self, x):
        return ops.transpose(x, (0, 1, 4, 2, 3))


def deepest_block(x, network: Any, settings: Settings, name: str):
    """Merger [3,1,1] C -> bottleneck, per-plane blocks, splitter [3,1,1] back to C: the only cross-plane layers."""
    outer = x.shape[-1]
    x = block(x, settings, f"{name}merger", network.bottleneck_deepest, kernel_size=(PLANES, 1, 1))
    x = block_series(x, settings, f"{name}blocks", network.blocks_deepest_layer, _planar(network.filter_size_deepest), network.residual)
    return block(x, settings, f"{name}splitter", outer, kernel_size=(PLANES, 1, 1))


def _downsample(x, network: Any, settings: Settings, name: str, inner: int):
    if choice(network.downsampling) == "max_pooling":
        x = layers.MaxPooling3D(_planar(2))(x)
        return block(x, settings, f"{name}downsample.1", inner, kernel_size=(1, 1, 1))
    return block(x, settings, f"{name}downsample", inner, kernel_size=_planar(2), stride=_planar(2), activation="relu")


def _upsample(x, network: Any, settings: Settings, name: str, channels: int):
    if choice(network.upsampling) == "interpolation":
        x = layers.UpSampling3D(_planar(2))(x)  # nearest neighbour, as torch's 3D model
        return block(x, settings, f"{name}upsample.1", channels, kernel_size=(1, 1, 1))
    return block(x, settings, f"{name}upsample", channels, kernel_size=_planar(2), stride=_planar(2),
                 activation="relu", conv=layers.Conv3DTranspose)


def unet_level(x, network: Any, settings: Settings, depth: int, name: str):
    """Down blocks, skip, downsample, inner level, upsample, up blocks, connection; torch's UNetLevel3D.

    As torch's 3D model: the skip is taken after the down blocks and joined after the up blocks.
    """
    channels = x.shape[-1]
    x = block_series(x, settings, f"{name}down_blocks", network.blocks_per_layer, _planar(3), network.residual)
    residual = x
    x = _downsample(x, network, settings, name, inner_channels(network, channels))
    x = core(x, network, settings, depth - 1, f"{name}main_module.")
    x = _upsample(x, network, settings, name, channels)
    x = block_series(x, settings, f"{name}up_blocks", network.blocks_per_layer, _planar(3), network.residual)
    return join_skip(x, residual, network, settings, name, kernel_size=(1, 1, 1))


def core(x, network: Any, settings: Settings, depth: int, name: str):
    """The U-Net from `depth` levels above the deepest block down to it; `name` is the torch prefix with its dot."""
    if depth > 0:
        return unet_level(x, network, settings, depth, name)
    return deepest_block(x, network, settings, name)


def build_uresnet3d(network: Any) -> keras.Model:
    """Images [B, 3, H, W] -> logits [B, 3 planes, 3 classes, H, W], like the torch UResNet3D.

    `network` has the attributes of `benchmark.config.schema.NetworkConfig`
    (`block_concat` does not apply); H and W must be divisible by 2**network_depth.
    """
    filters = network.n_initial_filters
    settings = Settings(layers.Conv3D, network.bias, 1 if network.batch_norm else None)
    images = keras.Input(shape=(PLANES, None, None), name="images")
    x = AddChannel()(images)
    x = block(x, settings, "initial_convolution", filters, kernel_size=_planar(5))
    x = core(x, network, settings, network.network_depth, "net_core.")
    x = block_series(x, settings, "final_layer", network.blocks_final, _planar(3), network.residual)
    x = layers.Conv3D(CLASSES, 1, use_bias=network.bias, name="bottleneck")(x)
    return keras.Model(images, ClassesFirst()(x), name="uresnet3d")
