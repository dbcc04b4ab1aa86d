"""Images per second: per step, and over the steady state of a run.

The steady state leaves out the first two iterations (compilation, caches,
allocator warm-up: the original's figure of merit does the same). Validation
and checkpoint time are never inside a timed window, unlike upstream's. The
training loop times windows of steps that end where the host has to wait for
the device anyway (a metric line, a validation, a checkpoint, an epoch's end),
so no step waits for the device only to be timed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List

SKIPPED_ITERATIONS = 2


@dataclass
class Throughput:
    """Timed windows: each `iterations` steps that ran `images` in `seconds` (a window ends where the host
    waited for the device, so its time is the device's; the first SKIPPED_ITERATIONS should be windows of one)."""

    images: List[int] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)
    iterations: List[int] = field(default_factory=list)

    def add(self, images: int, seconds: float, iterations: int = 1) -> float:
        """Record one window; returns its images/s."""
        self.images.append(images)
        self.seconds.append(seconds)
        self.iterations.append(iterations)
        return images / seconds if seconds > 0 else float("inf")

    def window(self, last: int) -> float:
        """Images/s over the windows that hold the last `last` iterations (for log lines)."""
        return self._rate(len(self.seconds) - _windows_holding(reversed(self.iterations), last))

    def _skipped_windows(self) -> int:
        """Windows that hold the warm-up iterations (none when nothing would be left)."""
        count = _windows_holding(self.iterations, SKIPPED_ITERATIONS)
        return count if count < len(self.iterations) else 0

    @property
    def steady_iterations(self) -> int:
        skip = self._skipped_windows()
        return sum(self.iterations[skip:]) if skip else 0

    def steady_state(self) -> float:
        """Images/s excluding the first two iterations; all of them if there are no more."""
        return self._rate(self._skipped_windows())

    def _rate(self, start: int) -> float:
        seconds = sum(self.seconds[start:])
        return sum(self.images[start:]) / seconds if seconds > 0 else 0.0

    def report(self, what: str = "images/s") -> str:
        total = sum(self.seconds)
        if self.steady_iterations == 0:
            return (f"throughput: {self.steady_state():.3f} {what} over all {sum(self.iterations)} iterations "
                    f"(too few to skip warm-up; {total:.2f} s)")
        return (
            f"throughput: {self.steady_state():.3f} {what} over {self.steady_iterations} iterations "
            f"(first {SKIPPED_ITERATIONS} left out; {total:.2f} s in all timed iterations)"
        )


def _windows_holding(iterations: Iterable[int], wanted: int) -> int:
    """How many windows, taken in order from `iterations` (each window's count), hold `wanted` iterations."""
    count = covered = 0
    for size in iterations:
        if covered >= wanted:
            break
        count, covered = count + 1, covered + size
    return count
