"""Segmentation metrics: the one definition, shared by every framework.

A framework implementation computes only, per event and plane, a 3x3
confusion matrix of pixel counts over ALL pixels of the plane (empty pixels
are true background): rows are the true label, columns the predicted label
(argmax of the logits). Everything below turns those counts into metrics, in
numpy, so that frameworks cannot disagree on a definition.

Per event and plane, with `cm` its confusion matrix:

* `Total_Accuracy`   = trace(cm) / sum(cm)
* `Non_Bkg_Accuracy` = (cm[1,1] + cm[2,2]) / (true cosmic + true neutrino)
* `Cosmic_IoU`       = cm[1,1] / (row 1 + column 1 - cm[1,1])
* `Neutrino_IoU`     = cm[2,2] / (row 2 + column 2 - cm[2,2])
* `mIoU`             = mean of the two IoUs

Convention, so that no metric is ever NaN: a metric whose denominator is
empty for an event-plane (no true non-background pixel; no true and no
predicted pixel of a class; a plane without pixels) is 1.0 for that
event-plane, since there is nothing to get wrong. For the IoUs this is the
original CosmicTagger's convention; for `Non_Bkg_Accuracy` the original gave
NaN (master) or 0 (v2.1).

Aggregation over a set of events is the mean over events of the per-event
values, per plane (the original's per-image mean, not a pooled dataset IoU);
`Average/X` is the mean of `plane0/X`, `plane1/X` and `plane2/X`.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

from benchmark.data.batch import COSMIC, N_CLASSES, N_PLANES, NEUTRINO

METRIC_NAMES = ("Total_Accuracy", "Non_Bkg_Accuracy", "Cosmic_IoU", "Neutrino_IoU", "mIoU")

CONFUSION_TAIL = (N_PLANES, N_CLASSES, N_CLASSES)


def _check_confusion(confusion) -> np.ndarray:
    confusion = np.asarray(confusion)
    if confusion.ndim != 4 or confusion.shape[1:] != CONFUSION_TAIL:
        raise ValueError(f"confusion must have shape [N, {N_PLANES}, {N_CLASSES}, {N_CLASSES}], got {confusion.shape}")
    return confusion.astype(np.int64, copy=False)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, and 1.0 where the denominator is 0."""
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, 1.0)


def _iou(confusion: np.ndarray, cls: int) -> np.ndarray:
    hits = confusion[..., cls, cls]
    union = confusion[..., cls, :].sum(-1) + confusion[..., :, cls].sum(-1) - hits
    return _ratio(hits, union)


def per_event(confusion) -> Dict[str, np.ndarray]:
    """Metric name -> float64 array [N_events, 3 planes], from int counts [N, 3, 3, 3]."""
    cm = _check_confusion(confusion)
    diagonal = np.diagonal(cm, axis1=-2, axis2=-1)  # [N, 3 planes, 3 classes]
    true_counts = cm.sum(-1)
    cosmic_iou = _iou(cm, COSMIC)
    neutrino_iou = _iou(cm, NEUTRINO)
    return {
        "Total_Accuracy": _ratio(diagonal.sum(-1), cm.sum((-2, -1))),
        "Non_Bkg_Accuracy": _ratio(diagonal[..., COSMIC] + diagonal[..., NEUTRINO],
                                   true_counts[..., COSMIC] + true_counts[..., NEUTRINO]),
        "Cosmic_IoU": cosmic_iou,
        "Neutrino_IoU": neutrino_iou,
        "mIoU": 0.5 * (cosmic_iou + neutrino_iou),
    }


def summarize_per_event(values: Dict[str, np.ndarray]) -> Dict[str, float]:
    """`plane{p}/X` and `Average/X` keys from per-event values (mean over events)."""
    summary: Dict[str, float] = {}
    for name in METRIC_NAMES:
        if values[name].shape[0] == 0:
            raise ValueError("no events to summarize")
        per_plane = values[name].mean(axis=0)
        for plane in range(N_PLANES):
            summary[f"plane{plane}/{name}"] = float(per_plane[plane])
        summary[f"Average/{name}"] = float(per_plane.mean())
    return summary


def summarize(confusion) -> Dict[str, float]:
    """All `plane{p}/X` and `Average/X` metrics of the events in `confusion` [N, 3, 3, 3]."""
    return summarize_per_event(per_event(confusion))


def confusion_from_arrays(pred, label) -> np.ndarray:
    """Reference confusion matrices int64 [B, 3, 3, 3] from int arrays [B, 3, H, W].

    Entry [b, p, t, q] counts the pixels of event b, plane p with true label t
    predicted as q. Used by tests and by code without a framework.
    """
    pred = np.asarray(pred).astype(np.int64)
    label = np.asarray(label).astype(np.int64)
    if pred.shape != label.shape or pred.ndim != 4 or pred.shape[1] != N_PLANES:
        raise ValueError(f"pred and label must both have shape [B, {N_PLANES}, H, W], got {pred.shape} and {label.shape}")
    for name, array in (("pred", pred), ("label", label)):
        if array.size and (array.min() < 0 or array.max() >= N_CLASSES):
            raise ValueError(f"{name} values must lie in [0, {N_CLASSES})")
    n_event_planes = pred.shape[0] * N_PLANES
    cells = N_CLASSES * N_CLASSES
    # One bincount for all event-planes: offset each event-plane by its own block of 9 cells.
    cell = (label * N_CLASSES + pred).reshape(n_event_planes, -1)
    offset = np.arange(n_event_planes, dtype=np.int64)[:, None] * cells
    counts = np.bincount((cell + offset).ravel(), minlength=n_event_planes * cells)
    return counts.reshape(pred.shape[0], *CONFUSION_TAIL)


class MetricAccumulator:
    """Collects confusion matrices batch by batch (validation, inference).

    Only counts are kept; metrics are computed on demand, so the summary of
    many batches is exactly the summary of all their events together (the
    mean over events, not a mean of per-batch means with unequal batches).
    """

    def __init__(self) -> None:
        self._batches: List[np.ndarray] = []

    def add(self, confusion) -> None:
        """Add the confusion matrices [B, 3, 3, 3] of one batch (host arrays)."""
        self._batches.append(_check_confusion(confusion).copy())

    @property
    def count(self) -> int:
        """Number of events added so far."""
        return sum(batch.shape[0] for batch in self._batches)

    def confusion(self) -> np.ndarray:
        """All confusion matrices added so far, int64 [count, 3, 3, 3]."""
        if not self._batches:
            return np.zeros((0, *CONFUSION_TAIL), dtype=np.int64)
        return np.concatenate(self._batches)

    def per_event(self) -> Dict[str, np.ndarray]:
        return per_event(self.confusion())

    def summary(self) -> Dict[str, float]:
        return summarize(self.confusion())

    def reset(self) -> None:
        self._batches = []
