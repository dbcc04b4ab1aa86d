"""Reading CosmicTagger events from larcv3 HDF5 files with h5py.

Layout (larcv3 sparse2d): `Data/sparse2d_<producer>_group/` holds `extents`
(per event: first projection row, count), `voxel_extents` (per event and
projection: first voxel, count, projection id), `voxels` (id, value) and
`image_meta` (per event and projection). A voxel id enumerates a grid of
2048 (x, the meta's first axis) by 1280 (y) with y fastest: id = x*1280 + y,
as larcv3 decodes it; the dense plane has 1280 rows (y) and 2048 columns (x).
Charge comes from producer `sbndwire`, labels from `sbnd_cosmicseg`.
"""
from __future__ import annotations

from typing import Tuple

import h5py
import numpy as np

from benchmark.data.source import Event
from benchmark.errors import DataError

IMAGE_PRODUCER = "sbndwire"
LABEL_PRODUCER = "sbnd_cosmicseg"
N_PLANES = 3


def _group(handle: h5py.File, path: str, producer: str) -> h5py.Group:
    name = f"Data/sparse2d_{producer}_group"
    if name not in handle:
        raise DataError(f"{path}: no product sparse2d '{producer}' (missing group {name})")
    return handle[name]


def _read_planes(voxels: h5py.Dataset, extents: np.ndarray) -> list:
    """The voxels of an event's planes with one read (larcv3 stores them back to back)."""
    firsts = extents["first"].astype(np.int64)
    ends = firsts + extents["N"]
    low = int(firsts.min())
    block = voxels[low : int(ends.max())]
    return [block[f - low : e - low] for f, e in zip(firsts, ends)]


class LarcvSource:
    """An EventSource over one larcv3 file (charge and labels of 3 planes).

    `label_producer` reads another product as the labels, e.g. the
    predictions that inference writes.
    """

    def __init__(self, path: str, label_producer: str = LABEL_PRODUCER):
        self._open(path, label_producer)

    def __getstate__(self) -> dict:
        # h5py handles do not cross processes: a worker re-opens the file.
        return {"path": self.path, "label_producer": self.label_producer}

    def __setstate__(self, state: dict) -> None:
        self._open(state["path"], state["label_producer"])

    def _open(self, path: str, label_producer: str) -> None:
        self.path = path
        self.label_producer = label_producer
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from exc
        self._image = _group(self._file, path, IMAGE_PRODUCER)
        self._label = _group(self._file, path, label_producer)
        try:
            self._extents = self._image["extents"][:]
            self._voxel_extents = self._image["voxel_extents"][:]
            self._label_extents = self._label["voxel_extents"][:]
            meta = self._image["image_meta"][0]
        except (KeyError, OSError, IndexError) as exc:
            raise DataError(f"{path}: incomplete sparse2d product ({exc})") from exc
        columns, rows = (int(n) for n in meta["number_of_voxels"])  # meta's first axis is x
        self._shape = (rows, columns)
        self._image_voxels = self._image["voxels"]
        self._label_voxels = self._label["voxels"]

    @property
    def full_shape(self) -> Tuple[int, int]:
        return self._shape

    def __len__(self) -> int:
        return int(self._extents.shape[0])

    def read(self, entry: int) -> Event:
        if not 0 <= entry < len(self):
            raise IndexError(f"{self.path}: entry {entry} out of range (file has {len(self)})")
        first, count = (int(v) for v in self._extents[entry])
        if count != N_PLANES:
            raise DataError(f"{self.path}: entry {entry} has {count} projections, expected {N_PLANES}")
        try:
            charge = _read_planes(self._image_voxels, self._voxel_extents[first : first + N_PLANES])
            labels = _read_planes(self._label_voxels, self._label_extents[first : first + N_PLANES])
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: entry {entry}: unreadable voxels ({str(exc).splitlines()[0]})") from exc
        planes = [self._decode(entry, p, charge[p], labels[p]) for p in range(N_PLANES)]
        return Event(*(tuple(column) for column in zip(*planes)))

    def _decode(self, entry: int, plane: int, charge: np.ndarray, labels: np.ndarray):
        """larcv3 voxels of one plane to (index y*cols+x sorted, charge, uint8 label), checked."""
        rows, columns = self._shape
        where = f"{self.path}: entry {entry} plane {plane}"
        ids = charge["id"]
        if not np.array_equal(ids, labels["id"]):
            raise DataError(f"{where}: image and label voxel ids disagree")
        if ids.size and ids.max() >= rows * columns:
            raise DataError(f"{where}: voxel ids outside the {rows}x{columns} image")
        label = labels["value"].astype(np.uint8)
        if label.size and (label.max() > 2 or not np.array_equal(label, labels["value"])):
            raise DataError(f"{where}: label values outside {{0, 1, 2}}")
        x, y = np.divmod(ids.astype(np.int64), rows)
        if np.all(ids[1:] > ids[:-1]):
            # Sorted by (x, y) as larcv3 stores them: a stable sort on y alone
            # (a radix sort for 16-bit keys) gives our (y, x) order.
            order = np.argsort(y.astype(np.uint16), kind="stable")
        else:
            order = np.argsort(y * columns + x, kind="stable")
            if np.any(np.diff((y * columns + x)[order]) == 0):
                raise DataError(f"{where}: duplicate voxel ids")
        return (y * columns + x)[order], charge["value"][order].astype(np.float32), label[order]

    def close(self) -> None:
        self._file.close()
