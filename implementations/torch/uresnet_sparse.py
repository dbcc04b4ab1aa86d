"""The CosmicTagger UResNet on sparse convolutions (spconv), computing only at charged pixels.

The design is the dense 3D model's (`uresnet3d.py`) on the active sites:
each wire plane is processed alone with shared weights. The planes are folded
into spconv's batch index, planes-major (batch index = plane * B + event), as
the 2D model folds them into the batch axis. Layers, with the dense 3D layer
they stand for:

* `[1,k,k]` convolutions -> submanifold convolutions (`SubMConv2d`): outputs
  only at the input's active sites, so the active set stays fixed at one
  resolution.
* `downsampling=convolutional` -> strided `SparseConv2d` (kernel 2, stride 2),
  then BN and ReLU. A coarse site is active when any of its 2x2 children is.
  `max_pooling` -> the maximum over the active children (empty pixels take no
  part), then a 1x1 Block.
* `upsampling=convolutional` -> `SparseInverseConv2d` on the down-sampler's
  `indice_key`, then BN and ReLU: it returns exactly the finer level's sites.
  `interpolation` -> nearest-neighbour (each fine site takes its parent's
  features), then a 1x1 Block.
* skip connections as in the 3D model: taken after the down blocks and joined
  after the up blocks (concat order [x, skip], then a 1x1 Block; sum; none).
* batch norm -> `BatchNorm1d` over the active sites' features, all planes
  together (as BatchNorm3d pools the planes).
* the deepest block really mixes the planes, unlike upstream's sparse model,
  whose deepest block returns its input: at the lowest resolution (10x16 for
  640x1024 at depth 6) the sites are scattered into a dense [3B, C, h, w]
  tensor (zeros at empty pixels), the 2D model's `DeepestBlock` runs on it
  (planes concatenated on channels, 1x1 bottleneck, blocks, 1x1 back;
  `block_concat=true` runs it per plane instead), and each plane's features
  are read back at its own active sites.

Initialisation as the 3D model: xavier-uniform convolution kernels (with the
fans of the dense kernel: spconv stores [out, kh, kw, in]) and zero bias, unit
batch norm; the inverse convolutions get torch's ConvTranspose default, as the
dense model's ConvTranspose3d keeps it.

The logits exist only at the active sites. `densify_logits` builds the dense
[B, 3 planes, 3 classes, H, W] logits the harness's loss and metrics take,
with a fixed prediction at empty pixels: background, logits (0, -L, -L)
with L = EMPTY_LOGIT_GAP = 1e4, whose cross entropy against background is 0
(exp(-1e4) underflows) and which carries no gradient. A VoxelBatch labels
only its charged pixels (`dense()` makes every other pixel background), so
the loss and the metrics see exactly the sparse model's own predictions.

Under autocast only the dense deepest block runs in lower precision: on the
CPU the sparse convolutions run in float32 (spconv's CPU path has no bfloat16,
and autocast's float16 matrix products clash with its float32 buffers).
spconv's 1x1 path (`conv1x1`) reads its [out, 1, 1, in] kernel as an
[in, out] matrix; any conversion to or from dense weights must follow it.
The spconv used here is the CPU wheel; `spconv_cpu` applies its CPU fixes.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Activation, BlockSeries, ConvSettings, ResidualBlock, initialise, leaky_relu
from .spconv_cpu import spconv, spconv_indices
from .uresnet2d import CLASSES, PLANES, DeepestBlock, _choice, _inner_channels, count_parameters
from spconv.core import ConvAlgo
from spconv.pytorch import ops as spconv_ops
from spconv.pytorch.conv import SparseConvolution
from spconv.pytorch.core import IndiceData, SparseConvTensor

__all__ = ["SparseUResNet", "densify_logits", "sites_from_voxels", "count_parameters", "EMPTY_LOGIT_GAP"]

EMPTY_LOGIT_GAP = 1.0e4  # empty pixels: logits (0, -1e4, -1e4), i.e. background with probability 1 in float32

# One algorithm everywhere: the gather-GEMM-scatter one, the only one of the CPU build, whose pair tables the samplers read.
_ALGO = ConvAlgo.Native


def _subm_key(level: int, kernel_size: int) -> Optional[str]:
    """Key of a resolution's submanifold pair table (per kernel size); 1x1 needs none."""
    return f"subm{level}k{kernel_size}" if kernel_size > 1 else None


def _down_key(level: int) -> str:
    return f"down{level}"


def _with_features(x: SparseConvTensor, features: torch.Tensor) -> SparseConvTensor:
    return x.replace_feature(features)


def _sparse_conv(conv: nn.Module, x: SparseConvTensor) -> SparseConvTensor:
    """`conv(x)`; on the CPU in float32 and outside autocast, the only way spconv's CPU path runs."""
    if x.features.is_cuda:
        return conv(x)
    # spconv's CPU kernels take float32 (no bfloat16 at all; autocast's float16 matmuls clash with its float32 buffers)
    with torch.autocast("cpu", enabled=False):
        if x.features.dtype != conv.weight.dtype:
            x = _with_features(x, x.features.to(conv.weight.dtype))
        return conv(x)


class SparseBlock(nn.Module):
    """Sparse convolution, then BatchNorm1d over the active sites (if any), then `activation` (leaky ReLU; None: none).

    `kind`: "subm" (k x k submanifold), "down" (2x2 stride 2, registers
    `indice_key`) or "inverse" (undoes the "down" of `indice_key`).
    """

    def __init__(
        self,
        settings: ConvSettings,
        inplanes: int,
        outplanes: int,
        kernel_size: int = 3,
        kind: str = "subm",
        indice_key: Optional[str] = None,
        activation: Activation = leaky_relu,
    ):
        super().__init__()
        if kind == "subm":
            self.conv = spconv.SubMConv2d(inplanes, outplanes, kernel_size, padding=kernel_size // 2,
                                          bias=settings.bias, indice_key=indice_key, algo=_ALGO)
        elif kind == "down":
            self.conv = spconv.SparseConv2d(inplanes, outplanes, 2, stride=2, bias=settings.bias,
                                            indice_key=indice_key, algo=_ALGO)
        elif kind == "inverse":
            self.conv = spconv.SparseInverseConv2d(inplanes, outplanes, 2, indice_key=indice_key,
                                                   bias=settings.bias, algo=_ALGO)
        else:
            raise ValueError(f"unknown sparse convolution kind {kind!r}")
        self.norm = settings.norm(outplanes) if settings.norm is not None else None
        self.activation = activation

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        x = _sparse_conv(self.conv, x)
        features = x.features
        if self.norm is not None:
            features = self.norm(features)
        if self.activation is not None:
            features = self.activation(features)
        return _with_features(x, features)


class SparseResidualBlock(ResidualBlock):
    """Two C->C SparseBlocks (the second without activation), the shortcut on the features, then leaky ReLU."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        y = self.conv2(self.conv1(x))
        return _with_features(y, leaky_relu(y.features + x.features))


class SparseBlockSeries(BlockSeries):
    """`n_blocks` channel-preserving blocks at one resolution (`level`), sharing its submanifold pair table."""

    def __init__(self, settings: ConvSettings, channels: int, n_blocks: int, kernel_size: int, residual: bool, level: int):
        super().__init__(settings, channels, n_blocks, kernel_size, residual, block=SparseBlock,
                         residual_block=SparseResidualBlock, indice_key=_subm_key(level, kernel_size))


def _parents(data: IndiceData) -> torch.Tensor:
    """For a 2x2/stride-2 pair table: the coarse row of each fine row (every fine site has exactly one parent)."""
    parents = getattr(data, "_cosmictagger_parents", None)
    if parents is None:
        pairs = data.indice_pairs.long()
        counts = data.indice_pair_num.tolist()
        parents = torch.full((data.indices.shape[0],), -1, dtype=torch.long, device=pairs.device)
        for offset, count in enumerate(counts):
            parents[pairs[0, offset, :count]] = pairs[1, offset, :count]
        data._cosmictagger_parents = parents  # shared by the pooling and the upsampling of one forward pass
    return parents


class SparseMaxPool(nn.Module):
    """2x2/stride-2 max pooling over the active children; registers the level's pair table under `indice_key`."""

    def __init__(self, indice_key: str):
        super().__init__()
        self.indice_key = indice_key

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        kernel, stride, padding, dilation = [2, 2], [2, 2], [0, 0], [1, 1]
        coarse_indices, pairs, counts = spconv_ops.get_indice_pairs(
            x.indices, x.batch_size, x.spatial_shape, _ALGO, kernel, stride, padding, dilation, [0, 0], False, False)
        coarse_shape = [size // 2 for size in x.spatial_shape]
        data = IndiceData(coarse_indices, x.indices, pairs, counts, x.spatial_shape, coarse_shape, is_subm=False,
                          algo=_ALGO, ksize=kernel, stride=stride, padding=padding, dilation=dilation)
        indice_dict = dict(x.indice_dict)
        indice_dict[self.indice_key] = data  # as spconv's own pooling does: an inverse conv can undo it
        parents = _parents(data)
        features = x.features
        pooled = features.new_zeros(coarse_indices.shape[0], features.shape[1])
        pooled = pooled.scatter_reduce(0, parents[:, None].expand_as(features), features, "amax", include_self=False)
        return SparseConvTensor(pooled, coarse_indices, coarse_shape, x.batch_size, indice_dict=indice_dict)

    def extra_repr(self) -> str:
        return f"indice_key={self.indice_key!r}"


class SparseNearestUpsample(nn.Module):
    """Undoes the 2x2 down-sampling of `indice_key`: each fine site takes its parent's features."""

    def __init__(self, indice_key: str):
        super().__init__()
        self.indice_key = indice_key

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        data = x.indice_dict[self.indice_key]
        # index_select, not x.features[parents]: the indexing's backward adds the repeated parents' gradients with
        # atomic adds on more than one CPU thread (an order that changes from run to run); index_select's adds in order
        features = x.features.index_select(0, _parents(data))
        return SparseConvTensor(features, data.indices, data.spatial_shape, x.batch_size, indice_dict=x.indice_dict)

    def extra_repr(self) -> str:
        return f"indice_key={self.indice_key!r}"


class SparseDeepestBlock(DeepestBlock):
    """The 2D model's DeepestBlock on the densified lowest resolution, read back at the active sites.

    Densifying costs a [3B, C, h, w] tensor (10x16 pixels for 640x1024 at
    depth 6); zeros stand at the empty pixels.
    """

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:  # type: ignore[override]
        batch, rows, cols = x.indices.long().unbind(1)
        height, width = x.spatial_shape
        dense = x.features.new_zeros(x.batch_size, height, width, x.features.shape[1])
        dense = dense.index_put((batch, rows, cols), x.features)
        dense = super().forward(dense.permute(0, 3, 1, 2))
        return _with_features(x, dense.permute(0, 2, 3, 1)[batch, rows, cols])


class SparseUNetLevel(nn.Module):
    """One resolution level: down blocks, skip, downsample, inner level, upsample, up blocks, connection (as the 3D model)."""

    def __init__(self, network: Any, settings: ConvSettings, depth: int, channels: int, level: int):
        super().__init__()
        inner = _inner_channels(network, channels)
        key = _down_key(level)
        self.connection_kind = _choice(network.connections)
        self.down_blocks = SparseBlockSeries(settings, channels, network.blocks_per_layer, 3, network.residual, level)
        self.downsample = _downsample(network, settings, channels, inner, key)
        self.main_module = build_sparse_core(network, settings, depth - 1, inner, level + 1)
        self.upsample = _upsample(network, settings, inner, channels, key)
        self.up_blocks = SparseBlockSeries(settings, channels, network.blocks_per_layer, 3, network.residual, level)
        if self.connection_kind == "concat":
            self.connection = SparseBlock(settings, 2 * channels, channels, kernel_size=1)

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        x = self.down_blocks(x)
        residual = x
        x = self.main_module(self.downsample(x))
        x = self.up_blocks(self.upsample(x))
        return self._connect(x, residual)

    def _connect(self, x: SparseConvTensor, residual: SparseConvTensor) -> SparseConvTensor:
        # the upsampler returns the finer level's sites in their order, so rows pair up
        if self.connection_kind == "concat":
            return self.connection(_with_features(x, torch.cat([x.features, residual.features], dim=1)))
        if self.connection_kind == "sum":
            return _with_features(x, x.features + residual.features)
        return x


def _downsample(network: Any, settings: ConvSettings, channels: int, inner: int, key: str) -> nn.Module:
    if _choice(network.downsampling) == "max_pooling":
        return nn.Sequential(SparseMaxPool(key), SparseBlock(settings, channels, inner, kernel_size=1))
    return SparseBlock(settings, channels, inner, kind="down", indice_key=key, activation=F.relu)


def _upsample(network: Any, settings: ConvSettings, inner: int, channels: int, key: str) -> nn.Module:
    if _choice(network.upsampling) == "interpolation":
        return nn.Sequential(SparseNearestUpsample(key), SparseBlock(settings, inner, channels, kernel_size=1))
    return SparseBlock(settings, inner, channels, kind="inverse", indice_key=key, activation=F.relu)


def build_sparse_core(network: Any, settings: ConvSettings, depth: int, channels: int,
                      level: int = 0) -> Union[SparseUNetLevel, SparseDeepestBlock]:
    """The sparse U-Net from `depth` levels above the deepest block down to it; `level` counts halvings so far."""
    if depth > 0:
        return SparseUNetLevel(network, settings, depth, channels, level)
    # the dense deepest block: BatchNorm2d over its [B, 3C, h, w] (or per-plane [3B, C, h, w]) input
    dense = ConvSettings(bias=settings.bias, norm=nn.BatchNorm2d if settings.norm is not None else None)
    return SparseDeepestBlock(network, dense, channels, mix_planes=not network.block_concat)


def _initialise_sparse(model: nn.Module) -> None:
    """The dense model's init for the spconv layers (see the module docstring)."""
    for module in model.modules():
        if isinstance(module, SparseConvolution):
            out_channels, *kernel, in_channels = module.weight.shape  # spconv layout [out, kh, kw, in]
            volume = math.prod(kernel)
            if module.inverse:
                # torch's ConvTranspose default: kaiming-uniform(a=sqrt 5) with fan_in = out * k^2
                bound = 1.0 / math.sqrt(out_channels * volume)
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.uniform_(module.bias, -bound, bound)
                continue
            bound = math.sqrt(6.0 / ((in_channels + out_channels) * volume))  # xavier-uniform of the dense kernel
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class SparseUResNet(nn.Module):
    """Segments the charged pixels of the 3 wire planes into background, cosmic and neutrino.

    `network` has the attributes of `benchmark.config.schema.NetworkConfig`.
    """

    def __init__(self, network: Any):
        super().__init__()
        filters = network.n_initial_filters
        self.depth = network.network_depth
        settings = ConvSettings(bias=network.bias, norm=nn.BatchNorm1d if network.batch_norm else None)
        self.initial_convolution = SparseBlock(settings, 1, filters, kernel_size=5, indice_key=_subm_key(0, 5))
        self.net_core = build_sparse_core(network, settings, network.network_depth, filters)
        self.final_layer = SparseBlockSeries(settings, filters, network.blocks_final, 3, network.residual, 0)
        self.bottleneck = spconv.SubMConv2d(filters, CLASSES, 1, bias=network.bias, algo=_ALGO)
        initialise(self, nn.Conv2d, nn.BatchNorm2d)  # the dense deepest block
        _initialise_sparse(self)

    def forward(self, indices: torch.Tensor, features: torch.Tensor, batch_size: int,
                spatial_shape: Sequence[int]) -> torch.Tensor:
        """Sites -> logits [N, 3 classes] at the same sites, in the same order.

        `indices` [N, 3]: (plane * batch_size + event, row, column), each site
        once; `features` [N, 1]: the charge; `batch_size`: events; `spatial_shape`:
        (H, W), both divisible by 2**network_depth.
        """
        height, width = (int(size) for size in spatial_shape)
        if height % 2**self.depth or width % 2**self.depth:
            raise ValueError(f"image {height}x{width} is not divisible by 2**{self.depth}")
        x = SparseConvTensor(features, spconv_indices(indices), [height, width], PLANES * batch_size)
        x = self.initial_convolution(x)
        x = self.net_core(x)
        x = self.final_layer(x)
        return _sparse_conv(self.bottleneck, x).features


def densify_logits(site_logits: torch.Tensor, indices: torch.Tensor, batch_size: int,
                   spatial_shape: Sequence[int]) -> torch.Tensor:
    """Site logits [N, 3] -> dense logits [B, 3 planes, 3 classes, H, W] (a strided view).

    Empty pixels get the fixed background prediction (0, -EMPTY_LOGIT_GAP,
    -EMPTY_LOGIT_GAP): cross entropy 0 against background, no gradient; the
    gradient reaches the site logits only.
    """
    height, width = (int(size) for size in spatial_shape)
    empty = site_logits.new_tensor([0.0, -EMPTY_LOGIT_GAP, -EMPTY_LOGIT_GAP])
    dense = empty.expand(batch_size, PLANES, height, width, CLASSES).clone()
    folded, rows, cols = indices.long().unbind(1)
    plane, event = folded // batch_size, folded % batch_size
    dense = dense.index_put((event, plane, rows, cols), site_logits)
    return dense.permute(0, 1, 4, 2, 3)


def sites_from_voxels(event, plane, index, value, batch_size: int, image_shape: Tuple[int, int],
                      device: Union[str, torch.device] = "cpu") -> Tuple[torch.Tensor, torch.Tensor]:
    """A VoxelBatch's voxel columns -> (indices int32 [N, 3] planes-major, features float32 [N, 1]) for `SparseUResNet`."""
    width = int(image_shape[1])
    event, plane, index = (torch.as_tensor(np.asarray(a), dtype=torch.int64) for a in (event, plane, index))
    indices = torch.stack([plane * batch_size + event, index // width, index % width], dim=1)
    features = torch.as_tensor(np.asarray(value), dtype=torch.float32).reshape(-1, 1)
    return spconv_indices(indices).to(device), features.to(device)
