"""Batches from an event source, prepared ahead in background threads.

Daemon worker threads build the next `prefetch` steps while the caller
trains on the current one; numpy releases the GIL in the heavy work, so they
overlap with the caller (and, partly, with each other). Steps are requested
by number, so any order works: a step that was not prefetched is built
synchronously and prefetching restarts after it.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Dict, Optional, Protocol, Sequence, Tuple

import numpy as np

from benchmark.data.batch import N_PLANES, VoxelBatch
from benchmark.data.downsample import downsample_plane, downsampled_shape
from benchmark.data.source import EventSource


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


_COLUMNS = {"event": np.int32, "plane": np.int32, "index": np.int64,
            "value": np.float32, "label": np.uint8}


def load_batch(source: EventSource, entries: Sequence[int], downsample: int) -> VoxelBatch:
    """Read `entries`, downsample each plane by 2^downsample and concatenate."""
    parts = []
    for event_number, entry in enumerate(entries):
        event = source.read(int(entry))
        for plane in range(N_PLANES):
            index, value, label = downsample_plane(
                event.index[plane], event.value[plane], event.label[plane],
                source.full_shape, downsample,
            )
            n = index.shape[0]
            parts.append((np.full(n, event_number, np.int32), np.full(n, plane, np.int32),
                          index, value, label))
    # The leading empty arrays fix the dtypes, also for an empty share of entries.
    columns = {
        name: np.concatenate([np.empty(0, dtype)] + [part[k] for part in parts])
        .astype(dtype, copy=False)
        for k, (name, dtype) in enumerate(_COLUMNS.items())
    }
    return VoxelBatch(
        batch_size=len(entries),
        image_shape=downsampled_shape(source.full_shape, downsample),
        entries=np.asarray(entries, dtype=np.int64),
        **columns,
    )


class Loader:
    """`get(step)` returns the batch of `sampler.batch(step)`, prefetched.

    With `dense=True` the result is a `DenseVoxelBatch`, whose `dense()` was
    computed in the background. `workers` threads build steps concurrently
    (useful with prefetch >= workers on a host with spare cores). A worker's
    exception is re-raised by the `get` of its step. `get` must be called
    from one thread. Close the loader (or use it as a context manager) to
    stop the workers.
    """

    def __init__(self, source: EventSource, sampler: Sampler, downsample: int,
                 prefetch: int = 2, dense: bool = False, workers: int = 1):
        if prefetch < 0 or workers < 1:
            raise ValueError(f"need prefetch >= 0 and workers >= 1, got {prefetch} and {workers}")
        downsampled_shape(source.full_shape, downsample)  # fail here, not in the worker
        self.source = source
        self.sampler = sampler
        self.downsample = downsample
        self.prefetch = prefetch
        self.dense = dense
        self._pending: Dict[int, Future] = {}  # touched by the caller's thread only
        self._requests: "queue.Queue[Optional[Tuple[int, Future]]]" = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name="data-loader", daemon=True)
                         for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def build(self, step: int) -> VoxelBatch:
        """The batch of `step`, built in the calling thread."""
        batch = load_batch(self.source, self.sampler.batch(step), self.downsample)
        if not self.dense:
            return batch
        image, label = batch.dense()
        return DenseVoxelBatch(**vars(batch), dense_image=image, dense_label=label)

    def get(self, step: int) -> VoxelBatch:
        if not self._threads:
            raise RuntimeError("the loader is closed")
        future = self._pending.pop(step, None)
        try:
            if future is None:
                self._cancel_pending()  # an unexpected step: the predicted ones are stale
                return self.build(step)
            return future.result()
        finally:
            self._request(range(step + 1, step + 1 + self.prefetch))

    def close(self) -> None:
        """Stop the workers after the steps they are building; idempotent."""
        self._cancel_pending()
        for _ in self._threads:
            self._requests.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _request(self, steps: range) -> None:
        """Have exactly `steps` pending, queued in order."""
        for step in [s for s in self._pending if s not in steps]:
            self._pending.pop(step).cancel()
        for step in steps:
            if step not in self._pending:
                self._pending[step] = Future()
                self._requests.put((step, self._pending[step]))

    def _cancel_pending(self) -> None:
        for future in self._pending.values():
            future.cancel()  # the worker skips cancelled requests
        self._pending.clear()

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            step, future = request
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self.build(step))
            except BaseException as error:  # handed to the caller by get()
                future.set_exception(error)
