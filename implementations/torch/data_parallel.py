"""Data parallelism for the PyTorch implementations: DistributedDataParallel or Horovod over the run's ranks.

Both average the gradients of the ranks' equal shares of the global batch,
so an update equals one on the whole batch. With gradient accumulation DDP
synchronises on the last micro-batch of an update only (`no_sync` before).
"""
from __future__ import annotations

import contextlib
import datetime
from typing import ContextManager, Iterable

import torch
from torch import nn

from benchmark.errors import BenchmarkError


class LocalTraining:
    """One rank: the model itself, nothing to synchronise."""

    def __init__(self, model: nn.Module):
        self.train_model = model

    def backward_context(self, last_micro_batch: bool) -> ContextManager:
        return contextlib.nullcontext()

    def before_update(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        pass


class DDPTraining(LocalTraining):
    """torch.nn.parallel.DistributedDataParallel; NCCL for CUDA tensors, gloo for CPU ones."""

    def __init__(self, model: nn.Module, parallel, device: torch.device):
        import torch.distributed as dist

        if not dist.is_initialized():  # torchrun runs have it from the harness already
            backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=f"tcp://{parallel.master_addr}:{parallel.master_port}",
                                    rank=parallel.rank, world_size=parallel.size,
                                    timeout=datetime.timedelta(seconds=parallel.timeout_s))
        ids = [device.index] if device.type == "cuda" else None
        super().__init__(nn.parallel.DistributedDataParallel(model, device_ids=ids))

    def backward_context(self, last_micro_batch: bool) -> ContextManager:
        return contextlib.nullcontext() if last_micro_batch else self.train_model.no_sync()


class HorovodTraining(LocalTraining):
    """horovod.torch: rank 0's weights and buffers at the start, gradients averaged by one grouped allreduce per update.

    Batch-norm running statistics stay each rank's own (as with DDP's buffers
    on other ranks than 0); rank 0 saves its own.
    """

    def __init__(self, model: nn.Module, parallel):
        try:
            import horovod.torch as hvd
        except ImportError as exc:
            raise BenchmarkError(f"framework.distributed_mode=horovod but horovod.torch cannot be imported ({exc})") from exc
        self.hvd = hvd
        hvd.init(comm=parallel.mpi_comm)
        # Horovod needs contiguous tensors; channels_last weights and gradients are not.
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                tensor.copy_(hvd.broadcast(tensor.contiguous(), root_rank=0, name=f"initial.{name}"))
        super().__init__(model)

    def before_update(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        with_grad = [p for p in parameters if p.grad is not None]
        averaged = self.hvd.grouped_allreduce([p.grad.contiguous() for p in with_grad], op=self.hvd.Average)
        for parameter, gradient in zip(with_grad, averaged):
            parameter.grad.copy_(gradient)


def data_parallel(model: nn.Module, parallel, device: torch.device) -> LocalTraining:
    if parallel is None or not parallel.distributed:
        return LocalTraining(model)
    if parallel.mode == "DDP":
        return DDPTraining(model, parallel, device)
    if parallel.mode == "horovod":
        return HorovodTraining(model, parallel)
    raise BenchmarkError(f"framework.distributed_mode={parallel.mode} is not known to PyTorch")
