"""What every event source provides: full-resolution charged voxels per plane.

The synthetic generator implements this now, a larcv3 HDF5 reader later; the
loader only sees this protocol.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Tuple

import numpy as np


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
