"""Which entries each rank reads at each step, computed without state.

Upstream samples contiguous random blocks with replacement and never uses
the last entries; here training runs true epochs. Every rank computes the
same order from (seed, epoch), so resuming at any step is exact and ranks
need not communicate.
"""
from __future__ import annotations

import numpy as np

from benchmark.errors import DataError


def _check_ranks(batch_size: int, rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    if batch_size < 1 or batch_size % world_size:
        raise ValueError(
            f"the global batch size {batch_size} must be a positive multiple of "
            f"the number of ranks {world_size}"
        )


class EpochSampler:
    """Training batches: every epoch is a permutation of all entries.

    The permutation of epoch e comes from `np.random.default_rng([seed, e])`
    (`shuffle=False`: 0..n-1 in order). Each global batch of `batch_size`
    consecutive entries of the permutation is split into equal contiguous
    slices, rank r taking the r-th. Batches never cross an epoch boundary:
    the last `n_events % batch_size` entries of each epoch's order are
    dropped (a different set each shuffled epoch).
    """

    def __init__(self, n_events: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        _check_ranks(batch_size, rank, world_size)
        if n_events < batch_size:
            raise DataError(f"{n_events} events are fewer than one global batch of {batch_size}: "
                            "use a smaller minibatch size or more events")
        self.n_events = n_events
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.local_batch_size = batch_size // world_size
        self._cached = (-1, np.empty(0, np.int64))  # (epoch, order): steps mostly stay in an epoch

    @property
    def batches_per_epoch(self) -> int:
        return self.n_events // self.batch_size

    def epoch_of(self, step: int) -> int:
        return step // self.batches_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """All entries in the order epoch `epoch` visits them."""
        if not self.shuffle:
            return np.arange(self.n_events, dtype=np.int64)
        epoch_cached, order = self._cached  # one read: safe if another thread replaces it
        if epoch_cached != epoch:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_events)
            self._cached = (epoch, order)
        return order

    def batch(self, step: int) -> np.ndarray:
        """This rank's entries (int64) for global step `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        epoch, within = divmod(step, self.batches_per_epoch)
        start = within * self.batch_size + self.rank * self.local_batch_size
        return self.order(epoch)[start:start + self.local_batch_size].copy()


class SequentialSampler:
    """Evaluation batches: every event exactly once, in order.

    Global batch i holds entries [i * batch_size, (i + 1) * batch_size), the
    last one possibly fewer. Each is split across ranks in contiguous shares
    as even as possible (`np.array_split`); a rank's share of the last batch
    may be empty when it holds fewer events than there are ranks.
    """

    def __init__(self, n_events: int, batch_size: int, rank: int = 0, world_size: int = 1):
        _check_ranks(batch_size, rank, world_size)
        self.n_events = n_events
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return -(-self.n_events // self.batch_size)

    def batch(self, i: int) -> np.ndarray:
        """This rank's entries (int64, possibly empty) of global batch i."""
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} out of range for {len(self)} batches")
        entries = np.arange(i * self.batch_size, min((i + 1) * self.batch_size, self.n_events))
        return np.array_split(entries, self.world_size)[self.rank]
