"""Files this project writes are real larcv3 files: the larcv3 library reads them, and we read its.

larcv3 is installed by scripts/test.sh (requirements-dev.txt); this test must
run in CI, so a missing library is a failure, not a skip.
"""
import larcv
import numpy as np
import pytest

from benchmark.data.larcv import LarcvSource
from benchmark.data.larcv_writer import LarcvWriter
from benchmark.data.synthetic import SyntheticSource

ROWS, COLUMNS = 1280, 2048
PRODUCTS = ("sbndwire", "sbnd_cosmicseg")


def write_events(path, events, compression):
    with LarcvWriter(str(path), (ROWS, COLUMNS), list(PRODUCTS), compression=compression) as writer:
        for event in events:
            writer.append({"sbndwire": (event.index, event.value), "sbnd_cosmicseg": (event.index, event.label)})


def larcv_ids(index):
    """Our y * cols + x as larcv3's x * rows + y (unsorted, in our order)."""
    y, x = np.divmod(index.astype(np.int64), COLUMNS)
    return x * ROWS + y


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_larcv3_reads_what_we_write(tmp_path, compression):
    events = [SyntheticSource(4, seed=2).read(i) for i in range(4)]
    path = tmp_path / "ours.h5"
    write_events(path, events, compression)
    io = larcv.IOManager(larcv.IOManager.kREAD)
    io.add_in_file(str(path))
    io.initialize()
    assert io.get_n_entries() == len(events)
    for entry, event in enumerate(events):
        io.read_entry(entry)
        for product in PRODUCTS:
            tensors = io.get_data("sparse2d", product)
            for plane in range(3):
                tensor = tensors.sparse_tensor(plane)
                meta = tensor.meta()
                assert meta.projection_id() == plane
                assert (meta.number_of_voxels(0), meta.number_of_voxels(1)) == (COLUMNS, ROWS)
                ids = np.asarray(tensor.indexes(), dtype=np.int64)
                values = np.asarray(tensor.values(), dtype=np.float32)
                order = np.argsort(larcv_ids(event.index[plane]))  # larcv3 stores ids sorted
                np.testing.assert_array_equal(ids, larcv_ids(event.index[plane])[order])
                expected = event.value[plane] if product == "sbndwire" else event.label[plane].astype(np.float32)
                np.testing.assert_array_equal(values, expected[order])
    io.finalize()


def test_we_read_what_larcv3_writes(tmp_path):
    events = [SyntheticSource(3, seed=5).read(i) for i in range(3)]
    path = str(tmp_path / "theirs.h5")
    io = larcv.IOManager(larcv.IOManager.kWRITE)
    io.set_out_file(path)
    io.initialize()
    for number, event in enumerate(events):
        io.set_id(1, 0, number)
        for product in PRODUCTS:
            tensors = io.get_data("sparse2d", product)
            for plane in range(3):
                meta = larcv.ImageMeta2D()
                meta.set_dimension(0, float(COLUMNS), COLUMNS)
                meta.set_dimension(1, float(ROWS), ROWS)
                meta.set_projection_id(plane)
                voxels = larcv.VoxelSet()
                values = event.value[plane] if product == "sbndwire" else event.label[plane]
                y, x = np.divmod(event.index[plane], COLUMNS)
                for voxel_id, value in zip(x * ROWS + y, values):
                    voxels.emplace(int(voxel_id), float(value), False)
                tensors.set(voxels, meta)
        io.save_entry()
    io.finalize()
    source = LarcvSource(path)
    assert len(source) == 3 and source.full_shape == (ROWS, COLUMNS)
    for number, event in enumerate(events):
        read = source.read(number)
        for plane in range(3):
            np.testing.assert_array_equal(read.index[plane], event.index[plane])
            np.testing.assert_array_equal(read.value[plane], event.value[plane])
            np.testing.assert_array_equal(read.label[plane], event.label[plane])

