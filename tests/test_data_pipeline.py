"""Data path: downsampling, synthetic events, samplers and the prefetching loader."""
import os
import threading

import numpy as np
import pytest

from benchmark.errors import DataError

from benchmark.data.batch import VoxelBatch
from benchmark.data.downsample import downsample_plane
from benchmark.data.pipeline import DenseVoxelBatch, Loader, load_batch
from benchmark.data.sampler import EpochSampler, SequentialSampler
from benchmark.data.source import Event
from benchmark.data.synthetic import SyntheticSource

SMALL = (64, 128)


def random_plane(rng, shape, n):
    index = np.unique(rng.integers(0, shape[0] * shape[1], n))
    value = rng.uniform(5, 100, index.size).astype(np.float32)
    label = rng.integers(0, 3, index.size).astype(np.uint8)
    return index, value, label


def scatter(index, value, shape, dtype):
    out = np.zeros(shape[0] * shape[1], dtype)
    out[index] = value
    return out.reshape(shape)


# Downsampling

@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("n", [0, 50, 3000])
def test_downsample_matches_dense_pooling(d, n):
    rng = np.random.default_rng([d, n])
    index, value, label = random_plane(rng, SMALL, n)
    f = 1 << d
    blocks = (SMALL[0] // f, f, SMALL[1] // f, f)
    expected_value = scatter(index, value, SMALL, np.float32).reshape(blocks).mean(axis=(1, 3))
    expected_label = scatter(index, label, SMALL, np.uint8).reshape(blocks).max(axis=(1, 3))

    out_index, out_value, out_label = downsample_plane(index, value, label, SMALL, d)
    small = (SMALL[0] // f, SMALL[1] // f)
    assert np.all(np.diff(out_index) > 0)
    assert out_value.dtype == np.float32 and out_label.dtype == np.uint8
    np.testing.assert_allclose(scatter(out_index, out_value, small, np.float32), expected_value,
                               rtol=1e-6)
    np.testing.assert_array_equal(scatter(out_index, out_label, small, np.uint8), expected_label)


def test_downsample_label_precedence_and_area():
    cols = 8
    # Block (0, 0): background + cosmic; block (0, 1): cosmic + neutrino + background.
    index = np.array([0, 1, 2, 3, cols + 2], np.int64)
    value = np.array([8, 4, 10, 20, 30], np.float32)
    label = np.array([0, 1, 1, 2, 0], np.uint8)
    out_index, out_value, out_label = downsample_plane(index, value, label, (4, cols), 1)
    np.testing.assert_array_equal(out_index, [0, 1])
    np.testing.assert_array_equal(out_label, [1, 2])
    np.testing.assert_allclose(out_value, [12 / 4, 60 / 4])


def test_downsample_identity_and_shape_check():
    index, value, label = random_plane(np.random.default_rng(0), SMALL, 100)
    out = downsample_plane(index, value, label, SMALL, 0)
    assert all(a is b for a, b in zip(out, (index, value, label)))
    with pytest.raises(ValueError, match="not divisible by 2"):
        downsample_plane(index, value, label, (60, 128), 3)


# Synthetic events

@pytest.fixture(scope="module")
def full_resolution_events():
    source = SyntheticSource(20, seed=7)
    return [source.read(entry) for entry in range(len(source))]


def test_synthetic_event_format(full_resolution_events):
    rows, cols = SyntheticSource(1, 0).full_shape
    for event in full_resolution_events:
        for index, value, label in zip(event.index, event.value, event.label):
            assert index.dtype == np.int64 and value.dtype == np.float32 and label.dtype == np.uint8
            assert index.shape == value.shape == label.shape
            assert np.all(np.diff(index) > 0) and index[0] >= 0 and index[-1] < rows * cols


def test_synthetic_statistics_look_like_real_data(full_resolution_events):
    counts = np.array([event.n_voxels for event in full_resolution_events])
    assert counts.min() >= 3000 and counts.max() <= 27000  # 0.1-1 % of 1280 x 2048
    # The collection plane has about half the induction planes' hits.
    assert np.all(counts[:, 2] < 0.7 * counts[:, :2].min(axis=1))
    assert np.all(counts[:, 2] > 0.3 * counts[:, :2].max(axis=1))

    labels = np.concatenate([l for event in full_resolution_events for l in event.label])
    shares = np.bincount(labels, minlength=3) / labels.size
    np.testing.assert_allclose(shares, [0.54, 0.375, 0.087], atol=0.05)

    values = np.concatenate([v for event in full_resolution_events for v in event.value])
    assert values.min() >= 5.0 and 1000 < values.max() <= 3000  # a long, saturating tail
    medians = np.array([[np.median(v) for v in event.value] for event in full_resolution_events])
    ratio = medians[:, 2] / medians[:, :2].mean(axis=1)
    assert ratio.min() > 2.5 and 3 < ratio.mean() < 8  # ~5x in the real sample


def test_synthetic_is_a_pure_function_of_seed_and_entry():
    a = SyntheticSource(10, seed=3, full_shape=SMALL)
    b = SyntheticSource(10, seed=3, full_shape=SMALL)
    later = a.read(9)
    for entry in (5, 9, 0):
        assert_events_equal(a.read(entry), b.read(entry))
    assert_events_equal(later, b.read(9))
    other = SyntheticSource(10, seed=4, full_shape=SMALL).read(9)
    assert not np.array_equal(other.index[0], later.index[0])
    assert not np.array_equal(a.read(8).index[0], later.index[0])
    with pytest.raises(IndexError):
        a.read(10)


def assert_events_equal(x: Event, y: Event):
    for field in ("index", "value", "label"):
        for p, q in zip(getattr(x, field), getattr(y, field)):
            np.testing.assert_array_equal(p, q)


# Samplers

def test_epoch_sampler_epochs_are_permutations_minus_the_remainder():
    sampler = EpochSampler(n_events=103, batch_size=10, seed=1)
    assert sampler.batches_per_epoch == 10
    orders = []
    for epoch in range(3):
        steps = range(epoch * 10, (epoch + 1) * 10)
        assert {sampler.epoch_of(step) for step in steps} == {epoch}
        seen = np.concatenate([sampler.batch(step) for step in steps])
        assert seen.size == 100 and np.unique(seen).size == 100 and seen.max() < 103
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1])
    fresh = EpochSampler(n_events=103, batch_size=10, seed=1)
    np.testing.assert_array_equal(fresh.batch(25), orders[2][50:60])  # resume without state
    other_seed = EpochSampler(n_events=103, batch_size=10, seed=2)
    assert not np.array_equal(other_seed.batch(0), orders[0][:10])


def test_epoch_sampler_in_order_and_errors():
    sampler = EpochSampler(n_events=7, batch_size=3, seed=0, shuffle=False)
    np.testing.assert_array_equal(sampler.batch(1), [3, 4, 5])
    np.testing.assert_array_equal(sampler.batch(2), [0, 1, 2])  # the 7th entry is dropped
    with pytest.raises(DataError, match="fewer than one global batch"):
        EpochSampler(n_events=5, batch_size=8, seed=0)
    with pytest.raises(ValueError, match="multiple of the number of ranks"):
        EpochSampler(n_events=50, batch_size=9, seed=0, rank=0, world_size=2)


def test_epoch_sampler_ranks_share_the_global_batch():
    single = EpochSampler(n_events=50, batch_size=8, seed=3)
    ranks = [EpochSampler(n_events=50, batch_size=8, seed=3, rank=r, world_size=2)
             for r in range(2)]
    for step in range(15):
        shares = [sampler.batch(step) for sampler in ranks]
        assert all(share.size == 4 for share in shares)
        assert not set(shares[0]) & set(shares[1])
        np.testing.assert_array_equal(np.concatenate(shares), single.batch(step))


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("n_events", [1, 23, 24, 25])
def test_sequential_sampler_covers_every_event_once(world_size, n_events):
    ranks = [SequentialSampler(n_events, batch_size=6, rank=r, world_size=world_size)
             for r in range(world_size)]
    assert len(ranks[0]) == -(-n_events // 6)
    seen = [ranks[r].batch(i) for i in range(len(ranks[0])) for r in range(world_size)]
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(n_events))


# Loader

def small_loader_parts(n_events=12, batch_size=4):
    source = SyntheticSource(n_events, seed=11, full_shape=SMALL)
    return source, EpochSampler(n_events, batch_size, seed=5)


def assert_batches_equal(x: VoxelBatch, y: VoxelBatch):
    assert x.batch_size == y.batch_size and x.image_shape == y.image_shape
    for field in ("event", "plane", "index", "value", "label", "entries"):
        a, b = getattr(x, field), getattr(y, field)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_load_batch_layout():
    source, sampler = small_loader_parts()
    batch = load_batch(source, sampler.batch(0), downsample=1)
    assert batch.image_shape == (32, 64) and batch.batch_size == 4
    np.testing.assert_array_equal(batch.entries, sampler.batch(0))
    event = source.read(int(batch.entries[2]))
    mine = (batch.event == 2) & (batch.plane == 1)
    expected = downsample_plane(event.index[1], event.value[1], event.label[1], SMALL, 1)
    for got, want in zip((batch.index[mine], batch.value[mine], batch.label[mine]), expected):
        np.testing.assert_array_equal(got, want)


def test_loader_same_batches_with_and_without_prefetch_in_any_order():
    source, sampler = small_loader_parts()
    expected = {step: load_batch(source, sampler.batch(step), 1) for step in range(8)}
    with Loader(source, sampler, downsample=1, prefetch=0) as plain, \
            Loader(source, sampler, downsample=1, prefetch=3) as ahead, \
            Loader(source, sampler, downsample=1, prefetch=3, workers=2, processes=True) as parallel:
        for step in [0, 1, 2, 3, 6, 7, 2, 2, 5, 0, 4]:
            for loader in (plain, ahead, parallel):
                assert_batches_equal(loader.get(step), expected[step])


class FailsInWorker:
    """A source whose reads fail off the main thread, so only prefetching fails."""

    def __init__(self, source):
        self.source = source
        self.full_shape = source.full_shape

    def __len__(self):
        return len(self.source)

    def read(self, entry):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("disk on fire")
        return self.source.read(entry)


def test_loader_reraises_worker_exceptions():
    source, sampler = small_loader_parts()
    with Loader(FailsInWorker(source), sampler, downsample=0, prefetch=2) as loader:
        loader.get(5)  # not prefetched: built in this thread
        with pytest.raises(RuntimeError, match="disk on fire"):
            loader.get(6)
        loader.get(0)  # an unexpected step is built here again


def test_loader_close_stops_the_thread():
    source, sampler = small_loader_parts()
    loader = Loader(source, sampler, downsample=1)
    loader.get(0)
    loader.close()
    loader.close()
    assert not any(thread.name == "data-loader" for thread in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        loader.get(1)


def test_loader_dense_agrees_with_voxels():
    source, sampler = small_loader_parts()
    with Loader(source, sampler, downsample=1, dense=True) as loader:
        for step in range(3):
            batch = loader.get(step)
            assert isinstance(batch, DenseVoxelBatch)
            image, label = batch.dense()
            assert image.shape == label.shape == (4, 3, 32, 64)
            assert image.dtype == np.float32 and label.dtype == np.uint8
            fresh_image, fresh_label = VoxelBatch.dense(batch)
            np.testing.assert_array_equal(image, fresh_image)
            np.testing.assert_array_equal(label, fresh_label)
            flat = batch.flat_index()
            np.testing.assert_array_equal(image.reshape(-1)[flat], batch.value)
            np.testing.assert_array_equal(label.reshape(-1)[flat], batch.label)
            assert np.count_nonzero(image) == batch.n_voxels


def test_loader_with_empty_evaluation_share():
    source = SyntheticSource(7, seed=1, full_shape=SMALL)
    sampler = SequentialSampler(7, batch_size=6, rank=2, world_size=3)
    with Loader(source, sampler, downsample=2, dense=True) as loader:
        batch = loader.get(1)  # the last batch holds one event, rank 2 gets none
        assert batch.batch_size == 0 and batch.n_voxels == 0
        assert batch.dense()[0].shape == (0, 3, 16, 32)
        assert loader.get(0).batch_size == 2


class BadEntry:
    """Entry 3 is corrupt; picklable, so it also fails inside worker processes."""

    def __init__(self):
        self.source = SyntheticSource(8, seed=1, full_shape=SMALL)
        self.full_shape = SMALL

    def __len__(self):
        return 8

    def read(self, entry):
        if entry == 3:
            raise DataError("bad.h5: entry 3: unreadable voxels")
        return self.source.read(entry)


@pytest.mark.parametrize("processes", [False, True])
def test_data_errors_reach_the_caller_from_threads_and_processes(processes):
    sampler = EpochSampler(8, 2, seed=0, shuffle=False)
    with Loader(BadEntry(), sampler, downsample=1, prefetch=2, processes=processes) as loader:
        loader.get(0)
        with pytest.raises(DataError, match="entry 3"):
            loader.get(1)


def test_too_many_voxels_is_refused_not_truncated():
    source = SyntheticSource(2, seed=1, full_shape=SMALL)
    most = max(source.read(0).n_voxels)
    with pytest.raises(DataError, match=f"entry 0 plane .* holds {most} charged voxels, more than data.max_voxels={most - 1}"):
        load_batch(source, [0], 1, max_voxels=most - 1)
    assert load_batch(source, [0], 1, max_voxels=most).batch_size == 1


def test_stage_times_are_reported():
    source, sampler = small_loader_parts()
    with Loader(source, sampler, downsample=1, processes=True) as loader:
        for step in range(3):
            loader.get(step)
    assert {"read and decode", "downsample", "assemble"} <= set(loader.times.seconds)


def test_validation_subset_is_the_first_events_of_the_file():
    from benchmark import config
    from benchmark.datasets import open_source
    from tests.tiny import require_sample

    sample = require_sample()
    tokens = ["run.id=x", f"data.data_directory={os.path.dirname(sample)}", f"data.aux_file={os.path.basename(sample)}",
              f"data.file={os.path.basename(sample)}"]
    whole = open_source(config.load(tokens), "aux_file")
    subset = open_source(config.load(tokens + ["data.aux_events=3"]), "aux_file")
    assert len(whole) == 5 and len(subset) == 3
    for entry in range(3):
        for mine, theirs in zip(subset.read(entry).index + subset.read(entry).label, whole.read(entry).index + whole.read(entry).label):
            np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(IndexError):
        subset.read(3)
    assert len(open_source(config.load(tokens + ["data.aux_events=3"]), "file")) == 5  # training reads every event
    with pytest.raises(DataError, match=r"data.aux_events=6: .*cosmic_tagging_light.h5 holds 5 events, so it must be between 1 and 5"):
        open_source(config.load(tokens + ["data.aux_events=6"]), "aux_file")
