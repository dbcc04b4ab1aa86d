"""Statistics of events: what the `stats` and `compare` commands print and the
generator's tests check against the real sample.

Everything returned is plain Python (dict, list, int, float, None), so it
can be written as JSON. Charges are in the file's units (ADC-like, zero
suppressed at 5.0). Per event the percentiles are exact (`np.percentile`);
over many events (`summarize`) they come from a histogram of the pooled
charges in log bins 0.23 % wide, so that any number of events is summarised
in constant memory: with thousands of voxels they agree with the exact ones
to ~0.25 %.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from benchmark.data.source import Event

CLASSES = ("background", "cosmic", "neutrino")
PERCENTILES = (5, 25, 50, 75, 95, 99)
# SBND: planes 0 and 1 are the +-60 degree induction planes, 2 the collection plane.
PLANE_TYPES = {"induction": (0, 1), "collection": (2,)}

_BINS_PER_DECADE = 1000
_LOG_RANGE = (-2.0, 6.0)  # charges 0.01 to 1e6; values outside land in the edge bins
_N_BINS = int((_LOG_RANGE[1] - _LOG_RANGE[0]) * _BINS_PER_DECADE)


def event_stats(event: Event) -> dict:
    """Per plane: voxel count, label counts and charge percentiles (exact)."""
    return {"planes": [_plane_stats(v, l) for v, l in zip(event.value, event.label)]}


def _plane_stats(value: np.ndarray, label: np.ndarray) -> dict:
    counts = np.bincount(label, minlength=len(CLASSES))
    if value.size:
        charge = dict(zip(_percentile_keys(), np.percentile(value, PERCENTILES).tolist()))
        charge["max"] = float(value.max())
    else:
        charge = {key: None for key in (*_percentile_keys(), "max")}
    return {
        "voxels": int(value.size),
        "labels": {name: int(c) for name, c in zip(CLASSES, counts)},
        "charge": charge,
    }


def summarize(events: Iterable[Event]) -> dict:
    """Pooled statistics of many events, per plane type and over all planes.

    Per plane type: the distribution of voxels per plane (min, median, max),
    the class shares among its charged voxels and its charge percentiles.
    `class_share` at the top pools all planes.
    """
    accumulators = {name: _Pool() for name in PLANE_TYPES}
    n_events = 0
    for event in events:
        n_events += 1
        for name, planes in PLANE_TYPES.items():
            for p in planes:
                accumulators[name].add(event.value[p], event.label[p])
    summary = {"events": n_events, "class_share": _shares(sum(a.labels for a in accumulators.values()))}
    for name, pool in accumulators.items():
        summary[name] = pool.summary()
    return summary


class _Pool:
    """Running voxel counts, label counts and a charge histogram of some planes."""

    def __init__(self):
        self.histogram = np.zeros(_N_BINS, np.int64)
        self.labels = np.zeros(len(CLASSES), np.int64)
        self.voxels: List[int] = []
        self.max: Optional[float] = None

    def add(self, value: np.ndarray, label: np.ndarray) -> None:
        self.voxels.append(int(value.size))
        self.labels += np.bincount(label, minlength=len(CLASSES))[: len(CLASSES)]
        if value.size:
            self.histogram += np.bincount(_bin(value), minlength=_N_BINS)
            top = float(value.max())
            self.max = top if self.max is None else max(self.max, top)

    def summary(self) -> dict:
        voxels = {"min": None, "median": None, "max": None}
        if self.voxels:
            voxels = {
                "min": int(min(self.voxels)),
                "median": float(np.median(self.voxels)),
                "max": int(max(self.voxels)),
            }
        charge = dict(zip(_percentile_keys(), _histogram_percentiles(self.histogram)))
        charge["max"] = self.max
        return {"planes": len(self.voxels), "voxels": voxels, "class_share": _shares(self.labels), "charge": charge}


def _bin(value: np.ndarray) -> np.ndarray:
    log = np.log10(np.maximum(value, 10.0 ** _LOG_RANGE[0]))
    return np.clip(((log - _LOG_RANGE[0]) * _BINS_PER_DECADE).astype(np.int64), 0, _N_BINS - 1)


def _histogram_percentiles(histogram: np.ndarray) -> List[Optional[float]]:
    """Percentiles from bin counts, interpolating log-linearly inside a bin."""
    total = int(histogram.sum())
    if total == 0:
        return [None] * len(PERCENTILES)
    cumulative = np.cumsum(histogram)
    out = []
    for q in PERCENTILES:
        rank = q / 100.0 * total
        b = int(np.searchsorted(cumulative, rank, side="left"))
        below = cumulative[b] - histogram[b]
        inside = (rank - below) / histogram[b]
        out.append(float(10.0 ** (_LOG_RANGE[0] + (b + inside) / _BINS_PER_DECADE)))
    return out


def _shares(labels: np.ndarray) -> Dict[str, Optional[float]]:
    total = int(labels.sum())
    return {name: (int(c) / total if total else None) for name, c in zip(CLASSES, labels)}


def _percentile_keys() -> Tuple[str, ...]:
    return tuple(f"p{q}" for q in PERCENTILES)


def compare(summary_a: dict, summary_b: dict) -> List[Tuple[str, object, object, Optional[float]]]:
    """Rows (quantity, a, b, b / a) over the numbers of two summaries, in the
    order of `summary_a` then any quantity only `summary_b` has; the ratio
    is None where either side is missing or a is 0."""
    flat_a, flat_b = _flatten(summary_a), _flatten(summary_b)
    rows = []
    for key in list(flat_a) + [k for k in flat_b if k not in flat_a]:
        a, b = flat_a.get(key), flat_b.get(key)
        ratio = b / a if b is not None and a not in (None, 0) else None
        rows.append((key, a, b, ratio))
    return rows


def _flatten(tree: dict, prefix: str = "") -> Dict[str, Optional[float]]:
    """Dotted paths to the numeric leaves of a summary (None where a quantity had no data)."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        elif value is None or isinstance(value, (int, float)):
            flat[path] = value
    return flat
