"""Images per second: per step, and over the steady state of a run.

The steady state leaves out the first two iterations (compilation, caches,
allocator warm-up: the original's figure of merit does the same). Validation
and checkpoint time are never inside a step's timer, unlike upstream's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

SKIPPED_ITERATIONS = 2


@dataclass
class Throughput:
    images: List[int] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)

    def add(self, images: int, seconds: float) -> float:
        """Record one iteration; returns its images/s."""
        self.images.append(images)
        self.seconds.append(seconds)
        return images / seconds if seconds > 0 else float("inf")

    def window(self, last: int) -> float:
        """Images/s over the last `last` iterations (for log lines)."""
        seconds = sum(self.seconds[-last:])
        return sum(self.images[-last:]) / seconds if seconds > 0 else float("inf")

    @property
    def steady_iterations(self) -> int:
        return max(len(self.seconds) - SKIPPED_ITERATIONS, 0)

    def steady_state(self) -> float:
        """Images/s excluding the first two iterations; all of them if there are no more."""
        skip = SKIPPED_ITERATIONS if len(self.seconds) > SKIPPED_ITERATIONS else 0
        seconds = sum(self.seconds[skip:])
        return sum(self.images[skip:]) / seconds if seconds > 0 else 0.0

    def report(self, what: str = "images/s") -> str:
        total = sum(self.seconds)
        if self.steady_iterations == 0:
            return f"throughput: {self.steady_state():.3f} {what} over all {len(self.seconds)} iterations (too few to skip warm-up; {total:.2f} s)"
        return (
            f"throughput: {self.steady_state():.3f} {what} over {self.steady_iterations} iterations "
            f"(first {SKIPPED_ITERATIONS} left out; {total:.2f} s in all timed iterations)"
        )
