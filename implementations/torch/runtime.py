"""Device, threads and numeric precision for the PyTorch implementations."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch

from benchmark.config.schema import ComputeMode, Precision
from benchmark.errors import BenchmarkError


def device_type(compute_mode: ComputeMode) -> str:
    """"cpu" or "cuda": what `compute_mode` picks on this host (GPU without one is refused)."""
    if compute_mode != ComputeMode.CPU and torch.cuda.is_available():
        return "cuda"
    if compute_mode == ComputeMode.GPU:
        raise BenchmarkError("run.compute_mode=GPU but torch sees no GPU (use run.compute_mode=CPU or auto)")
    return "cpu"


def cuda_copy_bandwidth_gb_s(device: torch.device) -> float:
    """Read + write GB/s of a GPU's memory: ten copies of 1 GiB, timed with CUDA events."""
    source = torch.empty(2**28, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        target.copy_(source)
    stop.record()
    stop.synchronize()
    return 10 * 2 * source.numel() * source.element_size() / (start.elapsed_time(stop) / 1e3) / 1e9


def select_device(compute_mode: ComputeMode, local_rank: int = 0) -> torch.device:
    """The CPU, or the GPU of this rank on its node (`local_rank` modulo the GPUs visible)."""
    if device_type(compute_mode) == "cpu":
        return torch.device("cpu")
    device = torch.device("cuda", local_rank % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def set_threads(intra: int, inter: int, cores: int) -> int:
    """Apply the thread settings, capped at this rank's `cores` (more only slows)."""
    threads = min(intra, cores) if intra > 0 else cores
    torch.set_num_threads(threads)
    if inter > 0:
        # Settable once per process, before inter-op work starts.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(inter)
    return threads


@dataclass
class PrecisionPolicy:
    """How forward passes are cast and whether gradients need loss scaling.

    Weights stay float32 in every mode (the optimizer updates float32 master
    weights); `mixed` and `bfloat16` only autocast the forward pass.
    """

    precision: Precision
    device: torch.device

    def __post_init__(self) -> None:
        if self.device.type == "cuda":
            allow = self.precision != Precision.float32
            torch.backends.cuda.matmul.allow_tf32 = allow
            torch.backends.cudnn.allow_tf32 = allow

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        return {Precision.mixed: torch.float16, Precision.bfloat16: torch.bfloat16}.get(self.precision)

    def autocast(self) -> ContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        # float16 gradients underflow without scaling; the scaler is a no-op otherwise.
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == Precision.mixed)
