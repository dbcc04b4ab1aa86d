"""Synthetic events shaped like SBND cosmic-tagging data.

Upstream's synthetic data is dense uniform noise with random labels, which
makes throughput and memory unrepresentative. Here each plane is sparse like
the real sample (anchors.md, upstream-cosmictagger.md section 3):

* cosmic muons: straight lines, 1-2 px wide, crossing the image;
* the neutrino: a vertex with a few short tracks and a shower-like blob;
* background: noise hits just above threshold (mostly on the induction
  planes, some in pairs of consecutive time ticks) and hits next to tracks.

Pixel budgets are drawn first and the shapes drawn to fill them, so occupancy
and class shares follow the real sample by construction: per induction plane
0.35-1.0 % of pixels charged (~9,000-26,000), the collection plane (2)
0.4-0.6 times that; of all charged pixels 54 % background, 37.5 % cosmic,
8.7 % neutrino as in the sample (to within 1 point over a few hundred events;
single events vary by +-10 points, as real ones do). Charges are 5.0 (the
zero-suppression threshold) plus a Landau-like draw saturating at 3,000; the
collection plane has few noise hits, so its median charge is ~5x the
induction planes'. The planes are not consistent in 3D.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from benchmark.data.batch import BACKGROUND, COSMIC, N_PLANES, NEUTRINO
from benchmark.data.source import Event

THRESHOLD = 5.0
SBND_SHAPE = (1280, 2048)

# Per plane (induction 0 and 1, collection 2).
_BACKGROUND_SHARE = (0.65, 0.65, 0.2)  # of the plane's charged pixels
_HALO_SHARE = (0.2, 0.2, 0.7)  # of background: hits next to a track, the rest is noise
_TRACK_MEDIAN = (32.0, 32.0, 42.0)  # charge above threshold
_NOISE_SCALE = (0.6, 0.6, 1.5)  # exponential scale above threshold
_HALO_SCALE = 3.0
_SATURATION = 3000.0  # the real sample's largest charge is ~2,800
_PAIRED_NOISE = 0.3  # share of noise hits that come as a pair in consecutive rows
# Kinds of hit, in increasing precedence where they overlap, and their labels.
_LABEL_OF_KIND = np.array([BACKGROUND, BACKGROUND, COSMIC, NEUTRINO], np.uint8)


class SyntheticSource:
    """`n_events` synthetic events; event `entry` is a pure function of (seed, entry)."""

    def __init__(self, n_events: int, seed: int, full_shape: Tuple[int, int] = SBND_SHAPE):
        if n_events < 0 or seed < 0:
            raise ValueError(f"n_events and seed must be >= 0, got {n_events} and {seed}")
        self.n_events = int(n_events)
        self.seed = int(seed)
        self._shape = (int(full_shape[0]), int(full_shape[1]))

    @property
    def full_shape(self) -> Tuple[int, int]:
        return self._shape

    def __len__(self) -> int:
        return self.n_events

    def read(self, entry: int) -> Event:
        entry = int(entry)
        if not 0 <= entry < self.n_events:
            raise IndexError(f"entry {entry} out of range for {self.n_events} synthetic events")
        return generate_event(np.random.default_rng([self.seed, entry]), self._shape)


def generate_event(rng: np.random.Generator, shape: Tuple[int, int]) -> Event:
    """One event; the event-level draws tie the planes' sizes together."""
    occupancy = rng.uniform(0.0035, 0.010)
    collection_ratio = rng.uniform(0.4, 0.6)
    neutrino_fraction = rng.uniform(0.09, 0.33)  # of the non-background pixels
    planes = []
    for p in range(N_PLANES):
        n_total = occupancy * shape[0] * shape[1] * (collection_ratio if p == 2 else 1.0)
        n_background = n_total * _BACKGROUND_SHARE[p] * rng.uniform(0.8, 1.2)
        n_neutrino = (n_total - n_background) * neutrino_fraction
        n_cosmic = n_total - n_background - n_neutrino
        planes.append(_plane(rng, shape, p, int(n_cosmic), int(n_neutrino), int(n_background)))
    index, value, label = zip(*planes)
    return Event(index=index, value=value, label=label)


def _plane(rng, shape, plane, n_cosmic, n_neutrino, n_background):
    """Sorted unique voxels (index, value, label) of one plane."""
    cosmic = _cosmic_pixels(rng, shape, n_cosmic)
    neutrino = _neutrino_pixels(rng, shape, n_neutrino)
    n_halo = int(n_background * _HALO_SHARE[plane])
    halo = _halo_pixels(rng, shape, np.concatenate([cosmic, neutrino]), n_halo)
    noise = _noise_pixels(rng, shape, n_background - n_halo)
    index, kind = _merge([noise, halo, cosmic, neutrino])
    # Charges are independent of position, so they are drawn per kind after
    # the merge: no payload travels through the sort.
    median = _TRACK_MEDIAN[plane]
    draws = (
        lambda n: THRESHOLD + rng.exponential(_NOISE_SCALE[plane], n),
        lambda n: THRESHOLD + rng.exponential(_HALO_SCALE, n),
        lambda n: _track_charge(rng, n, median),
        lambda n: _track_charge(rng, n, 0.8 * median),
    )
    value = np.empty(index.size, np.float32)
    for k, draw in enumerate(draws):
        of_kind = kind == k
        value[of_kind] = draw(int(np.count_nonzero(of_kind)))
    return index, value, _LABEL_OF_KIND[kind]


def _merge(pieces):
    """Sorted unique flat indices of all pieces, with the kind (position in
    `pieces`) that wins where they overlap: the highest, so tracks cover
    background and the neutrino covers cosmics."""
    key = np.concatenate([(piece << 2) | kind for kind, piece in enumerate(pieces)])
    # Timsort: the noise arrives as sorted runs and costs little.
    key.sort(kind="stable")
    index = key >> 2
    last = np.append(index[1:] != index[:-1], True)
    return index[last], key[last] & 3


def _cosmic_pixels(rng, shape, budget):
    """Flat indices of `budget` pixels of muon lines crossing the image; the
    last line stops short."""
    rows, cols = shape
    starts, ends, widths, total = [], [], [], 0
    while total < budget:
        # Lines through a random point at a random angle, clipped to the image.
        n = 8
        centre = rng.uniform((0, 0), (rows - 1, cols - 1), size=(n, 2))
        angle = rng.uniform(0, np.pi, n)
        direction = np.stack([np.sin(angle), np.cos(angle)], axis=1)
        direction[np.abs(direction) < 1e-6] = 1e-6
        to_low = -centre / direction
        to_high = (np.array([rows - 1, cols - 1]) - centre) / direction
        start = centre + np.minimum(to_low, to_high).max(axis=1)[:, None] * direction
        end = centre + np.maximum(to_low, to_high).min(axis=1)[:, None] * direction
        width = rng.integers(1, 3, n)
        # Keep only the lines needed to reach the budget: rasterising is the cost.
        cost = (np.abs(end - start).max(axis=1).astype(np.int64) + 1) * width
        keep = np.searchsorted(np.cumsum(cost), budget - total) + 1
        starts.append(start[:keep])
        ends.append(end[:keep])
        widths.append(width[:keep])
        total += int(cost[:keep].sum())
    if not starts:
        return np.empty(0, np.int64)
    pixels = _segments(np.concatenate(starts), np.concatenate(ends), np.concatenate(widths), shape)
    return pixels[:budget]


def _neutrino_pixels(rng, shape, budget):
    """A vertex with 2-5 short tracks, the first one ending in a shower-like blob."""
    rows, cols = shape
    scale = rows / SBND_SHAPE[0]  # keeps the look on reduced test shapes
    n = rng.integers(2, 6)
    vertex = rng.uniform((0.1 * rows, 0.1 * cols), (0.9 * rows, 0.9 * cols))
    angle = rng.uniform(0, 2 * np.pi, n)
    direction = np.stack([np.sin(angle), np.cos(angle)], axis=1)
    end = vertex + rng.uniform(15, 120, (n, 1)) * scale * direction
    tracks = _segments(np.broadcast_to(vertex, end.shape), end, rng.integers(1, 3, n), shape)
    tracks = tracks[:budget]
    # The shower: an elongated Gaussian cloud downstream of the first track's
    # end, sized so that points rarely coincide.
    n_blob = budget - tracks.size
    width = np.sqrt(n_blob / (2 * np.pi * 2.5 * 0.6))
    along = rng.normal(2.5 * width, 2.5 * width, n_blob)
    across = rng.normal(0, width, n_blob)
    d = direction[0]
    y = end[0, 0] + along * d[0] - across * d[1]
    x = end[0, 1] + along * d[1] + across * d[0]
    return np.concatenate([tracks, _flat_index(y, x, shape)])


def _halo_pixels(rng, shape, signal, n):
    """Hits up to 2 px from random track pixels (one landing on a track pixel
    loses to it in the merge)."""
    if signal.size == 0:
        return signal
    cols = shape[1]
    seed = signal[rng.integers(0, signal.size, n)]
    offset = rng.integers(-2, 3, (2, n))
    return _flat_index(seed // cols + offset[0], seed % cols + offset[1], shape)


def _noise_pixels(rng, shape, n):
    """Uniform noise hits, some with the next row's pixel (the following time
    tick, as in the real sample), as two sorted runs."""
    size = shape[0] * shape[1]
    # Sorted uniform positions from exponential spacings, without a sort.
    spacing = rng.exponential(size=int(n / (1 + _PAIRED_NOISE / 2)) + 1)
    first = (np.cumsum(spacing[:-1]) * (size / spacing.sum())).astype(np.int64)
    paired = first[rng.random(first.size) < _PAIRED_NOISE / 2]
    paired = paired[paired < size - shape[1]] + shape[1]
    return np.concatenate([first, paired])


def _segments(start, end, width, shape):
    """Flat indices of straight segments in order, one pixel per step along
    the major axis; width 2 adds the neighbour along the minor axis."""
    delta = end - start
    n = np.abs(delta).max(axis=1).astype(np.int64) + 1
    slope = delta / np.maximum(n - 1, 1)[:, None]
    steep = np.abs(delta[:, 0]) > np.abs(delta[:, 1])
    # Each step repeated `width` times, shifted by 0..width-1 on the minor axis.
    repeat = np.repeat(width, n)
    segment = np.repeat(np.repeat(np.arange(n.size), n), repeat)
    step = np.repeat(np.arange(repeat.size) - np.repeat(np.cumsum(n) - n, n), repeat)
    shift = np.arange(segment.size) - np.repeat(np.cumsum(repeat) - repeat, repeat)
    y = np.rint(start[segment, 0] + step * slope[segment, 0]) + shift * ~steep[segment]
    x = np.rint(start[segment, 1] + step * slope[segment, 1]) + shift * steep[segment]
    return _flat_index(y, x, shape)


def _flat_index(y, x, shape):
    """y * cols + x as int64 for the points inside the image, in order."""
    rows, cols = shape
    y = np.rint(y).astype(np.int64)
    x = np.rint(x).astype(np.int64)
    inside = (y >= 0) & (y < rows) & (x >= 0) & (x < cols)
    return y[inside] * cols + x[inside]


def _track_charge(rng, n, median):
    """Threshold plus a Landau-like draw: a lognormal core and a rare power-law
    tail (delta rays, stopping ends) that reaches the thousands, saturating."""
    charge = rng.lognormal(np.log(median), 0.6, n)
    tail = rng.random(n) < 0.003
    charge[tail] *= 1.0 + rng.pareto(1.5, int(tail.sum()))
    return np.minimum(THRESHOLD + charge, _SATURATION).astype(np.float32)
