"""The CosmicTagger 2D UResNet in Keras 3, computing the same function as the torch model.

It mirrors `implementations.torch.uresnet2d` layer for layer: the planes are
folded into the batch axis planes-major ([3B, H, W, C], channels-last), only
the deepest block unfolds them onto channels, and every layer is named after
the torch module it twins (e.g. "net_core.main_module.down_blocks.0.conv1.conv")
so that `convert.py` maps weights by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import keras
from keras import layers, ops

PLANES = 3
CLASSES = 3  # background, cosmic, neutrino
NEGATIVE_SLOPE = 0.01  # torch's leaky ReLU default
TORCH_MOMENTUM = 0.1  # weight of the batch statistic in torch's running-stat update
TORCH_EPSILON = 1e-5


def _choice(option: Any) -> str:
    """The string of a schema enum option (a plain string passes through)."""
    return getattr(option, "value", option)


class TorchBatchNorm(layers.Layer):
    """BatchNorm2d with torch's semantics on a plane-folded, channels-last batch.

    Keras' BatchNormalization weights the old running value by `momentum` and
    keeps the biased variance; torch keeps 0.9*old + 0.1*batch with the
    unbiased batch variance. In training with `planes` > 1 each contiguous
    plane slice is normalised with its own statistics and the running
    statistics are updated once per plane, in plane order, as the torch
    PlaneBatchNorm2d does.
    """

    def __init__(self, planes: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.planes = planes

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=channels, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=channels, initializer="ones", name="moving_variance", trainable=False)

    def call(self, x, training=None):
        if not training:
            return self._normalise(x, self.moving_mean, self.moving_variance)
        mean, variance = self.moving_mean, self.moving_variance
        outputs = []
        for plane in ops.split(x, self.planes, axis=0):
            batch_mean, batch_variance = ops.moments(plane, axes=[0, 1, 2])
            outputs.append(self._normalise(plane, batch_mean, batch_variance))
            count = ops.cast(ops.size(plane) // ops.shape(plane)[-1], x.dtype)
            unbiased = batch_variance * count / (count - 1.0)
            mean = (1.0 - TORCH_MOMENTUM) * mean + TORCH_MOMENTUM * batch_mean
            variance = (1.0 - TORCH_MOMENTUM) * variance + TORCH_MOMENTUM * unbiased
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return outputs[0] if self.planes == 1 else ops.concatenate(outputs, axis=0)

    def _normalise(self, x, mean, variance):
        return (x - mean) * ops.rsqrt(variance + TORCH_EPSILON) * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "planes": self.planes}


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


@dataclass(frozen=True)
class Settings:
    """What every block of one network shares: conv bias and the batch norm's plane count."""

    bias: bool
    norm_planes: Optional[int]  # None: no normalisation


def leaky_relu(x):
    return layers.LeakyReLU(negative_slope=NEGATIVE_SLOPE)(x)


def block(x, settings: Settings, name: str, channels: int, kernel_size: int = 3, stride: int = 1,
          activation: bool = True, conv: Callable = layers.Conv2D):
    """Convolution, then batch norm (if any), then leaky ReLU (if `activation`); torch's Block."""
    # torch pads (k-1)/2: "same" for the odd kernels, none for the 1x1 and 2x2/stride-2 samplers
    padding = "same" if kernel_size % 2 else "valid"
    x = conv(channels, kernel_size, strides=stride, padding=padding, use_bias=settings.bias, name=f"{name}.conv")(x)
    if settings.norm_planes is not None:
        x = TorchBatchNorm(settings.norm_planes, name=f"{name}.norm")(x)
    return leaky_relu(x) if activation else x


def residual_block(x, settings: Settings, name: str, kernel_size: int):
    channels = x.shape[-1]
    y = block(x, settings, f"{name}.conv1", channels, kernel_size)
    y = block(y, settings, f"{name}.conv2", channels, kernel_size, activation=False)
    return leaky_relu(layers.Add()([y, x]))


def block_series(x, settings: Settings, name: str, n_blocks: int, kernel_size: int, residual: bool):
    """`n_blocks` channel-preserving ResidualBlocks (or plain Blocks); torch's BlockSeries."""
    for index in range(n_blocks):
        if residual:
            x = residual_block(x, settings, f"{name}.{index}", kernel_size)
        else:
            x = block(x, settings, f"{name}.{index}", x.shape[-1], kernel_size)
    return x


def deepest_block(x, network: Any, settings: Settings, name: str):
    """1x1 bottleneck, a BlockSeries at the lowest resolution, 1x1 back; planes mixed unless block_concat."""
    mix_planes = not network.block_concat
    if mix_planes:
        x = PlanesToChannels()(x)
        # the mixed block sees each event once, so its normalisation is one plain batch norm
        settings = Settings(settings.bias, None if settings.norm_planes is None else 1)
    outer = x.shape[-1]
    x = block(x, settings, f"{name}bottleneck", network.bottleneck_deepest, kernel_size=1)
    x = block_series(x, settings, f"{name}blocks", network.blocks_deepest_layer, network.filter_size_deepest, network.residual)
    x = block(x, settings, f"{name}unbottleneck", outer, kernel_size=1)
    return ChannelsToPlanes()(x) if mix_planes else x


def _inner_channels(network: Any, channels: int) -> int:
    if _choice(network.growth_rate) == "multiplicative":
        return 2 * channels
    return channels + network.n_initial_filters


def _downsample(x, network: Any, settings: Settings, name: str, inner: int):
    if _choice(network.downsampling) == "max_pooling":
        x = layers.MaxPooling2D(2)(x)
        return block(x, settings, f"{name}downsample.1", inner, kernel_size=1)
    return block(x, settings, f"{name}downsample", inner, kernel_size=2, stride=2)


def _upsample(x, network: Any, settings: Settings, name: str, channels: int):
    if _choice(network.upsampling) == "interpolation":
        # half-pixel bilinear resize == torch's bilinear with align_corners=False
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        return block(x, settings, f"{name}upsample.1", channels, kernel_size=1)
    return block(x, settings, f"{name}upsample", channels, kernel_size=2, stride=2, conv=layers.Conv2DTranspose)


def _connect(x, residual, network: Any, settings: Settings, name: str):
    kind = _choice(network.connections)
    if kind == "concat":
        x = layers.Concatenate(axis=-1)([x, residual])
        return block(x, settings, f"{name}connection", residual.shape[-1], kernel_size=1)
    if kind == "sum":
        return layers.Add()([x, residual])
    return x


def unet_level(x, network: Any, settings: Settings, depth: int, name: str):
    """Down blocks, downsample, inner level, upsample, skip connection, up blocks; torch's UNetLevel.

    The skip is the level's input (before the down blocks), joined before the up blocks.
    """
    channels = x.shape[-1]
    residual = x
    x = block_series(x, settings, f"{name}down_blocks", network.blocks_per_layer, 3, network.residual)
    x = _downsample(x, network, settings, name, _inner_channels(network, channels))
    x = core(x, network, settings, depth - 1, f"{name}main_module.")
    x = _upsample(x, network, settings, name, channels)
    x = _connect(x, residual, network, settings, name)
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
    settings = Settings(network.bias, norm_planes)
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
