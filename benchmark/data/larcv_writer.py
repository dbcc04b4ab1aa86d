"""Writing larcv3 HDF5 files with h5py, in the layout larcv3 itself writes and reads.

Used for generated datasets and for inference predictions, so both are real
larcv3 files (tested against the larcv3 library). Products are sparse2d with
three projections of `full_shape`; voxel ids are larcv3's, id = x * rows + y,
sorted. No timestamps are stored, so the same events give byte-identical files.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np

N_PLANES = 3
CHUNK_EVENTS = 64  # events buffered before they are appended to the file

VOXEL_EXTENTS = np.dtype([("first", "<u8"), ("N", "<u4"), ("ID", "<u4")])
VOXELS = np.dtype({"names": ["id", "value"], "formats": ["<u8", "<f4"], "offsets": [0, 8], "itemsize": 16})
IMAGE_META = np.dtype(
    {
        "names": ["valid", "projection_id", "image_sizes", "number_of_voxels", "origin"],
        "formats": ["u1", "<u8", ("<f8", (2,)), ("<u8", (2,)), ("<f8", (2,))],
        "offsets": [0, 8, 16, 32, 48],
        "itemsize": 72,
    }
)
EXTENTS = np.dtype({"names": ["first", "N"], "formats": ["<u8", "<u4"], "offsets": [0, 8], "itemsize": 16})
EVENT_ID = np.dtype([("run", "<i8"), ("subrun", "<i8"), ("event", "<i8")])

# (per-plane voxel index arrays in the image's y * cols + x, per-plane values)
PlaneVoxels = Tuple[Sequence[np.ndarray], Sequence[np.ndarray]]


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    """A group without modification times (h5py's create_group always stores them)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    return parent[name]


def _dataset(group: h5py.Group, name: str, dtype: np.dtype, chunk: int, compress: bool) -> h5py.Dataset:
    options = {"compression": "gzip", "compression_opts": 4} if compress else {}
    return group.create_dataset(
        name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(chunk,), track_times=False, **options
    )


def _append(dataset: h5py.Dataset, rows: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize((start + rows.shape[0],))
    dataset[start:] = rows


class LarcvWriter:
    """Append events product by product; `close()` (or the context manager) flushes.

    `compression="gzip"` is what larcv3 writes (chunks of 1,000 voxels, a
    third of the size); uncompressed voxels in large chunks read about five
    times faster, which is what a fast input pipeline on few cores needs.
    """

    def __init__(self, path: str, full_shape: Tuple[int, int], producers: Sequence[str],
                 compression: Optional[str] = None):
        if compression not in (None, "gzip"):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        compress = compression == "gzip"
        voxel_chunk = 1000 if compress else 65536
        self.path = path
        self.rows, self.columns = full_shape
        self.producers = list(producers)
        self._file = h5py.File(path, "w", track_order=False)
        data = _group(self._file, "Data")
        events = _group(self._file, "Events")
        self._event_id = _dataset(events, "event_id", EVENT_ID, 100, compress)
        self._groups: Dict[str, Dict[str, h5py.Dataset]] = {}
        for producer in self.producers:
            group = _group(data, f"sparse2d_{producer}_group")
            self._groups[producer] = {
                "extents": _dataset(group, "extents", EXTENTS, 10, compress),
                "image_meta": _dataset(group, "image_meta", IMAGE_META, 10, compress),
                "voxel_extents": _dataset(group, "voxel_extents", VOXEL_EXTENTS, 10, compress),
                "voxels": _dataset(group, "voxels", VOXELS, voxel_chunk, compress),
            }
        self._pending: List[Dict[str, PlaneVoxels]] = []
        self._written = 0

    def append(self, products: Dict[str, PlaneVoxels]) -> None:
        """One event: for every producer, per plane (index y*cols+x, values)."""
        if set(products) != set(self.producers):
            raise ValueError(f"expected products {self.producers}, got {sorted(products)}")
        self._pending.append(products)
        if len(self._pending) >= CHUNK_EVENTS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        n = len(self._pending)
        ids = np.zeros(n, dtype=EVENT_ID)
        ids["event"] = np.arange(self._written, self._written + n)
        _append(self._event_id, ids)
        for producer, datasets in self._groups.items():
            self._flush_product(datasets, [event[producer] for event in self._pending])
        self._written += n
        self._pending = []

    def _flush_product(self, datasets: Dict[str, h5py.Dataset], events: List[PlaneVoxels]) -> None:
        first_row = datasets["voxel_extents"].shape[0]
        first_voxel = datasets["voxels"].shape[0]
        extents = np.zeros(len(events), dtype=EXTENTS)
        voxel_extents = np.zeros(len(events) * N_PLANES, dtype=VOXEL_EXTENTS)
        meta = np.zeros(len(events) * N_PLANES, dtype=IMAGE_META)
        voxels = []
        for e, (indices, values) in enumerate(events):
            extents[e] = (first_row + e * N_PLANES, N_PLANES)
            for p in range(N_PLANES):
                ids, vals = self._larcv_ids(indices[p], values[p])
                row = e * N_PLANES + p
                voxel_extents[row] = (first_voxel, ids.shape[0], p)
                meta[row] = (1, p, (float(self.columns), float(self.rows)), (self.columns, self.rows), (0.0, 0.0))
                block = np.empty(ids.shape[0], dtype=VOXELS)
                block["id"], block["value"] = ids, vals
                voxels.append(block)
                first_voxel += ids.shape[0]
        _append(datasets["extents"], extents)
        _append(datasets["voxel_extents"], voxel_extents)
        _append(datasets["image_meta"], meta)
        _append(datasets["voxels"], np.concatenate(voxels) if voxels else np.zeros(0, VOXELS))

    def _larcv_ids(self, index: np.ndarray, value: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Our y * cols + x to larcv3's x * rows + y, sorted as larcv3 stores them."""
        y, x = np.divmod(np.asarray(index, dtype=np.int64), self.columns)
        ids = x * self.rows + y
        order = np.argsort(ids, kind="stable")
        return ids[order].astype(np.uint64), np.asarray(value, dtype=np.float32)[order]

    def close(self) -> None:
        if self._file.id.valid:
            self._flush()
            self._file.close()

    def __enter__(self) -> "LarcvWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
