"""The run's parallel context: which ranks train one model together, and how they meet.

`run.distributed=true` under mpirun, srun, mpiexec or torchrun: the rank,
world size and local rank come from the launcher (`placement.py`), the
host-side collectives from mpi4py or torch.distributed (`comm.py`), and the
framework's rendezvous is rank 0's host name with `run.distributed_port`
(torchrun's own MASTER_ADDR/MASTER_PORT under torchrun). `run.instances=N`
splits the job into N concurrent instances of the benchmark (weak scaling),
each on world size / N consecutive ranks, with its own port (port + k).
"""
from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig

from benchmark.errors import BenchmarkError, ConfigError

from .comm import HostComm, MPIComm, SingleComm, TorchComm
from .placement import MPI_LAUNCHERS, Placement, detect


@dataclass(frozen=True)
class Parallel:
    """What an implementation and the harness need to know about the ranks of this model."""

    rank: int = 0  # within the instance
    size: int = 1  # ranks of the instance
    local_rank: int = 0  # within the node: picks the accelerator
    local_size: int = 1  # ranks of the instance on this node
    node_ranks: int = 1  # ranks of the whole job on this node: they share its cores
    cores: int = field(default_factory=lambda: available_cores())  # this rank's cores, for its thread pools
    nodes: int = 1  # nodes the instance spans
    mode: str = "DDP"  # framework.distributed_mode
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    timeout_s: int = 600
    instance: int = 0
    instances: int = 1
    world_rank: int = 0  # within the whole job
    launcher: str = "none"
    comm: HostComm = field(default_factory=SingleComm)  # the instance's ranks
    world: HostComm = field(default_factory=SingleComm)  # every rank of the job
    mpi_comm: Any = None  # the instance's mpi4py communicator under an MPI launcher (Horovod uses it)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def available_cores(ranks_on_node: int = 1) -> int:
    """The cores this process may use: its CPU affinity if the launcher bound it, else a fair share of the node's."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if allowed < (os.cpu_count() or allowed):
        return allowed  # bound by the launcher (mpirun binds to cores by default), or limited by a cgroup
    return max(allowed // ranks_on_node, 1)


SINGLE = Parallel()


def setup(cfg: DictConfig, environ: Optional[dict] = None) -> Parallel:
    """The context of this process; refuses a launch that does not match the configuration."""
    placement = detect(environ)
    if not cfg.run.distributed:
        if placement.size > 1:
            raise ConfigError(f"launched on {placement.size} ranks by {placement.launcher} but run.distributed=false: "
                              "set run.distributed=true (or start one process)")
        if cfg.run.instances > 1:
            raise ConfigError(f"run.instances={cfg.run.instances} needs run.distributed=true")
        return SINGLE
    _check(cfg, placement)
    world = _world(placement, cfg.run.distributed_timeout)
    instances = cfg.run.instances
    per_instance = placement.size // instances
    instance = placement.rank // per_instance
    # only an MPI world has instances: _check refuses them under torchrun, and a lone process has one rank
    comm = world.split(instance) if instances > 1 else world
    hosts = world.allgather(socket.gethostname())
    mine = hosts[instance * per_instance:(instance + 1) * per_instance]
    if placement.launcher == "torchrun":
        env = os.environ if environ is None else environ
        address, port = env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", cfg.run.distributed_port))
    else:
        address, port = mine[0], cfg.run.distributed_port + instance
    _check_batches(cfg, comm.size)
    return Parallel(
        rank=comm.rank, size=comm.size, local_rank=placement.local_rank, local_size=mine.count(hosts[placement.rank]),
        node_ranks=hosts.count(hosts[placement.rank]), cores=available_cores(hosts.count(hosts[placement.rank])),
        nodes=len(set(mine)), mode=cfg.framework.distributed_mode.value, master_addr=address, master_port=port,
        timeout_s=cfg.run.distributed_timeout, instance=instance, instances=instances, world_rank=placement.rank,
        launcher=placement.launcher, comm=comm, world=world, mpi_comm=getattr(comm, "comm", None),
    )


def _check(cfg: DictConfig, placement: Placement) -> None:
    framework, mode = cfg.framework.name.value, cfg.framework.distributed_mode.value
    if framework == "tensorflow" and mode != "horovod":
        raise ConfigError("framework.name=tensorflow distributes with Horovod: set framework.distributed_mode=horovod")
    if placement.launcher == "torchrun":
        if framework != "torch" or mode != "DDP":
            raise ConfigError("torchrun launches PyTorch DDP runs only; start Horovod runs with mpirun or srun")
        if cfg.run.instances > 1:
            raise ConfigError("run.instances > 1 needs an MPI launcher (mpirun, srun, mpiexec), not torchrun")
    if mode == "horovod" and placement.launcher not in MPI_LAUNCHERS + ("none",):
        raise ConfigError(f"framework.distributed_mode=horovod needs an MPI launcher, not {placement.launcher}")
    if mode == "horovod" and importlib.util.find_spec("horovod") is None:  # before any rank writes anything
        raise BenchmarkError("framework.distributed_mode=horovod but Horovod is not installed "
                             "(scripts/build_horovod.sh builds it; run_benchmark.sh does on first use)")
    if placement.size % cfg.run.instances:
        raise ConfigError(f"run.instances={cfg.run.instances} does not divide the {placement.size} ranks evenly")


def _check_batches(cfg: DictConfig, ranks: int) -> None:
    """One meaning of the batch sizes: the global batch, split evenly across the ranks."""
    for key in ("minibatch_size", "aux_minibatch_size"):
        value = cfg.run[key]
        if value % ranks:
            raise ConfigError(f"run.{key}={value} is the global batch and must divide evenly across {ranks} ranks")


def _world(placement: Placement, timeout_s: int) -> HostComm:
    if placement.launcher in MPI_LAUNCHERS:
        try:
            return MPIComm()
        except ImportError as exc:
            raise ConfigError(f"launched by {placement.launcher} but mpi4py cannot load an MPI library ({exc})") from exc
    if placement.launcher == "torchrun":
        return TorchComm(placement.rank, placement.size, timeout_s)
    return SingleComm()
