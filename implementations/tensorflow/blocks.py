"""Keras building blocks of the UResNet, twins of `implementations.torch.blocks`.

Each block works channels-last on any number of spatial axes (2D: a
plane-folded batch [3B, H, W, C]; 3D: [B, planes, H, W, C]) and names its
layers after the torch modules they twin (e.g. "final_layer.0.conv1.conv"),
so that `convert.py` maps weights by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

from keras import layers, ops

PLANES = 3
CLASSES = 3  # background, cosmic, neutrino
NEGATIVE_SLOPE = 0.01  # torch's leaky ReLU default
TORCH_MOMENTUM = 0.1  # weight of the batch statistic in torch's running-stat update
TORCH_EPSILON = 1e-5

Kernel = Union[int, Sequence[int]]


def choice(option: Any) -> str:
    """The string of a schema enum option (a plain string passes through)."""
    return getattr(option, "value", option)


def inner_channels(network: Any, channels: int) -> int:
    """Channels one level down: doubled, or `n_initial_filters` more."""
    if choice(network.growth_rate) == "multiplicative":
        return 2 * channels
    return channels + network.n_initial_filters


class TorchBatchNorm(layers.Layer):
    """torch's BatchNorm2d/3d on a channels-last batch, with torch's semantics.

    Keras' BatchNormalization weights the old running value by `momentum` and
    keeps the biased variance; torch keeps 0.9*old + 0.1*batch with the
    unbiased batch variance. In training with `planes` > 1 each contiguous
    slice of the batch axis (one wire plane of a plane-folded batch) is
    normalised with its own statistics and the running statistics are
    updated once per plane, in plane order, as torch's PlaneBatchNorm2d does.
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
        axes = list(range(len(x.shape) - 1))
        mean, variance = self.moving_mean, self.moving_variance
        outputs = []
        for plane in ops.split(x, self.planes, axis=0):
            batch_mean, batch_variance = ops.moments(plane, axes=axes)
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


@dataclass(frozen=True)
class Settings:
    """What every block of one network shares: the convolution class, conv bias, the batch norm's plane count."""

    conv: Callable  # keras.layers.Conv2D or Conv3D
    bias: bool
    norm_planes: Optional[int]  # None: no normalisation


def leaky_relu(x):
    return layers.LeakyReLU(negative_slope=NEGATIVE_SLOPE)(x)


def _odd(kernel_size: Kernel) -> bool:
    sizes = [kernel_size] if isinstance(kernel_size, int) else list(kernel_size)
    return all(size % 2 for size in sizes)


def block(x, settings: Settings, name: str, channels: int, kernel_size: Kernel = 3, stride: Kernel = 1,
          activation: Optional[str] = "leaky", conv: Optional[Callable] = None):
    """Convolution, then batch norm (if any), then `activation` ("leaky", "relu" or None); torch's Block."""
    # torch pads (k-1)/2 along each axis: "same" for odd kernels, none for the 1x1 and 2x2/stride-2 samplers
    padding = "same" if _odd(kernel_size) else "valid"
    conv = conv or settings.conv
    x = conv(channels, kernel_size, strides=stride, padding=padding, use_bias=settings.bias, name=f"{name}.conv")(x)
    if settings.norm_planes is not None:
        x = TorchBatchNorm(settings.norm_planes, name=f"{name}.norm")(x)
    if activation == "leaky":
        return leaky_relu(x)
    return layers.ReLU()(x) if activation == "relu" else x


def residual_block(x, settings: Settings, name: str, kernel_size: Kernel):
    channels = x.shape[-1]
    y = block(x, settings, f"{name}.conv1", channels, kernel_size)
    y = block(y, settings, f"{name}.conv2", channels, kernel_size, activation=None)
    return leaky_relu(layers.Add()([y, x]))


def block_series(x, settings: Settings, name: str, n_blocks: int, kernel_size: Kernel, residual: bool):
    """`n_blocks` channel-preserving ResidualBlocks (or plain Blocks); torch's BlockSeries."""
    for index in range(n_blocks):
        if residual:
            x = residual_block(x, settings, f"{name}.{index}", kernel_size)
        else:
            x = block(x, settings, f"{name}.{index}", x.shape[-1], kernel_size)
    return x


def join_skip(x, residual, network: Any, settings: Settings, name: str, kernel_size: Kernel):
    """A level's skip connection: concat [x, skip] (then a 2C -> C block), sum, or none."""
    kind = choice(network.connections)
    if kind == "concat":
        x = layers.Concatenate(axis=-1)([x, residual])
        return block(x, settings, f"{name}connection", residual.shape[-1], kernel_size=kernel_size)
    if kind == "sum":
        return layers.Add()([x, residual])
    return x
