"""The five real SBND events in the real larcv3 format, through the reader and the modes."""
import csv
import os

import numpy as np
import pytest
from tiny import SAMPLE, TINY_NETWORK, require_sample

from benchmark.cli import main
from benchmark.data.larcv import LarcvSource
from benchmark.errors import DataError

DATA_DIR = os.path.dirname(SAMPLE)
SAMPLE_SHA256 = "b44d4e44212296421f17925e2f80bbec84a0cb3e75b9bbb28c5498a01bbd061c"


@pytest.fixture(autouse=True)
def sample_present():
    """Every test here reads the real sample: a missing file fails each, naming it."""
    require_sample()

TINY = [
    f"data.data_directory={DATA_DIR}",
    "data.file=cosmic_tagging_light.h5",
    "data.aux_file=cosmic_tagging_light.h5",
    *TINY_NETWORK,
    "run.minibatch_size=2",
    "run.aux_minibatch_size=2",
    "run.seed=1",
    "data.seed=1",
]


def test_the_sample_ships_with_the_repository():
    """Upstream's public example file, byte for byte, in tests/data/ (it used to be read from beside the clone)."""
    from benchmark.data.dataset import sha256

    assert os.path.dirname(SAMPLE) == os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    assert sha256(SAMPLE) == SAMPLE_SHA256


def test_a_missing_sample_fails_the_test_naming_it(monkeypatch, tmp_path):
    import tiny

    absent = str(tmp_path / "cosmic_tagging_light.h5")
    monkeypatch.setattr(tiny, "SAMPLE", absent)
    with pytest.raises(pytest.fail.Exception, match=f"{absent} is missing"):
        tiny.require_sample()


def test_reader_matches_the_file_statistics():
    source = LarcvSource(SAMPLE)
    assert len(source) == 5 and source.full_shape == (1280, 2048)
    events = [source.read(i) for i in range(5)]
    labels = np.concatenate([l for e in events for l in e.label])
    assert labels.size == 276_764
    assert np.bincount(labels, minlength=3).tolist() == [149_099, 103_664, 24_001]
    values = np.concatenate([v for e in events for v in e.value])
    assert values.min() >= 5.0
    for event in events:
        for index in event.index:
            assert np.all(np.diff(index) > 0) and index.max() < 1280 * 2048
        # The collection plane has fewer hits than the induction planes.
        assert event.n_voxels[2] < min(event.n_voxels[:2])


def test_reader_decodes_voxel_ids_as_larcv3_does():
    """id = x * 1280 + y; the dense plane is 1280 rows (y) by 2048 columns (x)."""
    import h5py

    with h5py.File(SAMPLE, "r") as handle:
        voxels = handle["Data/sparse2d_sbndwire_group/voxels"][:5]
    first = LarcvSource(SAMPLE).read(0)
    x, y = voxels["id"].astype(np.int64) // 1280, voxels["id"].astype(np.int64) % 1280
    for xi, yi, value in zip(x, y, voxels["value"]):
        position = np.searchsorted(first.index[0], yi * 2048 + xi)
        assert first.index[0][position] == yi * 2048 + xi and first.value[0][position] == value


def test_train_then_inference_on_real_events(tmp_path, capsys):
    out = tmp_path / "real"
    common = [f"run.output_dir={out}", "run.id=real", *TINY]
    assert main(["mode=train", "run.iterations=2", "run.aux_iterations=2", *common]) == 0
    assert main(["mode=inference", *common]) == 0
    text = capsys.readouterr().out
    assert "-- INFERENCE REPORT -- 5 events of cosmic_tagging_light.h5" in text
    rows = list(csv.DictReader(open(out / "inference_events.csv")))
    assert [int(r["entry"]) for r in rows] == [0, 1, 2, 3, 4]


def test_missing_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "missing"
    status = main(["mode=train", "run.id=m", f"run.output_dir={out}", *TINY, "data.file=nope.h5"])
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.h5 does not exist" in err
    assert not out.exists()


def test_file_that_is_not_hdf5(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_text("this is not HDF5")
    out = tmp_path / "bad"
    status = main(["mode=train", "run.id=b", f"run.output_dir={out}", *TINY, f"data.data_directory={tmp_path}", "data.file=bad.h5"])
    assert status == 1
    assert "bad.h5: not a readable HDF5 file" in capsys.readouterr().err
    assert not out.exists()


def test_file_without_labels(tmp_path):
    import h5py

    path = tmp_path / "nolabels.h5"
    with h5py.File(SAMPLE, "r") as src, h5py.File(path, "w") as dst:
        src.copy("Data/sparse2d_sbndwire_group", dst, name="Data/sparse2d_sbndwire_group")
    with pytest.raises(DataError, match="no product sparse2d 'sbnd_cosmicseg'"):
        LarcvSource(str(path))
