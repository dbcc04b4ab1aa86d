"""The numbers of a convergence report: where a curve meets a target, spread statistics, the knee of a curve."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from benchmark.convergence.records import Evaluation
from benchmark.results import olympic_mean
from benchmark.rules import Target


def first_reaching(evaluations: Sequence[Evaluation], target: Target) -> Optional[int]:
    """Index of the first evaluation at which all three of the target's metrics hold (as the harness stops)."""
    for index, evaluation in enumerate(evaluations):
        if target.reached({"Average/Cosmic_IoU": evaluation.cosmic_iou,
                           "Average/Neutrino_IoU": evaluation.neutrino_iou,
                           "Average/Non_Bkg_Accuracy": evaluation.non_bkg_accuracy}):
            return index
    return None


@dataclass(frozen=True)
class Spread:
    """Statistics of the runs that reached the target. stdev is the sample standard deviation (n - 1)."""

    n: int
    mean: float
    stdev: Optional[float]  # None below 2 runs
    cv: Optional[float]  # stdev / mean
    olympic: Optional[float]  # mean without the fastest and the slowest; None below 3 runs
    median: float
    low: float
    high: float


def spread(values: Sequence[float]) -> Optional[Spread]:
    if not values:
        return None
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if len(values) > 1 else None
    return Spread(n=len(values), mean=mean, stdev=stdev, cv=stdev / mean if stdev is not None and mean else None,
                  olympic=olympic_mean(values) if len(values) > 2 else None, median=statistics.median(values),
                  low=min(values), high=max(values))


def mean_curve(curves: Sequence[Sequence[Tuple[float, float]]]) -> List[Tuple[float, float, int]]:
    """(epoch, mean value, runs) at every epoch some run evaluated, over the runs that evaluated there.

    Benchmark runs stop at their target, so late points average the slower runs only; explore runs all
    evaluate at the same epochs."""
    values: Dict[float, List[float]] = {}
    for curve in curves:
        for epoch, value in curve:
            values.setdefault(round(epoch, 9), []).append(value)
    return [(epoch, statistics.fmean(found), len(found)) for epoch, found in sorted(values.items())]


def knee(xs: Sequence[float], ys: Sequence[float]) -> Optional[int]:
    """Index of the knee of a rising curve: the point farthest above the chord from its first to its last point,
    with both axes scaled so that the chord runs from (0, 0) to (1, 1) (Kneedle, Satopaa et al. 2011, without
    smoothing: the largest scaled y - x). None for fewer than 3 points, a curve that ends no higher than it
    starts, or one that never rises above its chord."""
    if len(xs) < 3 or xs[-1] <= xs[0] or ys[-1] <= ys[0]:
        return None
    x0, xspan = xs[0], xs[-1] - xs[0]
    y0, yspan = ys[0], ys[-1] - ys[0]
    gaps = [(y - y0) / yspan - (x - x0) / xspan for x, y in zip(xs, ys)]
    best = max(range(len(gaps)), key=gaps.__getitem__)
    return best if gaps[best] > 0 else None
