"""larcv3 files: writing, corrupt input, predictions, and the data commands for people."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from tiny import SAMPLE, TINY_NETWORK, require_sample

from benchmark.cli import main as exec_main
from benchmark.data.commands import main as data_main
from benchmark.data.larcv import LarcvSource
from benchmark.data.larcv_writer import LarcvWriter
from benchmark.data.pipeline import load_batch
from benchmark.data.predictions import PREDICTION_PRODUCER
from benchmark.errors import DataError

WIRE = "Data/sparse2d_sbndwire_group"
LABEL = "Data/sparse2d_sbnd_cosmicseg_group"


@pytest.fixture(autouse=True)
def sample_present():
    """Every test here reads the real sample: a missing file fails each, naming it."""
    require_sample()


def copy_sample(tmp_path, name="copy.h5"):
    path = tmp_path / name
    shutil.copy(SAMPLE, path)
    return path


def rewrite_voxels(path, group, change):
    """Apply `change(voxels)` to a product's voxel table in place."""
    with h5py.File(path, "r+") as handle:
        voxels = handle[f"{group}/voxels"][:]
        change(voxels)
        handle[f"{group}/voxels"][:] = voxels


def first_plane_range(path, group):
    with h5py.File(path, "r") as handle:
        extent = handle[f"{group}/voxel_extents"][0]
    return int(extent["first"]), int(extent["first"]) + int(extent["N"])


def test_written_file_reads_back_identically_and_byte_for_byte(tmp_path):
    source = LarcvSource(SAMPLE)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in paths:
        with LarcvWriter(str(path), source.full_shape, ["sbndwire", "sbnd_cosmicseg"]) as writer:
            for i in range(len(source)):
                e = source.read(i)
                writer.append({"sbndwire": (e.index, e.value), "sbnd_cosmicseg": (e.index, e.label)})
    assert paths[0].read_bytes() == paths[1].read_bytes()
    again = LarcvSource(str(paths[0]))
    for i in range(len(source)):
        a, b = source.read(i), again.read(i)
        for p in range(3):
            np.testing.assert_array_equal(a.index[p], b.index[p])
            np.testing.assert_array_equal(a.value[p], b.value[p])
            np.testing.assert_array_equal(a.label[p], b.label[p])


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda v, lo, hi: v["id"].__setitem__(slice(lo, lo + 1), v["id"][lo] + 1), "image and label voxel ids disagree"),
        (lambda v, lo, hi: v["value"].__setitem__(slice(lo, lo + 1), 7.0), "label values outside {0, 1, 2}"),
    ],
)
def test_inconsistent_labels_name_the_file_and_entry(tmp_path, corrupt, message):
    path = copy_sample(tmp_path)
    lo, hi = first_plane_range(path, LABEL)
    rewrite_voxels(path, LABEL, lambda v: corrupt(v, lo, hi))
    with pytest.raises(DataError, match=f"copy.h5: entry 0 plane 0: {message}"):
        LarcvSource(str(path)).read(0)


def test_ids_outside_the_image(tmp_path):
    path = copy_sample(tmp_path)
    lo, hi = first_plane_range(path, WIRE)

    def outside(voxels):
        voxels["id"][hi - 1] = 2048 * 1280 + 5

    rewrite_voxels(path, WIRE, outside)
    rewrite_voxels(path, LABEL, outside)
    with pytest.raises(DataError, match="entry 0 plane 0: voxel ids outside the 1280x2048 image"):
        LarcvSource(str(path)).read(0)


def test_truncated_file_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "truncated.h5"
    path.write_bytes(open(SAMPLE, "rb").read()[: os.path.getsize(SAMPLE) // 2])
    out = tmp_path / "run"
    status = exec_main(["mode=train", "run.id=t", f"run.output_dir={out}", f"data.data_directory={tmp_path}",
                        "data.file=truncated.h5", *TINY_NETWORK])
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "truncated.h5" in err
    assert not out.exists()


def test_a_bad_entry_during_training_stops_with_one_line(tmp_path, capsys):
    path = copy_sample(tmp_path)
    lo, _ = first_plane_range(path, LABEL)
    rewrite_voxels(path, LABEL, lambda v: v["value"].__setitem__(slice(lo, lo + 1), 9.0))
    status = exec_main(["mode=train", "run.id=t", f"run.output_dir={tmp_path / 'run'}", f"data.data_directory={tmp_path}",
                        "data.file=copy.h5", "run.aux_iterations=0", "run.minibatch_size=5", "run.iterations=1",
                        *TINY_NETWORK])
    assert status == 1
    assert capsys.readouterr().err.strip() == "error: " + f"{path}: entry 0 plane 0: label values outside {{0, 1, 2}}"


def test_inference_writes_larcv3_predictions_on_the_input_voxels(tmp_path, capsys):
    data = [f"data.data_directory={os.path.dirname(SAMPLE)}", "data.file=cosmic_tagging_light.h5",
            "data.aux_file=cosmic_tagging_light.h5", *TINY_NETWORK, "run.minibatch_size=2", "run.seed=1", "data.seed=1"]
    out = tmp_path / "run"
    assert exec_main(["mode=train", "run.id=p", f"run.output_dir={out}", "run.iterations=1", "run.aux_iterations=0", *data]) == 0
    assert exec_main(["mode=inference", "run.id=p", f"run.output_dir={out}", *data]) == 0
    assert "predictions.h5" in capsys.readouterr().out
    truth = LarcvSource(SAMPLE)
    predicted = LarcvSource(str(out / "predictions.h5"), label_producer=PREDICTION_PRODUCER)
    assert len(predicted) == 5
    for i in range(5):
        a, b = truth.read(i), predicted.read(i)
        for p in range(3):
            np.testing.assert_array_equal(a.index[p], b.index[p])
            np.testing.assert_array_equal(a.value[p], b.value[p])
            assert set(np.unique(b.label[p])) <= {0, 1, 2}
    # show draws the prediction next to the truth
    png = tmp_path / "event.png"
    assert data_main(["show", SAMPLE, "--entry", "2", "--out", str(png), "--downsample", "3",
                      "--prediction", str(out / "predictions.h5")]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_reads_every_entry(tmp_path, capsys):
    assert data_main(["check", SAMPLE]) == 0
    assert "5 events of 3x1280x2048, 276,764 charged voxels, all consistent" in capsys.readouterr().out
    path = copy_sample(tmp_path)
    with h5py.File(path, "r+") as handle:
        extent = handle[f"{LABEL}/voxel_extents"][12]  # entry 4, plane 0
        voxels = handle[f"{LABEL}/voxels"]
        row = voxels[int(extent["first"])]
        row["value"] = 5.0
        voxels[int(extent["first"])] = row
    assert data_main(["check", str(path)]) == 1
    assert "entry 4 plane 0: label values outside {0, 1, 2}" in capsys.readouterr().err


def test_stats_is_json_per_event_and_plane(capsys):
    assert data_main(["stats", SAMPLE]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["entry"] for r in result] == [0, 1, 2, 3, 4]
    assert len(result[0]["planes"]) == 3


def test_export_gives_dense_arrays(tmp_path):
    out = tmp_path / "event.npz"
    assert data_main(["export", SAMPLE, "--entry", "1", "--downsample", "2", "--out", str(out)]) == 0
    arrays = np.load(out)
    assert arrays["image"].dtype == np.float32 and arrays["image"].shape == (3, 320, 512)
    assert arrays["label"].dtype == np.uint8 and arrays["label"].shape == (3, 320, 512)
    image, label = load_batch(LarcvSource(SAMPLE), [1], 2).dense()
    np.testing.assert_array_equal(arrays["image"], image[0])
    np.testing.assert_array_equal(arrays["label"], label[0])


def test_show_without_prediction(tmp_path):
    png = tmp_path / "event.png"
    assert data_main(["show", SAMPLE, "--entry", "0", "--out", str(png), "--downsample", "2"]) == 0
    assert png.stat().st_size > 10_000


def test_compare_prints_both_files(capsys):
    assert data_main(["compare", SAMPLE, SAMPLE]) == 0
    text = capsys.readouterr().out
    assert "B/A" in text and "1.00" in text


def test_commands_refuse_bad_input_in_one_line(tmp_path, capsys):
    assert data_main(["show", str(tmp_path / "none.h5"), "--out", str(tmp_path / "x.png")]) == 1
    assert data_main(["export", SAMPLE, "--entry", "9", "--out", str(tmp_path / "x.npz")]) == 1
    assert data_main(["export", SAMPLE, "--entry", "0", "--downsample", "12", "--out", str(tmp_path / "x.npz")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "out of range (the file has 5 events)" in lines[1]
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.png").exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert data_main(["generate", "--out", str(blocked / "sub"), "--train", "1"]) == 1
    assert data_main(["generate", "--out", str(tmp_path / "g"), "--train", "1", "--workers", "0"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: --out {blocked / 'sub'}: cannot create it (Not a directory)",
                     "error: --workers 0: must be >= 1"]
    assert not (tmp_path / "g").exists()


def test_generate_writes_a_verifiable_reproducible_dataset(tmp_path, capsys):
    from benchmark.data.dataset import verify
    from benchmark.data.generator import GENERATOR_VERSION

    args = ["--train", "3", "--val", "2", "--test", "1", "--seed", "4", "--workers", "1"]
    assert data_main(["generate", "--out", str(tmp_path / "a"), *args]) == 0
    assert data_main(["generate", "--out", str(tmp_path / "b"), *args, "--workers", "2"]) == 0
    for name in ("cosmic_tagging_train.h5", "cosmic_tagging_val.h5", "cosmic_tagging_test.h5"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    manifest = verify(str(tmp_path / "a"))
    assert manifest["generator_version"] == GENERATOR_VERSION and manifest["seed"] == 4
    assert {n: f["events"] for n, f in manifest["files"].items()} == {
        "cosmic_tagging_train.h5": 3, "cosmic_tagging_val.h5": 2, "cosmic_tagging_test.h5": 1}
    train = LarcvSource(str(tmp_path / "a" / "cosmic_tagging_train.h5"))
    val = LarcvSource(str(tmp_path / "a" / "cosmic_tagging_val.h5"))
    assert len(train) == 3 and not np.array_equal(train.read(0).index[0], val.read(0).index[0])
    # Nothing is overwritten, and a changed file no longer verifies.
    before = (tmp_path / "a" / "manifest.json").read_bytes()
    assert data_main(["generate", "--out", str(tmp_path / "a"), *args]) == 1
    assert "nothing is overwritten" in capsys.readouterr().err
    assert (tmp_path / "a" / "manifest.json").read_bytes() == before
    with open(tmp_path / "a" / "cosmic_tagging_val.h5", "r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\xff" * 8)
    with pytest.raises(DataError, match="sha256 differs"):
        verify(str(tmp_path / "a"))
