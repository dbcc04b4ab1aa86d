"""Events prepared once and cycled, so that a batch costs only a gather.

A realistic synthetic event takes ~10 ms of host CPU to generate and
downsample at 640 x 1024, so events made on the fly hold a 2-core host to
~250 images/s and a throughput figure would measure the host. A pool makes
N events once, before the clock starts, at the run's resolution and in the
compact voxel form (9 bytes per charged voxel); a batch is then a
concatenation of its events' rows. Entry e is served by pool event e mod N:
the source keeps its size, so epochs, schedules and the logged sample counts
do not change, and the data order stays the sampler's, a pure function of
(data seed, step).
"""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import List, Sequence, Tuple

import numpy as np

from benchmark.data.batch import N_PLANES, VoxelBatch
from benchmark.data.downsample import downsample_plane, downsampled_shape
from benchmark.data.source import Event, EventSource, check_voxel_count

# A spawned process costs ~0.5 s to start (numpy and the harness imported again): fewer events per process
# than this are made faster in the caller's process.
EVENTS_PER_PROCESS = 32

# Per prepared slice of events: full-resolution counts [n, 3], downsampled counts [n, 3], index, value, label.
_Prepared = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _prepare(source: EventSource, entries: np.ndarray, downsample: int) -> _Prepared:
    """`entries` read and downsampled, their planes' voxels concatenated in (event, plane) order."""
    full_counts, counts, columns = [], [], []
    for entry in entries:
        event = source.read(int(entry))
        full_counts.append(event.n_voxels)
        for plane in range(N_PLANES):
            voxels = downsample_plane(event.index[plane], event.value[plane], event.label[plane],
                                      source.full_shape, downsample)
            counts.append(voxels[0].shape[0])
            columns.append(voxels)
    index, value, label = (np.concatenate([np.empty(0, dtype)] + [c[k] for c in columns]).astype(dtype, copy=False)
                           for k, dtype in enumerate((np.int32, np.float32, np.uint8)))
    shape = (len(entries), N_PLANES)
    return (np.array(full_counts, np.int64).reshape(shape), np.array(counts, np.int64).reshape(shape),
            index, value, label)


class EventPool:
    """The first `size` events of `source`, downsampled by 2^`downsample` and held in memory.

    Entry e (0 <= e < len(source)) is the source's event e mod `size`. The
    events are made by up to `workers` processes (the source is pickled to
    them), in the caller's process when there are few. `batch` gathers a
    batch without generating or reading anything; `read` returns an entry's
    full-resolution event from the source.
    """

    def __init__(self, source: EventSource, size: int, downsample: int, workers: int = 1):
        if not 1 <= size <= len(source) or workers < 1:
            raise ValueError(f"need 1 <= size <= {len(source)} events and workers >= 1, got {size} and {workers}")
        self.image_shape = downsampled_shape(source.full_shape, downsample)
        self.source = source
        self.size = int(size)
        self.downsample = int(downsample)
        begin = time.perf_counter()
        self.processes = max(1, min(workers, self.size // EVENTS_PER_PROCESS))
        parts = self._prepare_all(self.processes)
        self._full_counts = np.concatenate([part[0] for part in parts])
        self._counts = np.concatenate([part[1] for part in parts])
        # Row where each event's voxels start, and one past the last event.
        self._starts = np.concatenate([[0], np.cumsum(self._counts.sum(axis=1))])
        self._index, self._value, self._label = (np.concatenate([part[k] for part in parts]) for k in (2, 3, 4))
        self.build_seconds = time.perf_counter() - begin

    def _prepare_all(self, processes: int) -> List[_Prepared]:
        entries = np.arange(self.size)
        if processes <= 1:
            return [_prepare(self.source, entries, self.downsample)]
        # A few slices per process balance events of different sizes; order is kept, so the pool is the same.
        slices = np.array_split(entries, 4 * processes)
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as executor:
            return list(executor.map(_prepare, [self.source] * len(slices), slices,
                                     [self.downsample] * len(slices)))

    @property
    def full_shape(self) -> Tuple[int, int]:
        return self.source.full_shape

    def __len__(self) -> int:
        return len(self.source)

    @property
    def nbytes(self) -> int:
        """Memory the pool holds."""
        arrays = (self._full_counts, self._counts, self._starts, self._index, self._value, self._label)
        return sum(array.nbytes for array in arrays)

    @property
    def description(self) -> str:
        return (f"a pool of {self.size} events ({self.nbytes / 1e6:.0f} MB, made in {self.build_seconds:.1f} s "
                f"by {self.processes} process{'es' if self.processes > 1 else ''})")

    def _slots(self, entries: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
        entries = np.asarray(entries, dtype=np.int64).reshape(-1)
        if entries.size and (entries.min() < 0 or entries.max() >= len(self)):
            bad = entries[(entries < 0) | (entries >= len(self))][0]
            raise IndexError(f"entry {bad} out of range for {len(self)} events")
        return entries, entries % self.size

    def read(self, entry: int) -> Event:
        _, slot = self._slots([entry])
        return self.source.read(int(slot[0]))

    def batch(self, entries: Sequence[int], max_voxels: int = 0) -> VoxelBatch:
        """The batch of `entries`: the same arrays as `load_batch` makes from the source's events."""
        entries, slots = self._slots(entries)
        if max_voxels > 0:
            for event, plane in zip(*np.nonzero(self._full_counts[slots] > max_voxels)):
                check_voxel_count(self.source, int(entries[event]), int(plane),
                                  int(self._full_counts[slots[event], plane]), max_voxels)
        rows = [slice(self._starts[slot], self._starts[slot + 1]) for slot in slots]
        counts = self._counts[slots]
        index, value, label = (np.concatenate([np.empty(0, column.dtype)] + [column[r] for r in rows])
                               for column in (self._index, self._value, self._label))
        return VoxelBatch(
            batch_size=entries.size,
            image_shape=self.image_shape,
            event=np.repeat(np.arange(entries.size, dtype=np.int32), counts.sum(axis=1)),
            plane=np.repeat(np.tile(np.arange(N_PLANES, dtype=np.int8), entries.size), counts.reshape(-1)),
            index=index,
            value=value,
            label=label,
            entries=entries,
        )
