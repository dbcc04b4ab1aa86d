"""Downsampling of sparse planes by 2^d per axis, as larcv's `Downsample` does.

Charge is average-pooled over the FULL block (empty pixels count as zero, so a
block's value is its sum / 4^d) and labels are max-pooled, which gives
neutrino (2) precedence over cosmic (1) over background (0).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

Voxels = Tuple[np.ndarray, np.ndarray, np.ndarray]


def downsampled_shape(full_shape: Tuple[int, int], factor_log2: int) -> Tuple[int, int]:
    """(rows, cols) after downsampling; ValueError unless 2^d divides both."""
    if factor_log2 < 0:
        raise ValueError(f"downsample factor_log2 must be >= 0, got {factor_log2}")
    rows, cols = full_shape
    factor = 1 << factor_log2
    if rows % factor or cols % factor:
        raise ValueError(
            f"plane shape {rows}x{cols} is not divisible by 2^{factor_log2} = {factor}"
        )
    return rows // factor, cols // factor


def combine_duplicates(index: np.ndarray, value: np.ndarray, label: np.ndarray) -> Voxels:
    """Sort by index and merge voxels sharing an index: charges add, the
    highest label (uint8) wins."""
    if index.shape[0] == 0:
        return index, value, label
    # Sorting on (index, label) leaves each index's highest label last in its
    # run, which avoids a separate max reduction. Timsort ("stable") is ~10x
    # faster than quicksort here: a block row arrives as 2^d sorted runs.
    key = index << 8
    key |= label
    order = np.argsort(key, kind="stable")
    key = key[order]
    index = key >> 8
    new_run = np.empty(index.shape[0], dtype=bool)
    new_run[0] = True
    np.not_equal(index[1:], index[:-1], out=new_run[1:])
    value = value[order]
    if new_run.all():
        return index, value, label[order]
    last = np.append(np.flatnonzero(new_run[1:]), index.shape[0] - 1)
    run = np.cumsum(new_run) - 1
    total = np.bincount(run, weights=value).astype(value.dtype)
    return index[last], total, (key[last] & 0xFF).astype(label.dtype)


def downsample_plane(
    index: np.ndarray,
    value: np.ndarray,
    label: np.ndarray,
    full_shape: Tuple[int, int],
    factor_log2: int,
) -> Voxels:
    """Charged voxels of a `full_shape` plane, downsampled by 2^factor_log2 per axis.

    Returns (index, value, label) in the downsampled image, index sorted and
    unique; factor_log2 = 0 returns the input unchanged.
    """
    _, out_cols = downsampled_shape(full_shape, factor_log2)
    if factor_log2 == 0:
        return index, value, label
    y, x = np.divmod(index, full_shape[1])
    coarse = (y >> factor_log2) * out_cols + (x >> factor_log2)
    index, value, label = combine_duplicates(coarse, value, label)
    area = np.float32(1 << (2 * factor_log2))
    return index, value / area, label
