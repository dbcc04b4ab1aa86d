"""MLPerf's reference convergence point (RCP) rule, ported from `mlperf_logging.rcp_checker` (4.1.68).

Each reference point is one batch size's reference runs: their olympic mean
epochs to converge, the standard deviation of all of them (population, as
numpy's std), and the smallest submission mean that a one-sided pooled
two-sample t-test at alpha 0.05 does not call faster (reference n = runs - 2,
submission n = N - 2, N the runs of a submission). A submission passes when
its olympic mean epochs is at least that bound. Every step follows MLPerf's
code, including its bisection to 1e-4 epochs, so the bounds agree with
MLPerf's to the last digit, and its quirks: an interpolated point's bound
uses 2N reference runs; the pruned pass first drops the batch sizes below the
fastest-converging one, then every point slower than the interpolation of its
neighbours; a batch size below every point is held to the smallest one.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.stats

from benchmark.results import olympic_mean

ALPHA = 0.05
TOLERANCE = 1e-4  # MLPerf's bisection stops when the bound is known to this many epochs
PRUNED, FULL = "pruned_rcps", "full_rcps"  # MLPerf's --rcp_pass values; the package checker applies the pruned one


@dataclass(frozen=True)
class Point:
    """One batch size's reference convergence point (`runs` 0: interpolated between two)."""

    name: str
    batch_size: int
    mean: float  # olympic mean epochs to converge
    stdev: float  # of all reference runs
    min_epochs: float  # the smallest olympic mean a submission may have
    runs: int

    @property
    def max_speedup(self) -> float:
        return self.mean / self.min_epochs


def min_acceptable_mean(mean: float, stdev: float, reference_n: int, submission_n: int) -> float:
    """MLPerf's bound: bisect [0, mean] for the smallest mean the one-sided t-test does not reject."""
    if stdev == 0:
        return mean
    low, high = 0.0, mean
    middle = (low + high) / 2
    while high - low > TOLERANCE:
        # MLPerf's argument order (the test is symmetric in them with equal standard deviations).
        t_stat, p_value = scipy.stats.ttest_ind_from_stats(middle, stdev, reference_n, mean, stdev, submission_n,
                                                           equal_var=True)
        p_value = p_value / 2 if t_stat < 0 else 1 - p_value / 2  # two-sided to one-sided
        if p_value > ALPHA:
            high = middle
        else:
            low = middle
        middle = (low + high) / 2
    return middle


class References:
    """The reference points of one benchmark, for submissions of `submission_runs` runs."""

    def __init__(self, benchmark: str, epochs_by_name: Dict[str, Tuple[int, Sequence[float]]], submission_runs: int):
        """`epochs_by_name`: each point's name and (batch size, epochs to converge of every reference run)."""
        self.benchmark = benchmark
        self.submission_runs = submission_runs
        points = [self._point(name, batch_size, epochs) for name, (batch_size, epochs) in epochs_by_name.items()]
        self.full: List[Point] = sorted(points, key=lambda p: p.batch_size)
        self.pruned: List[Point] = self._prune()

    def _point(self, name: str, batch_size: int, epochs: Sequence[float]) -> Point:
        mean = olympic_mean(epochs)
        stdev = statistics.pstdev(epochs)
        bound = min_acceptable_mean(mean, stdev, len(epochs) - 2, self.submission_runs - 2)
        return Point(name, batch_size, mean, stdev, bound, len(epochs))

    def interpolate(self, batch_size: int, low: Point, high: Point) -> Point:
        mean = float(np.interp(batch_size, [low.batch_size, high.batch_size], [low.mean, high.mean]))
        stdev = float(np.interp(batch_size, [low.batch_size, high.batch_size], [low.stdev, high.stdev]))
        # MLPerf counts an interpolated point as 2N reference runs.
        bound = min_acceptable_mean(mean, stdev, 2 * self.submission_runs, self.submission_runs - 2)
        return Point(f"{self.benchmark}_interp_{batch_size}", batch_size, mean, stdev, bound, 0)

    def _prune(self) -> List[Point]:
        fastest = min(self.full, key=lambda p: p.mean)
        kept = [p for p in self.full if p.batch_size >= fastest.batch_size]
        i = 1
        while i < len(kept) - 1:
            if kept[i].mean > self.interpolate(kept[i].batch_size, kept[i - 1], kept[i + 1]).mean:
                del kept[i]
                i -= 1
            i += 1
        return kept

    def points(self, rcp_pass: str) -> List[Point]:
        return self.pruned if rcp_pass == PRUNED else self.full


@dataclass(frozen=True)
class Verdict:
    """MLPerf's answer for one submission, and the numbers behind it."""

    passed: bool
    reason: str
    point: Optional[Point] = None  # the point it was held to
    submission_mean: Optional[float] = None  # olympic mean epochs to converge
    norm_factor: float = 1.0  # RCP mean / submission mean when faster than the mean (its score is scaled by it)


def evaluate(references: References, batch_size: int, epochs: Sequence[float], rcp_pass: str = PRUNED) -> Verdict:
    """MLPerf's check_directory on a submission's epochs to converge (math.inf: a run that did not converge)."""
    missed = sum(math.isinf(e) for e in epochs)
    if missed > 1:
        return Verdict(False, f"insufficient convergence: {missed} of {len(epochs)} runs did not converge "
                              "(at most one may)")
    points = references.points(rcp_pass)
    exact = [p for p in points if p.batch_size == batch_size]
    below = [p for p in points if p.batch_size < batch_size]
    above = [p for p in points if p.batch_size > batch_size]
    if exact:
        return _held_to(exact[0], epochs, "RCP found")
    if below and above:
        point = references.interpolate(batch_size, below[-1], above[0])
        return _held_to(point, epochs, f"RCP interpolated between batch sizes {below[-1].batch_size} and "
                                       f"{above[0].batch_size}")
    if below:
        return Verdict(False, f"batch size {batch_size} is above every RCP (the largest is {below[-1].batch_size}): "
                              f"it needs a new RCP at batch size {batch_size}")
    verdict = _held_to(above[0], epochs, f"no RCP at batch size {batch_size}, held to the smallest "
                                         f"({above[0].batch_size}): it converges no faster")
    if verdict.passed:
        return verdict
    return Verdict(False, f"no RCP at batch size {batch_size}, and it converges faster than the smallest "
                          f"({above[0].batch_size}) allows: it needs a new RCP at batch size {batch_size}",
                   verdict.point, verdict.submission_mean, verdict.norm_factor)


def _held_to(point: Point, epochs: Sequence[float], how: str) -> Verdict:
    mean = olympic_mean(epochs)
    factor = max(1.0, point.mean / mean)
    # MLPerf compares with mean / max_speedup (not min_epochs itself): the same number up to rounding, kept as it is.
    passed = mean >= point.mean / point.max_speedup
    reason = how if passed else f"{how}, but the submission converges faster than it allows"
    return Verdict(passed, reason, point, mean, factor)
