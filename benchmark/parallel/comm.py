"""Collectives on host values for the harness (metrics, seeds, decisions), independent of the framework.

Under an MPI launcher (mpirun, srun, mpiexec) they go through mpi4py; under
torchrun, whose processes are not MPI processes, through a gloo process group
of torch.distributed (imported only then). A lone process needs neither.
"""
from __future__ import annotations

import abc
import datetime
import os
import sys
from typing import Any, List

import numpy as np


class HostComm(abc.ABC):
    rank: int = 0
    size: int = 1

    @abc.abstractmethod
    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of `values` over the ranks, on every rank."""

    @abc.abstractmethod
    def allgather(self, value: Any) -> List[Any]:
        """Every rank's `value` (picklable), in rank order, on every rank."""

    @abc.abstractmethod
    def gather(self, value: Any) -> List[Any]:
        """Every rank's `value` in rank order on rank 0; an empty list elsewhere."""

    @abc.abstractmethod
    def bcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""

    @abc.abstractmethod
    def barrier(self) -> None:
        """Wait until every rank is here."""

    def abort(self, status: int) -> None:
        """End the whole job now (every rank, every instance)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


class SingleComm(HostComm):
    """One process: every collective is the identity."""

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)

    def allgather(self, value: Any) -> List[Any]:
        return [value]

    def gather(self, value: Any) -> List[Any]:
        return [value]

    def bcast(self, value: Any) -> Any:
        return value

    def barrier(self) -> None:
        pass


class MPIComm(HostComm):
    """mpi4py; `comm` is the instance's communicator (MPI.COMM_WORLD, or a split of it)."""

    def __init__(self, comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(values)
        out = np.empty_like(values)
        self.comm.Allreduce(values, out, op=self.MPI.SUM)
        return out

    def allgather(self, value: Any) -> List[Any]:
        return self.comm.allgather(value)

    def gather(self, value: Any) -> List[Any]:
        return self.comm.gather(value, root=0) or []

    def bcast(self, value: Any) -> Any:
        return self.comm.bcast(value, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def split(self, color: int) -> "MPIComm":
        """The ranks of the same `color` as a communicator of their own (rank order kept): a weak-scaling instance."""
        return MPIComm(self.comm.Split(color, self.rank))

    def abort(self, status: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.MPI.COMM_WORLD.Abort(status)


class TorchComm(HostComm):
    """torch.distributed with gloo, for processes started by torchrun (which sets MASTER_ADDR and MASTER_PORT).

    The default process group is created here with gloo for CPU tensors and
    NCCL for CUDA ones, so a PyTorch implementation uses the same group for DDP.
    """

    def __init__(self, rank: int, size: int, timeout_s: int):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        if not dist.is_initialized():
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=timeout_s))
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        tensor = self.torch.from_numpy(np.array(values, copy=True))
        self.dist.all_reduce(tensor)
        return tensor.numpy()

    def allgather(self, value: Any) -> List[Any]:
        out: List[Any] = [None] * self.size
        self.dist.all_gather_object(out, value)
        return out

    def gather(self, value: Any) -> List[Any]:
        out: List[Any] = [None] * self.size if self.rank == 0 else None
        self.dist.gather_object(value, out, dst=0)
        return out or []

    def bcast(self, value: Any) -> Any:
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        self.dist.barrier()
