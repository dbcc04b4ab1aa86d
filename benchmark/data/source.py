"""What every event source provides: full-resolution charged voxels per plane.

The synthetic generator and the larcv3 reader implement `EventSource`; the
loader only sees these protocols. A `PreparedSource` (a pool of synthetic
events) also holds its events downsampled already and assembles batches
itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, Tuple, runtime_checkable

import numpy as np

from benchmark.data.batch import VoxelBatch
from benchmark.errors import DataError


@dataclass(frozen=True)
class Event:
    """One event's charged voxels at full resolution, one array per plane.

    `index[p]` is int64 `y * cols + x`, sorted and unique; `value[p]` is the
    float32 charge and `label[p]` the uint8 class (0 background, 1 cosmic,
    2 neutrino) of the same voxels. Uncharged pixels are background.
    """

    index: Tuple[np.ndarray, ...]
    value: Tuple[np.ndarray, ...]
    label: Tuple[np.ndarray, ...]

    @property
    def n_voxels(self) -> Tuple[int, ...]:
        return tuple(int(i.shape[0]) for i in self.index)


class EventSource(Protocol):
    """A random-access collection of events."""

    @property
    def full_shape(self) -> Tuple[int, int]:
        """(rows, cols) of a plane at full resolution: (1280, 2048) for SBND."""
        ...

    def __len__(self) -> int:
        """Number of events."""
        ...

    def read(self, entry: int) -> Event:
        """Event number `entry` (0 <= entry < len); IndexError otherwise."""
        ...


@runtime_checkable
class PreparedSource(EventSource, Protocol):
    """An event source that holds its events downsampled by 2^`downsample` already."""

    downsample: int

    @property
    def description(self) -> str:
        """What it holds, for reports."""
        ...

    def batch(self, entries: Sequence[int], max_voxels: int = 0) -> VoxelBatch:
        """The batch of `entries`, as `load_batch` would assemble it from `read`."""
        ...


def source_name(source: EventSource) -> str:
    """How error messages name a source: its file, or its kind."""
    return getattr(source, "path", type(source).__name__)


def check_voxel_count(source: EventSource, entry: int, plane: int, n_voxels: int, max_voxels: int) -> None:
    """`max_voxels` > 0 refuses a plane with more charged voxels (at full resolution) than that, rather than
    truncating it as upstream's buffers did."""
    if 0 < max_voxels < n_voxels:
        raise DataError(
            f"{source_name(source)}: entry {entry} plane {plane} holds {n_voxels} "
            f"charged voxels, more than data.max_voxels={max_voxels}"
        )
