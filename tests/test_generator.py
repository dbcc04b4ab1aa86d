"""The physics-inspired generator against the real sample's statistics (the
tolerances of benchmark/data/generator.py), its invariants, and the
statistics helpers on hand-made events."""
import json

import numpy as np
import pytest
from tiny import require_sample

from benchmark.data.generator import GENERATOR_VERSION, THRESHOLD, GeneratedSource, generate_event
from benchmark.data.source import Event
from benchmark.data.stats import compare, event_stats, summarize

SHAPE = (1280, 2048)
N_EVENTS, SEED = 50, 1

# The real sample as `summarize` measures it (5 events, 15 planes).
REAL = {
    "class_share": {"background": 0.5387, "cosmic": 0.3746, "neutrino": 0.0867},
    "induction": {
        "voxels": {"min": 15775, "median": 23522.5, "max": 26961},
        "charge": {"p5": 5.07, "p25": 5.46, "p50": 6.65, "p75": 31.9, "p95": 80.0, "p99": 143.8},
    },
    "collection": {
        "voxels": {"min": 3066, "median": 10191.0, "max": 12336},
        "charge": {"p5": 5.59, "p25": 15.7, "p50": 39.4, "p75": 68.5, "p95": 142.8, "p99": 217.7},
    },
}
# The tolerances stated in the generator's docstring.
SHARE_POINTS = 0.05
CHARGE_FACTOR = 1.25
MEDIAN_VOXELS = 0.25
REAL_RANGE, IN_RANGE_SHARE, HARD_RANGE = (3_000, 27_000), 0.75, (1_000, 50_000)


@pytest.fixture(scope="module")
def events():
    source = GeneratedSource(N_EVENTS, SEED)
    return [source.read(entry) for entry in range(N_EVENTS)]


@pytest.fixture(scope="module")
def generated(events):
    return summarize(events)


@pytest.fixture(scope="module")
def real():
    from benchmark.data.larcv import LarcvSource

    source = LarcvSource(require_sample())
    try:
        return summarize(source.read(entry) for entry in range(len(source)))
    finally:
        source.close()


def test_real_sample_measures_as_documented(real):
    for name, share in REAL["class_share"].items():
        assert real["class_share"][name] == pytest.approx(share, abs=1e-4)
    for kind in ("induction", "collection"):
        assert real[kind]["voxels"] == REAL[kind]["voxels"]
        for key, value in REAL[kind]["charge"].items():
            assert real[kind]["charge"][key] == pytest.approx(value, rel=0.01)


def test_class_shares_match_the_real_sample(generated, real):
    for name in ("background", "cosmic", "neutrino"):
        assert abs(generated["class_share"][name] - real["class_share"][name]) <= SHARE_POINTS, name


def test_charge_percentiles_match_the_real_sample(generated, real):
    for kind in ("induction", "collection"):
        for key, value in real[kind]["charge"].items():
            if key == "max":
                continue
            ratio = generated[kind]["charge"][key] / value
            assert 1 / CHARGE_FACTOR <= ratio <= CHARGE_FACTOR, (kind, key, ratio)


def test_voxels_per_plane_match_the_real_sample(events, generated, real):
    for kind in ("induction", "collection"):
        ratio = generated[kind]["voxels"]["median"] / real[kind]["voxels"]["median"]
        assert abs(ratio - 1) <= MEDIAN_VOXELS, (kind, ratio)
    counts = np.array([event.n_voxels for event in events])
    assert np.mean((counts >= REAL_RANGE[0]) & (counts <= REAL_RANGE[1])) >= IN_RANGE_SHARE
    assert counts.min() >= HARD_RANGE[0] and counts.max() <= HARD_RANGE[1]


def test_collection_has_fewer_hits_and_more_charge_than_induction(events, generated):
    for event in events:
        assert event.n_voxels[2] < min(event.n_voxels[:2])
    # The real sample's ratio of median charges is ~6.
    assert generated["collection"]["charge"]["p50"] > 3 * generated["induction"]["charge"]["p50"]


def test_voxels_are_charged_labelled_sorted_and_inside(events):
    rows, cols = SHAPE
    for event in events:
        for index, value, label in zip(event.index, event.value, event.label):
            assert index.dtype == np.int64 and value.dtype == np.float32 and label.dtype == np.uint8
            assert index.shape == value.shape == label.shape
            assert np.all(np.diff(index) > 0)
            assert index[0] >= 0 and index[-1] < rows * cols
            assert value.min() >= THRESHOLD
            assert set(np.unique(label).tolist()) <= {0, 1, 2}


def test_every_event_has_a_neutrino_seen_at_the_same_drift_times_in_all_planes(events):
    cols = SHAPE[1]
    for event in events:
        rows = [i[l == 2] // cols for i, l in zip(event.index, event.label)]
        assert all(r.size for r in rows), "a plane without neutrino pixels"
        # A 3D point has one drift time: the planes see the same rows (up
        # to faint hits that pass the threshold in some planes only).
        sets = [set(r.tolist()) for r in rows]
        assert len(set.intersection(*sets)) >= 0.9 * len(set.union(*sets))


def test_events_are_a_pure_function_of_seed_and_entry():
    first = GeneratedSource(10, 5).read(3)
    again = GeneratedSource(10, 5).read(3)
    for a, b in zip(_arrays(first), _arrays(again)):
        np.testing.assert_array_equal(a, b)
    assert _differ(first, GeneratedSource(10, 5).read(4))
    assert _differ(first, GeneratedSource(10, 6).read(3))
    # The source is the module function on the same generator.
    direct = generate_event(np.random.default_rng([5, 3]), SHAPE)
    for a, b in zip(_arrays(first), _arrays(direct)):
        np.testing.assert_array_equal(a, b)


def _arrays(event):
    return [*event.index, *event.value, *event.label]


def _differ(a, b):
    return any(x.shape != y.shape or not np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))


def test_source_interface_and_reduced_shapes():
    assert isinstance(GENERATOR_VERSION, str) and GENERATOR_VERSION
    source = GeneratedSource(3, 0, full_shape=(128, 256))
    assert len(source) == 3 and source.full_shape == (128, 256)
    event = source.read(2)
    for index, value in zip(event.index, event.value):
        assert index.size and index[-1] < 128 * 256 and value.min() >= THRESHOLD
    with pytest.raises(IndexError):
        source.read(3)
    with pytest.raises(ValueError):
        GeneratedSource(3, 0, full_shape=(127, 256))
    with pytest.raises(ValueError):
        GeneratedSource(-1, 0)


# ---------------------------------------------------------------- stats.py


def _tiny_event():
    return Event(
        index=(np.array([0, 5, 9], np.int64), np.array([4], np.int64), np.zeros(0, np.int64)),
        value=(np.array([5.0, 10.0, 100.0], np.float32), np.array([7.0], np.float32), np.zeros(0, np.float32)),
        label=(np.array([0, 1, 2], np.uint8), np.array([1], np.uint8), np.zeros(0, np.uint8)),
    )


def test_event_stats_on_a_tiny_event():
    stats = event_stats(_tiny_event())
    first, second, empty = stats["planes"]
    assert first["voxels"] == 3
    assert first["labels"] == {"background": 1, "cosmic": 1, "neutrino": 1}
    assert first["charge"]["p50"] == pytest.approx(10.0)
    assert first["charge"]["p5"] == pytest.approx(np.percentile([5.0, 10.0, 100.0], 5))
    assert first["charge"]["max"] == pytest.approx(100.0)
    assert second["labels"] == {"background": 0, "cosmic": 1, "neutrino": 0}
    assert empty["voxels"] == 0 and empty["charge"]["p50"] is None and empty["charge"]["max"] is None
    json.dumps(stats)


def test_summarize_pools_planes_by_type():
    summary = summarize([_tiny_event(), _tiny_event()])
    assert summary["events"] == 2
    induction, collection = summary["induction"], summary["collection"]
    assert induction["planes"] == 4 and induction["voxels"] == {"min": 1, "median": 2.0, "max": 3}
    assert induction["class_share"] == {"background": 0.25, "cosmic": 0.5, "neutrino": 0.25}
    assert 7.0 <= induction["charge"]["p50"] <= 10.0 and induction["charge"]["max"] == 100.0
    assert collection["voxels"] == {"min": 0, "median": 0.0, "max": 0}
    assert collection["class_share"]["cosmic"] is None and collection["charge"]["p50"] is None
    assert summary["class_share"] == induction["class_share"]
    json.dumps(summary)


def test_summarize_percentiles_are_close_to_exact():
    values = np.random.default_rng(0).lognormal(3.0, 1.2, 20_000).astype(np.float32) + 5.0
    planes = np.array_split(values, 3)
    event = Event(
        index=tuple(np.arange(p.size, dtype=np.int64) for p in planes),
        value=tuple(planes),
        label=tuple(np.zeros(p.size, np.uint8) for p in planes),
    )
    summary = summarize([event])
    pooled = np.concatenate(planes[:2])
    for q in (5, 25, 50, 75, 95, 99):
        assert summary["induction"]["charge"][f"p{q}"] == pytest.approx(np.percentile(pooled, q), rel=0.005)


def test_compare_lists_both_sides_with_ratios():
    a = summarize([_tiny_event()])
    b = summarize([_tiny_event(), _tiny_event()])
    rows = {quantity: (x, y, ratio) for quantity, x, y, ratio in compare(a, b)}
    assert rows["events"] == (1, 2, 2.0)
    assert rows["induction.class_share.cosmic"] == (0.5, 0.5, 1.0)
    assert rows["collection.charge.p50"] == (None, None, None)
    assert rows["collection.voxels.max"] == (0, 0, None)
    json.dumps(compare(a, b))
