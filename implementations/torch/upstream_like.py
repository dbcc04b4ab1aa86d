"""A measuring device for `python -m benchmark.perf`: the 2D UResNet run plane by plane, as upstream runs it.

Upstream applies each shared-weight layer to the three planes one after the
other ([B, 1, H, W] each, plain `BatchNorm2d`, so every call normalises one
plane with its own statistics and updates the running ones in plane order);
only the deepest block sees the planes together. `PlaneByPlaneUResNet` does
exactly that with the reference's modules, weights and state_dict keys (its
plain batch norms replace the folded-batch ones), so the perf script can time
upstream's way of working against the reference and the optimized paths.
Nothing else uses it.
"""
from __future__ import annotations

from typing import Any, List

import torch
from torch import nn

from .blocks import PlaneBatchNorm2d
from .implementation import TorchDense2D
from .uresnet2d import PLANES, DeepestBlock, UNetLevel, UResNet

Planes = List[torch.Tensor]


def _each(module: nn.Module, planes: Planes) -> Planes:
    """`module` applied to each plane alone, in plane order."""
    return [module(plane) for plane in planes]


def _core(level: nn.Module, planes: Planes) -> Planes:
    if isinstance(level, DeepestBlock):
        if not level.mix_planes:
            return _each(level, planes)
        mixed = level.unbottleneck(level.blocks(level.bottleneck(torch.cat(planes, dim=1))))
        return list(mixed.chunk(PLANES, dim=1))
    assert isinstance(level, UNetLevel)
    residuals = planes
    planes = _each(level.down_blocks, planes)
    planes = _each(level.downsample, planes)
    planes = _core(level.main_module, planes)
    planes = _each(level.upsample, planes)
    planes = [level._connect(x, residual) for x, residual in zip(planes, residuals)]
    return _each(level.up_blocks, planes)


def _plain_batch_norms(model: nn.Module) -> None:
    """Replace every PlaneBatchNorm2d by a plain BatchNorm2d with the same settings and state."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PlaneBatchNorm2d):
                plain = nn.BatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine,
                                       track_running_stats=child.track_running_stats)
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)


class PlaneByPlaneUResNet(UResNet):
    """The reference UResNet's modules and weights, applied plane by plane as upstream does."""

    def __init__(self, network: Any):
        super().__init__(network, inplace_activation=False)  # upstream's activations write new tensors
        _plain_batch_norms(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> logits [B, 3 planes, 3 classes, H, W]."""
        planes = list(x.chunk(PLANES, dim=1))
        planes = _each(self.initial_convolution, planes)
        planes = _core(self.net_core, planes)
        planes = _each(self.final_layer, planes)
        return torch.stack(_each(self.bottleneck, planes), dim=1)


class TorchUpstreamLike2D(TorchDense2D):
    """The reference implementation with the network run plane by plane (perf's `upstream` path)."""

    name = "torch-2D-upstream-like"

    def _build(self) -> torch.nn.Module:
        return PlaneByPlaneUResNet(self.cfg.network)
