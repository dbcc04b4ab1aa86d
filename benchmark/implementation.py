"""The small interface through which a framework plugs into the harness.

The harness owns everything that is the same for every framework: the
training loop, data, the learning-rate schedule, metrics (from confusion
matrices), timing, checkpoint cadence and reporting. An implementation owns
the model, the optimizer state, precision, devices, and its checkpoint files.

Values that live on the accelerator (loss, confusion matrices) come back as
opaque handles; the harness turns them into numbers with `fetch` only when it
reports, so an implementation need not synchronise the host every step.
"""
from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Dict, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from benchmark.data.batch import VoxelBatch
from benchmark.durable import published  # noqa: F401  (for `save`: write aside, flush to disk, then rename)
from benchmark.parallel.context import SINGLE, Parallel  # noqa: F401  (the interface: the constructor's third argument)


@dataclass
class StepResult:
    """Outputs of one forward pass, still on the device."""

    loss: Any  # scalar
    confusion: Any  # [B, 3 planes, 3 true, 3 predicted] counts
    predictions: Any = None  # [B, 3, H, W] uint8 labels, evaluation only


@dataclass
class ModelCost:
    """What one image costs at a given resolution, for sizing runs."""

    forward_flop: float
    train_step_flop: float
    activation_bytes: float  # tensors kept for the backward pass, per image
    #: False: train_step_flop was counted (forward and backward); True: estimated as 3 x forward_flop
    train_step_flop_estimated: bool = False

    @classmethod
    def from_forward(cls, forward_flop: float, activation_bytes: float) -> "ModelCost":
        """A cost whose training FLOP is estimated as 3 x forward (the backward pass taken as twice the forward)."""
        return cls(forward_flop, 3.0 * forward_flop, activation_bytes, train_step_flop_estimated=True)

    @property
    def train_step_flop_note(self) -> str:
        """How train_step_flop was found, for every figure printed from it: "counted" or "estimated, 3x forward"."""
        return "estimated, 3x forward" if self.train_step_flop_estimated else "counted"


class Implementation(abc.ABC):
    """A model in one framework and convolution mode.

    Constructed as `Cls(cfg, image_shape, parallel=None)`: the resolved
    configuration (with resolved seeds), the (rows, columns) of the images it
    will see, and the ranks it trains with (a `Parallel`; None: one process).
    Under `run.distributed=true` every batch it gets is this rank's equal
    share of the global batch; it averages the gradients over the ranks
    (`framework.distributed_mode`), so an update equals one on the global
    batch, and starts every rank from the same weights.
    """

    #: short name used in reports and results, e.g. "torch-2D"
    name: str = ""

    @abc.abstractmethod
    def device_description(self) -> str:
        """Where it runs, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H200"."""

    @abc.abstractmethod
    def uses_accelerator(self) -> bool:
        """Whether the model runs on an accelerator (a GPU), one per rank: the MLPerf log's
        accelerators_per_node is then the ranks per node, else 0."""

    @abc.abstractmethod
    def parameter_count(self) -> int:
        """Trainable parameters."""

    @abc.abstractmethod
    def layer_summary(self) -> str:
        """A human-readable listing of the network's layers."""

    @abc.abstractmethod
    def cost(self, image_shape: Tuple[int, int]) -> ModelCost:
        """FLOP and activation memory per image, without training."""

    @abc.abstractmethod
    def accumulate(self, batch: VoxelBatch, weight: float) -> StepResult:
        """Forward and backward on one micro-batch, adding `weight` x its gradient."""

    @abc.abstractmethod
    def apply_update(self, learning_rate: float) -> None:
        """One optimizer step with the accumulated gradient, then clear it."""

    @abc.abstractmethod
    def evaluate(self, batch: VoxelBatch, with_predictions: bool = False) -> StepResult:
        """Forward pass in evaluation mode (no gradients, running statistics)."""

    @abc.abstractmethod
    def fetch(self, value: Any) -> np.ndarray:
        """A device value as a numpy array (synchronises)."""

    def synchronize(self) -> None:
        """Wait for queued device work, so wall-clock timings are true."""

    @abc.abstractmethod
    def save(self, path: str) -> None:
        """Write model, optimizer, loss-scaler and framework RNG state to `path`, through `published(path)`,
        so that a crash, power loss included, leaves the previous file or the whole new one."""

    @abc.abstractmethod
    def load(self, path: str, weights_only: bool = False) -> None:
        """Restore what `save` wrote (only the model weights if `weights_only`)."""

    @abc.abstractmethod
    def export_weights(self) -> Dict[str, np.ndarray]:
        """The model's weights in the exchange layout shared by every framework.

        The layout is torch's: its state_dict keys and tensor layouts (e.g.
        convolution kernels [out, in, *spatial]), float32 numpy arrays,
        batch-norm running statistics included, `num_batches_tracked` left
        out; a snapshot that later training leaves alone. `benchmark.convert` moves checkpoints
        between frameworks with it.
        """

    @abc.abstractmethod
    def import_weights(self, weights: Dict[str, np.ndarray]) -> None:
        """Set the model's weights from the exchange layout; every weight must be present, nothing left over."""

    def profile_steps(self, directory: str) -> ContextManager:
        """A context in which the framework's profiler traces the steps run inside it."""
        return contextlib.nullcontext()

    def peak_memory_bytes(self) -> int:
        """Peak memory of the device the model runs on (host: the process's peak RSS)."""
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def reset_peak_memory(self) -> None:
        """Start a new peak for `peak_memory_bytes` (where the device allows it; the host's RSS peak cannot be reset)."""

    def memory_bandwidth_gb_s(self) -> Optional[float]:
        """The device's measured memory bandwidth, GB/s (read + write of a large copy); None: the host's."""
        return None

    @classmethod
    def check(cls, cfg: DictConfig) -> None:
        """Refuse a configuration this implementation cannot run (a BenchmarkError: one line), before the
        run writes anything; what the constructor would refuse later leaves a half-started run folder."""

    def checkpoint_suffix(self) -> str:
        return ".ckpt"

    def describe(self) -> Dict[str, str]:
        """Framework and library versions ("framework": "PyTorch 2.13.0", "spconv": "2.3.8", ...), printed
        beside `device_description()` when a run builds the implementation."""
        return {}
