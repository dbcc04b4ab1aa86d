"""Confusion matrices on the device: the only metric work a framework does.

The harness (`benchmark.metrics`) turns the counts into metrics. Everything
here stays on the logits' device without a host sync (no `torch.bincount`,
whose CUDA version reads the input's maximum back to the host), so the
counts can be fetched once, when the harness needs them.
"""
from __future__ import annotations

import torch

from benchmark.data.batch import N_CLASSES

# Copies of each histogram bin that neighbouring pixels spread over. A plain
# scatter_add of millions of pixels into 9 bins serialises on the atomics of
# those few addresses; with 256 copies it ran 4.5x (9 bins) to 24x (3 bins)
# faster on an H200 at 8 x 3 x 640 x 1024 pixels.
_BIN_COPIES = 256


def row_bincount(values: torch.Tensor, bins: int) -> torch.Tensor:
    """Histogram int64 [rows, bins] of each row of int64 `values` [rows, n] in [0, bins)."""
    rows, n = values.shape
    copy = torch.arange(n, device=values.device) % _BIN_COPIES
    spread = torch.zeros(rows, _BIN_COPIES * bins, dtype=torch.int64, device=values.device)
    spread.scatter_add_(1, copy * bins + values, torch.ones_like(values))
    return spread.view(rows, _BIN_COPIES, bins).sum(1)


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """Predicted class uint8 [B, 3, H, W] from logits [B, 3, 3, H, W] (argmax over classes)."""
    return logits.argmax(dim=2).to(torch.uint8)


def confusion(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Counts int64 [B, 3 planes, 3 true, 3 predicted] over all pixels of each event-plane.

    Labels must lie in [0, 3); they are not checked, as that would need a sync.
    """
    batch, planes = labels.shape[:2]
    rows = batch * planes
    cell = labels.long().reshape(rows, -1) * N_CLASSES + logits.argmax(dim=2).reshape(rows, -1)
    return row_bincount(cell, N_CLASSES * N_CLASSES).reshape(batch, planes, N_CLASSES, N_CLASSES)
