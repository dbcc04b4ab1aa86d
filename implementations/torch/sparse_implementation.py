"""The sparse PyTorch implementation: the UResNet on spconv, fed the charged voxels as they come.

It is `TorchDense2D` with another forward: the batch's voxels become spconv
sites (planes folded into the batch index, as the dense 2D model folds them
into the batch axis) without a dense image, and the logits at the sites are
densified with a fixed background prediction on every empty pixel, so the
harness's loss and metrics (one definition) apply unchanged. Everything else
(optimizer, precision policy, accumulation, data parallelism, checkpoints) is
the dense implementation's.
"""
from __future__ import annotations

import importlib.metadata
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark.config.schema import Precision
from benchmark.data.batch import VoxelBatch
from benchmark.data.pipeline import load_batch
from benchmark.data.synthetic import SyntheticSource
from benchmark.errors import ConfigError
from benchmark.implementation import ModelCost, Parallel

from .implementation import TorchDense2D
from .runtime import device_type
from .uresnet_sparse import SparseUResNet, densify_logits, sites_from_voxels


class TorchSparse(TorchDense2D):
    name = "torch-sparse"

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        super().check(cfg)
        precision = Precision(cfg.run.precision)
        if precision == Precision.bfloat16:  # spconv has no bfloat16 kernels (traveller59/spconv#673)
            raise ConfigError("run.precision=bfloat16: spconv has no bfloat16 kernels; use float32 or tf32 with "
                              "network.conv_mode=sparse (or mixed, float16, on a GPU)")
        if precision == Precision.mixed and device_type(cfg.run.compute_mode) == "cpu":
            raise ConfigError("run.precision=mixed: spconv computes in float32 on the CPU; "
                              "use run.precision=float32 with network.conv_mode=sparse here")

    def __init__(self, cfg: DictConfig, image_shape: Tuple[int, int], parallel: Optional[Parallel] = None):
        self.check(cfg)  # also when built directly, as the tests and benchmark.perf do
        super().__init__(cfg, image_shape, parallel)

    def _build(self) -> torch.nn.Module:
        return SparseUResNet(self.cfg.network)

    def _model_memory_format(self, channels_last: bool) -> torch.memory_format:
        return torch.contiguous_format  # site features are [N, C]: no image layout

    def _forward(self, model: torch.nn.Module, batch: VoxelBatch) -> Tuple[torch.Tensor, torch.Tensor]:
        indices, features = sites_from_voxels(batch.event, batch.plane, batch.index, batch.value, batch.batch_size,
                                              batch.image_shape, self.device)
        with self.policy.autocast():
            site_logits = model(indices, features, batch.batch_size, batch.image_shape)
        logits = densify_logits(site_logits.float(), indices, batch.batch_size, batch.image_shape)
        flat = self._host(batch.flat_index()).to(self.device, non_blocking=True)
        return logits, self._scatter(batch, flat, batch.label, torch.uint8)

    # -- description -------------------------------------------------------
    def layer_summary(self) -> str:
        rows = [(name, type(module).__name__, sum(p.numel() for p in module.parameters(recurse=False)))
                for name, module in self.model.named_modules() if name and not list(module.children())]
        width = max(len(name) for name, _, _ in rows)
        lines = [f"{'layer'.ljust(width)}  {'type':<22} parameters"]
        lines += [f"{name.ljust(width)}  {kind:<22} {count:,}" for name, kind, count in rows]
        return "\n".join(lines)

    def cost(self, image_shape: Tuple[int, int]) -> ModelCost:
        """FLOP and activation bytes of one synthetic event at `image_shape`, counted at its active sites.

        Sparse work depends on the event: this counts it for one synthetic
        event (the data's occupancy) as 2 x kernel volume x Cin x Cout per
        output site of every sparse convolution (an upper bound: a
        submanifold convolution skips the kernel positions without a
        neighbour), plus the dense deepest block's convolutions; training:
        estimated as 3 x forward, not counted (the cost says so). Activation bytes: every layer's output, float32.
        """
        counted = {"flop": 0.0, "bytes": 0.0}

        def count(module, _inputs, output) -> None:
            features = output.features if hasattr(output, "features") else output
            if not torch.is_tensor(features):
                return
            counted["bytes"] += 4.0 * features.numel()
            kernel = getattr(module, "kernel_size", None)
            if kernel is not None and hasattr(module, "in_channels"):
                sites = features.shape[0] if features.dim() == 2 else features[0, 0].numel() * features.shape[0]
                volume = float(np.prod(kernel))
                counted["flop"] += 2.0 * volume * module.in_channels * module.out_channels * sites

        leaves = [m for m in self.model.modules() if not list(m.children())]
        handles = [m.register_forward_hook(count) for m in leaves]
        source = SyntheticSource(1, seed=1)
        full = source.full_shape
        downsample = int(round(np.log2(full[0] / image_shape[0])))
        event = load_batch(source, [0], downsample)
        try:
            self.model.eval()
            with torch.no_grad():
                self._forward(self.model, event)
        finally:
            for handle in handles:
                handle.remove()
        return ModelCost.from_forward(counted["flop"], counted["bytes"])

    def describe(self) -> Dict[str, str]:
        return {**super().describe(), "spconv": importlib.metadata.version("spconv")}
