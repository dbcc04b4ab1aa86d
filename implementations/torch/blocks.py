"""Convolutional building blocks of the UResNet.

Every block works on a plane-folded batch: the three wire planes of B events
stacked on the batch axis, planes-major ([3B, C, H, W], rows p*B..(p+1)*B-1
are plane p), so one convolution applies the shared weights to all planes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

NEGATIVE_SLOPE = 0.01  # leaky ReLU slope, torch's (and upstream's) default

NormFactory = Callable[[int], nn.Module]


class PlaneBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d on a plane-folded batch with per-plane training statistics.

    Upstream calls one shared BatchNorm2d once per plane, so in training each
    plane is normalised with its own batch statistics and the shared running
    statistics are updated once per plane, in plane order (unbiased variance;
    num_batches_tracked grows by one per plane). With `per_plane` this does
    the same on the folded batch as a whole, without splitting it into plane
    tensors or concatenating any (`plane_batch_norm`); the output keeps the
    input's memory format. Without `per_plane` it is a plain BatchNorm2d over
    the whole folded batch (the planes' statistics pooled). Evaluation with
    running statistics is a plain BatchNorm2d either way. Being a BatchNorm2d
    subclass, its parameters and state_dict keys are the same.
    """

    def __init__(self, num_features: int, planes: int = 3, per_plane: bool = True, **kwargs):
        super().__init__(num_features, **kwargs)
        self.planes = planes
        self.per_plane = per_plane

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_statistics = self.training or (self.running_mean is None and self.running_var is None)
        if not (batch_statistics and self.per_plane and self.planes > 1):
            return super().forward(x)
        self._check_input_dim(x)
        if x.shape[0] % self.planes:
            raise ValueError(f"a batch of {x.shape[0]} is not {self.planes} planes of equal size")
        if x.numel() // (self.planes * x.shape[1]) == 1:  # as F.batch_norm refuses a plane of one value per channel
            raise ValueError("Expected more than 1 value per channel when training, got input size "
                             f"{[x.shape[0] // self.planes, *x.shape[1:]]}")
        tracked = self.training and self.track_running_stats
        running = (self.running_mean, self.running_var) if tracked else (None, None)
        if torch.compiler.is_compiling():
            y, mean, variance = plane_batch_norm_ops(x, self.weight, self.bias, self.planes, self.eps)
            if tracked:
                self._track(mean, variance, x.numel() // (self.planes * x.shape[1]))
            return y
        return _PlaneBatchNorm.apply(x, self.weight, self.bias, *running, self._momenta(tracked), self.eps)

    def _momenta(self, tracked: bool) -> Tuple[float, ...]:
        """Each plane's running-statistics factor, in plane order (num_batches_tracked advanced once per plane)."""
        if not tracked:
            return (0.0,) * self.planes
        counter = self.num_batches_tracked
        done = int(counter) if self.momentum is None and counter.device.type != "meta" else 0  # meta: sizing only
        counter.add_(self.planes)
        if self.momentum is not None:
            return (self.momentum,) * self.planes
        return tuple(1.0 / (done + plane) for plane in range(1, self.planes + 1))  # cumulative moving average

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, variance: torch.Tensor, count: int) -> None:
        """The same updates from [planes, C] statistics, as tensor ops (traced by torch.compile)."""
        unbiased = variance * (count / (count - 1))
        for plane in range(self.planes):
            self.num_batches_tracked.add_(1)
            factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
            self.running_mean.lerp_(mean[plane].to(self.running_mean.dtype), factor)
            self.running_var.lerp_(unbiased[plane].to(self.running_var.dtype), factor)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, planes={self.planes}, per_plane={self.per_plane}"


def _by_plane(x: torch.Tensor, planes: int) -> torch.Tensor:
    """[planes*B, C, H, W] -> [planes, B, C, H, W]: a view in any memory format (the batch axis is outermost)."""
    return x.unflatten(0, (planes, -1))


def _channel(vector: torch.Tensor) -> torch.Tensor:
    """A per-channel [C] or per-plane-and-channel [planes, C] vector shaped to broadcast over [planes, B, C, H, W]."""
    return vector.view(-1, 1, vector.shape[-1], 1, 1) if vector.dim() == 2 else vector.view(1, 1, -1, 1, 1)


def plane_batch_norm_ops(x: torch.Tensor, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor], planes: int,
                         eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-plane training-mode batch norm as plain ops, for torch.compile: one reduction over the [planes, B,
    C, H, W] view gives every plane's statistics, one fused multiply-add normalises, and Inductor fuses both
    and derives the backward. Returns the output and each plane's mean and biased variance ([planes, C])."""
    values = _by_plane(x, planes)
    values = values.float() if values.dtype in (torch.float16, torch.bfloat16) else values  # statistics in float32
    variance, mean = torch.var_mean(values, dim=(1, 3, 4), correction=0, keepdim=True)
    scale = torch.rsqrt(variance + eps)
    scale = scale * _channel(weight) if weight is not None else scale
    shift = -mean * scale + (_channel(bias) if bias is not None else 0.0)
    y = torch.addcmul(shift, values, scale).to(x.dtype).flatten(0, 1)
    return y, mean.view(planes, -1), variance.view(planes, -1)


class _PlaneBatchNorm(torch.autograd.Function):
    """Per-plane training-mode batch norm in eager mode, on ATen's native batch-norm kernels.

    Forward: one native kernel per plane reads that plane's slice of the
    folded batch and writes its normalised values into the same slice of one
    output tensor (and updates the running statistics with that plane's
    momentum), so nothing is split off or concatenated. ATen's var_mean over
    the [planes, B, C, H, W] view would give all statistics in one call, but on
    the CPU it is a scalar Welford loop: 7x slower than these kernels on one
    core at 3x8x640x1024. Backward, with xhat = (x - mean) * invstd per plane
    and channel: the native backward kernels give each plane's sums of dy
    and dy * xhat, and dx = k1 dy + k2 x + k3 (k1 = weight * invstd,
    k2 = -k1 * invstd * sum(dy * xhat) / n, k3 = -k1 * sum(dy) / n - k2 * mean)
    is two fused multiply-adds over the whole folded batch; dweight and dbias
    are those sums added over the planes.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momenta, eps):
        planes = len(momenta)
        statistics = x.new_empty((2, planes, x.shape[1]), dtype=torch.promote_types(x.dtype, torch.float32))
        y = torch.empty_like(x)  # x's memory format
        for plane, (values, out) in enumerate(zip(_by_plane(x, planes), _by_plane(y, planes))):
            torch.ops.aten.native_batch_norm.out(values, weight, bias, running_mean, running_var, True, momenta[plane],
                                                 eps, out=out, save_mean=statistics[0, plane],
                                                 save_invstd=statistics[1, plane])
        ctx.save_for_backward(x, weight, statistics)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, (mean, invstd) = ctx.saved_tensors
        planes, channels = mean.shape
        sums = torch.empty_like(ctx.saved_tensors[2])  # [sum dy * xhat, sum dy] per plane and channel
        for plane, (grad, values) in enumerate(zip(_by_plane(dy, planes), _by_plane(x, planes))):
            _, dy_xhat, dy_sum = torch.ops.aten.native_batch_norm_backward(
                grad, values, weight, None, None, mean[plane], invstd[plane], True, ctx.eps, [False, True, True])
            sums[0, plane].copy_(dy_xhat)
            sums[1, plane].copy_(dy_sum)
        count = x.numel() // (planes * channels)
        k1 = invstd * weight if weight is not None else invstd
        k2 = -k1 * invstd * sums[0] / count
        k3 = -k1 * sums[1] / count - k2 * mean
        dx = torch.addcmul(_channel(k3), _by_plane(x, planes), _channel(k2))
        dx = dx.addcmul_(_by_plane(dy, planes), _channel(k1)).to(x.dtype).flatten(0, 1)
        dweight, dbias = sums.sum(dim=1).unbind()
        dweight = dweight.to(weight.dtype) if ctx.needs_input_grad[1] else None
        dbias = dbias.to(weight.dtype) if ctx.needs_input_grad[2] else None
        return dx, dweight, dbias, None, None, None, None


class Bilinear2x(nn.Module):
    """2x bilinear upsampling (align_corners=False) of [N, C, H, W] as shifted, weighted sums.

    The same function as nn.Upsample(scale_factor=2, mode="bilinear"): output
    pixel 2i is 0.75 x[i] + 0.25 x[i-1] and 2i+1 is 0.75 x[i] + 0.25 x[i+1]
    along each axis, the edges repeated. Written this way its backward is
    pointwise too; Inductor turns nn.Upsample's backward into an atomic
    scatter, 15 % of the compiled uresnet's step on an H200.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _double(_double(x, 2), 3)


def _double(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)  # x[i-1], x[-1] := x[0]
    after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)  # x[i+1], x[n] := x[n-1]
    even, odd = 0.75 * x + 0.25 * before, 0.75 * x + 0.25 * after
    return torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)


def torch_bilinear2x() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class ConvSettings:
    """What every layer of one network shares: conv bias, normalisation, the 2x interpolation (and whether an
    interpolation's 1x1 projection runs before it, see `ProjectThenInterpolate`), and whether activations
    overwrite their input (the same values; a block's pre-activation is needed by no backward, so training may
    do it too, and the largest tensors of a step are not allocated twice)."""

    bias: bool
    norm: Optional[NormFactory]  # called with the channel count; None: no normalisation
    interpolation: Callable[[], nn.Module] = torch_bilinear2x
    project_first: bool = False
    inplace_activation: bool = False


Activation = Optional[Callable[[torch.Tensor], torch.Tensor]]
leaky_relu = partial(F.leaky_relu, negative_slope=NEGATIVE_SLOPE)
Size = Union[int, Sequence[int]]


def same_padding(kernel_size: Size, stride: Size = 1) -> Size:
    """Per axis: "same" for odd kernels, 0 for the 1x1 and the 2x2/stride-2 samplers."""
    if isinstance(kernel_size, int):
        return 0 if isinstance(stride, int) and stride > 1 else (kernel_size - 1) // 2
    strides = [stride] * len(kernel_size) if isinstance(stride, int) else stride
    return tuple(0 if s > 1 else (k - 1) // 2 for k, s in zip(kernel_size, strides))


class Block(nn.Module):
    """Convolution (`conv`: 2D, 3D or transposed), then normalisation (if any), then `activation` (None: none)."""

    def __init__(
        self,
        settings: ConvSettings,
        inplanes: int,
        outplanes: int,
        kernel_size: Size = 3,
        stride: Size = 1,
        activation: Activation = leaky_relu,
        conv: Type[nn.Module] = nn.Conv2d,
    ):
        super().__init__()
        padding = same_padding(kernel_size, stride)
        self.conv = conv(inplanes, outplanes, kernel_size, stride=stride, padding=padding, bias=settings.bias)
        self.norm = settings.norm(outplanes) if settings.norm is not None else None
        self.activation = activation
        self.inplace = settings.inplace_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return activate(self.activation, x, self.inplace)


def activate(activation: Activation, x: torch.Tensor, inplace: bool) -> torch.Tensor:
    """`activation(x)`, overwriting x if `inplace` (x must then be an intermediate no backward reads: a
    convolution's or a batch norm's output, or a sum)."""
    if activation is None:
        return x
    return activation(x, inplace=True) if inplace else activation(x)


class ProjectThenInterpolate(nn.Sequential):
    """Upstream's [2x interpolation, 1x1 Block] (its module names and weights), run as the Block's 1x1
    convolution, the interpolation, then the Block's norm and activation.

    The same map: a 2x bilinear (or nearest) interpolation weights its inputs
    with weights that sum to 1, so it commutes with a 1x1 convolution, bias
    included. Projecting first interpolates the level's C channels instead of
    the C' it gets from below and runs the convolution at a quarter of the
    pixels; only the rounding differs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        interpolation, block = self
        x = interpolation(block.conv(x))
        if block.norm is not None:
            x = block.norm(x)
        return activate(block.activation, x, block.inplace)


class ResidualBlock(nn.Module):
    """Two C->C blocks (the second without activation), the shortcut, then leaky ReLU.

    `block` builds each (Block; the 3D and sparse models pass theirs), with `options` passed on."""

    def __init__(self, settings: ConvSettings, channels: int, kernel_size: Size = 3, block: Callable = Block,
                 **options: Any):
        super().__init__()
        self.conv1 = block(settings, channels, channels, kernel_size, **options)
        self.conv2 = block(settings, channels, channels, kernel_size, activation=None, **options)
        self.inplace = settings.inplace_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activate(leaky_relu, self.conv2(self.conv1(x)) + x, self.inplace)


class BlockSeries(nn.Sequential):
    """`n_blocks` channel-preserving blocks: `residual_block`s if `residual`, else plain `block`s."""

    def __init__(self, settings: ConvSettings, channels: int, n_blocks: int, kernel_size: Size = 3,
                 residual: bool = True, block: Callable = Block, residual_block: Callable = ResidualBlock,
                 **options: Any):
        if residual:
            blocks = [residual_block(settings, channels, kernel_size, block=block, **options) for _ in range(n_blocks)]
        else:
            blocks = [block(settings, channels, channels, kernel_size, **options) for _ in range(n_blocks)]
        super().__init__(*blocks)


def initialise(model: nn.Module, conv: type = nn.Conv2d, norm: type = nn.BatchNorm2d) -> None:
    """Upstream's init: xavier-uniform convolutions with zero bias, unit batch norm.

    Transposed convolutions are not `conv` subclasses, so they keep torch's default init, as upstream.
    """
    for module in model.modules():
        if isinstance(module, conv):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, norm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def join_skip(kind: str, x: torch.Tensor, residual: torch.Tensor, concat_block: nn.Module) -> torch.Tensor:
    """A level's skip connection: concat (then `concat_block`, 2C -> C), sum, or none."""
    if kind == "concat":
        return concat_block(torch.cat([x, residual], dim=1))
    if kind == "sum":
        return x + residual
    return x
