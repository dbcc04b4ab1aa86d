"""Batches from an event source, prepared ahead in background threads.

Daemon worker threads build the next `prefetch` steps while the caller
trains on the current one; numpy releases the GIL in the heavy work, so they
overlap with the caller (and, partly, with each other). Steps are requested
by number, so any order works: a step that was not prefetched is built
synchronously and prefetching restarts after it.
"""
from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Dict, Optional, Protocol, Sequence, Tuple

import numpy as np

from benchmark.data.batch import N_PLANES, VoxelBatch
from benchmark.data.downsample import downsample_plane, downsampled_shape
from benchmark.data.source import EventSource, PreparedSource, check_voxel_count


class Sampler(Protocol):
    def batch(self, step: int) -> np.ndarray: ...


@dataclass
class DenseVoxelBatch(VoxelBatch):
    """A VoxelBatch whose dense arrays were made in the background.

    `dense()` returns them without work: the same arrays on every call, so
    consumers must not modify them in place.
    """

    dense_image: np.ndarray  # float32 [B, 3, H, W]
    dense_label: np.ndarray  # uint8 [B, 3, H, W]

    def dense(self) -> Tuple[np.ndarray, np.ndarray]:
        return self.dense_image, self.dense_label


_COLUMNS = {"event": np.int32, "plane": np.int8, "index": np.int32,
            "value": np.float32, "label": np.uint8}


class StageTimes:
    """Seconds spent per stage of batch preparation, summed over batches (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: Dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def serves_prepared(source: EventSource, downsample: int) -> bool:
    """Whether `source` holds its events at this downsampling already (a pool), so a batch is a gather."""
    return isinstance(source, PreparedSource) and source.downsample == downsample


def load_batch(source: EventSource, entries: Sequence[int], downsample: int,
               max_voxels: int = 0, times: Optional[StageTimes] = None) -> VoxelBatch:
    """Read `entries`, downsample each plane by 2^downsample and concatenate
    (a prepared source at this downsampling gathers them instead).

    `max_voxels` > 0 refuses a plane with more charged voxels (at full
    resolution) than that, rather than truncating it as upstream's buffers did.
    """
    if serves_prepared(source, downsample):
        begin = time.perf_counter()
        batch = source.batch(entries, max_voxels)
        if times is not None:
            times.add("gather from pool", time.perf_counter() - begin)
        return batch
    parts = []
    read_time = downsample_time = 0.0
    for event_number, entry in enumerate(entries):
        begin = time.perf_counter()
        event = source.read(int(entry))
        read_time += time.perf_counter() - begin
        begin = time.perf_counter()
        for plane in range(N_PLANES):
            check_voxel_count(source, entry, plane, event.index[plane].shape[0], max_voxels)
            index, value, label = downsample_plane(
                event.index[plane], event.value[plane], event.label[plane],
                source.full_shape, downsample,
            )
            n = index.shape[0]
            parts.append((np.full(n, event_number, np.int32), np.full(n, plane, np.int8),
                          index, value, label))
        downsample_time += time.perf_counter() - begin
    begin = time.perf_counter()
    # The leading empty arrays fix the dtypes, also for an empty share of entries.
    columns = {
        name: np.concatenate([np.empty(0, dtype)] + [part[k] for part in parts])
        .astype(dtype, copy=False)
        for k, (name, dtype) in enumerate(_COLUMNS.items())
    }
    batch = VoxelBatch(
        batch_size=len(entries),
        image_shape=downsampled_shape(source.full_shape, downsample),
        entries=np.asarray(entries, dtype=np.int64),
        **columns,
    )
    if times is not None:
        times.add("read and decode", read_time)
        times.add("downsample", downsample_time)
        times.add("assemble", time.perf_counter() - begin)
    return batch


def prepare(source: EventSource, entries: Sequence[int], downsample: int, max_voxels: int,
            dense: bool) -> Tuple[VoxelBatch, Dict[str, float]]:
    """One batch and the seconds its stages took; runs in a worker thread or process."""
    times = StageTimes()
    batch = load_batch(source, entries, downsample, max_voxels, times)
    if dense:
        begin = time.perf_counter()
        image, label = batch.dense()
        times.add("densify", time.perf_counter() - begin)
        batch = DenseVoxelBatch(**vars(batch), dense_image=image, dense_label=label)
    return batch, times.seconds


_PROCESS_STATE: Dict[str, object] = {}


def _init_process(source: EventSource, downsample: int, max_voxels: int, dense: bool) -> None:
    _PROCESS_STATE.update(source=source, downsample=downsample, max_voxels=max_voxels, dense=dense)


def _prepare_in_process(entries: np.ndarray) -> Tuple[VoxelBatch, Dict[str, float]]:
    state = _PROCESS_STATE
    return prepare(state["source"], entries, state["downsample"], state["max_voxels"], state["dense"])


class Loader:
    """`get(step)` returns the batch of `sampler.batch(step)`, prefetched.

    Batches are prepared ahead, `prefetch` steps deep, by `workers` daemon
    threads of this process (numpy releases the GIL in the heavy work), or,
    with `processes=True`, by `workers` processes, which also parallelise HDF5
    reading (h5py serialises it across threads) but pay for pickling. Sources are pickled to
    the processes (a larcv3 file re-opens there). A prepared source at this
    downsampling (a pool of synthetic events) is gathered from by threads,
    whatever `processes` says. With `dense=True` the
    result is a `DenseVoxelBatch`, whose `dense()` was computed in the
    background. A worker's exception is re-raised by the `get` of its step.
    `get` must be called from one thread. `times` sums the seconds of each
    preparation stage. Close the loader (or use it as a context manager).
    """

    def __init__(self, source: EventSource, sampler: Sampler, downsample: int,
                 prefetch: int = 2, dense: bool = False, workers: int = 1, processes: bool = False,
                 max_voxels: int = 0):
        if prefetch < 0 or workers < 1:
            raise ValueError(f"need prefetch >= 0 and workers >= 1, got {prefetch} and {workers}")
        downsampled_shape(source.full_shape, downsample)  # fail here, not in the worker
        prepared = serves_prepared(source, downsample)
        # From a pool a batch is a gather, cheaper than pickling it back from a process; and each process
        # would hold a copy of the pool.
        processes = processes and not prepared
        self.source = source
        self.sampler = sampler
        self.downsample = downsample
        self.prefetch = prefetch
        self.dense = dense
        self.max_voxels = max_voxels
        self.description = f"{workers} worker {'processes' if processes else 'threads'}"  # for reports
        if prepared:
            self.description += f" gathering from {source.description}"
        self.times = StageTimes()
        self._pending: Dict[int, Future] = {}  # touched by the caller's thread only
        self._executor = None
        self._requests: "queue.Queue[Optional[Tuple[Sequence[int], Future]]]" = queue.Queue()
        self._threads = []
        if processes:
            self._executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_process, initargs=(source, downsample, max_voxels, dense),
            )
        else:
            self._threads = [threading.Thread(target=self._work, name="data-loader", daemon=True)
                             for _ in range(workers)]
            for thread in self._threads:
                thread.start()
        self._open = True

    def build(self, step: int) -> VoxelBatch:
        """The batch of `step`, built in the calling thread."""
        return self._collect(prepare(self.source, self.sampler.batch(step), self.downsample,
                                     self.max_voxels, self.dense))

    def get(self, step: int) -> VoxelBatch:
        if not self._open:
            raise RuntimeError("the loader is closed")
        future = self._pending.pop(step, None)
        try:
            if future is None:
                self._cancel_pending()  # an unexpected step: the predicted ones are stale
                return self.build(step)
            return self._collect(future.result())
        finally:
            self._request(range(step + 1, step + 1 + self.prefetch))

    def close(self) -> None:
        """Stop the workers after the steps they are building; idempotent."""
        if not self._open:
            return
        self._open = False
        self._cancel_pending()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for _ in self._threads:
            self._requests.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _collect(self, prepared: Tuple[VoxelBatch, Dict[str, float]]) -> VoxelBatch:
        batch, seconds = prepared
        for stage, value in seconds.items():
            self.times.add(stage, value)
        return batch

    def _submit(self, step: int) -> Future:
        entries = self.sampler.batch(step)
        if self._executor is not None:
            return self._executor.submit(_prepare_in_process, entries)
        future: Future = Future()
        self._requests.put((entries, future))
        return future

    def _request(self, steps: range) -> None:
        """Have exactly `steps` pending, submitted in order."""
        for step in [s for s in self._pending if s not in steps]:
            self._pending.pop(step).cancel()
        for step in steps:
            if step not in self._pending:
                try:
                    self._pending[step] = self._submit(step)
                except (IndexError, ValueError):
                    break  # past the end of a finite sampler: nothing to prefetch

    def _cancel_pending(self) -> None:
        for future in self._pending.values():
            future.cancel()  # a worker skips cancelled requests
        self._pending.clear()

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            entries, future = request
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(prepare(self.source, entries, self.downsample, self.max_voxels, self.dense))
            except BaseException as error:  # handed to the caller by get()
                future.set_exception(error)
