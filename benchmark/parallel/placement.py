"""Where this process sits in a job, read from the launcher's environment.

Each launcher exports the rank, the world size and the rank on the node;
torchrun is looked for first (under srun it also sees Slurm's variables).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

# launcher: (rank, world size, local rank) variables
LAUNCHERS = (
    ("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"),
    ("openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("pals", "PALS_RANKID", "PMI_SIZE", "PALS_LOCAL_RANKID"),  # HPE Cray PALS (Aurora, Polaris)
    ("mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),  # MPICH's Hydra
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)
MPI_LAUNCHERS = ("openmpi", "pals", "mpich", "slurm")


@dataclass(frozen=True)
class Placement:
    rank: int
    size: int
    local_rank: int
    launcher: str  # one of LAUNCHERS' names, or "none" for a process started alone


def detect(environ: Optional[Mapping[str, str]] = None) -> Placement:
    """The first launcher whose three variables are all set; a lone process otherwise."""
    env = os.environ if environ is None else environ
    for launcher, rank, size, local in LAUNCHERS:
        if all(name in env for name in (rank, size, local)):
            return Placement(int(env[rank]), int(env[size]), int(env[local]), launcher)
    return Placement(0, 1, 0, "none")
