"""The pool of synthetic events: made once before run_start, then cycled, so batches cost a gather."""
import numpy as np
import pytest
from tiny import TINY_NETWORK

from benchmark import config
from benchmark.cli import main
from benchmark.data import synthetic
from benchmark.data.pipeline import Loader, load_batch
from benchmark.data.pool import EVENTS_PER_PROCESS, EventPool
from benchmark.data.sampler import EpochSampler
from benchmark.data.synthetic import SyntheticSource
from benchmark.datasets import open_source
from benchmark.errors import ConfigError, DataError
from benchmark.mlperf_log import C, MLPerfLog

SMALL = (64, 128)


def assert_batches_equal(x, y):
    assert x.batch_size == y.batch_size and x.image_shape == y.image_shape
    for field in ("event", "plane", "index", "value", "label", "entries"):
        a, b = getattr(x, field), getattr(y, field)
        assert a.dtype == b.dtype, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def generated(source, entries, downsample, size):
    """What the generator makes for `entries` (pool event e mod size), assembled as load_batch does."""
    batch = load_batch(source, np.asarray(entries) % size, downsample)
    batch.entries = np.asarray(entries, np.int64)
    return batch


@pytest.fixture
def generate_calls(monkeypatch):
    """Every generate_event call in this process, in order, as the string "generate"."""
    calls = []
    original = synthetic.generate_event

    def counting(rng, shape):
        calls.append("generate")
        return original(rng, shape)

    monkeypatch.setattr(synthetic, "generate_event", counting)
    return calls


def test_pool_batches_are_the_generated_events_and_cycle_beyond_the_pool():
    source = SyntheticSource(50, seed=3, full_shape=SMALL)
    pool = EventPool(source, 8, downsample=1)
    assert len(pool) == 50 and pool.full_shape == SMALL and pool.image_shape == (32, 64)
    for entries in ([0, 9, 17, 3], [49], [7, 8], []):  # 9 and 17 are pool event 1, 49 is 1, 8 is 0
        assert_batches_equal(pool.batch(entries), generated(source, entries, 1, 8))
        assert_batches_equal(load_batch(pool, entries, 1), generated(source, entries, 1, 8))
    full = pool.read(12)  # the full-resolution event of entry 12: the source's event 4
    for mine, theirs in zip(full.index + full.value, source.read(4).index + source.read(4).value):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(IndexError, match="entry 50 out of range for 50 events"):
        pool.batch([3, 50])
    with pytest.raises(IndexError, match="entry -1 out of range"):
        pool.read(-1)


def test_a_pool_at_another_resolution_is_downsampled_from_the_source():
    source = SyntheticSource(10, seed=2, full_shape=SMALL)
    pool = EventPool(source, 4, downsample=0)
    assert_batches_equal(load_batch(pool, [1, 6], 2), generated(source, [1, 6], 2, 4))


def test_loader_generates_nothing_after_the_pool_is_built_and_repeats_exactly(generate_calls):
    source = SyntheticSource(40, seed=5, full_shape=SMALL)
    pool = EventPool(source, 6, downsample=1)
    assert len(generate_calls) == 6
    sampler = EpochSampler(len(pool), 4, seed=9)  # 10 steps an epoch: 25 steps cycle the pool ~17 times
    expected = [generated(source, sampler.batch(step), 1, 6) for step in range(25)]
    made = len(generate_calls)
    # Worker processes are asked for: from a pool the loader gathers in threads (no copy of the pool per process).
    with Loader(pool, sampler, downsample=1, prefetch=3, workers=2, processes=True) as loader:
        assert loader.description == f"2 worker threads gathering from {pool.description}"
        for step in list(range(25)) + [3, 0]:
            assert_batches_equal(loader.get(step), expected[step])
    assert len(generate_calls) == made
    assert set(loader.times.seconds) == {"gather from pool"}


def test_a_pool_made_by_processes_equals_one_made_here():
    source = SyntheticSource(3 * EVENTS_PER_PROCESS, seed=4, full_shape=SMALL)
    here = EventPool(source, 2 * EVENTS_PER_PROCESS, downsample=1)
    parallel = EventPool(source, 2 * EVENTS_PER_PROCESS, downsample=1, workers=2)
    assert here.processes == 1 and parallel.processes == 2
    assert "by 2 processes" in parallel.description
    entries = np.arange(len(source))
    assert_batches_equal(parallel.batch(entries), here.batch(entries))
    # Few events are made here: a process would cost more than it saves.
    assert EventPool(source, EVENTS_PER_PROCESS, downsample=1, workers=2).processes == 1


def test_too_many_voxels_is_refused_as_from_the_source():
    source = SyntheticSource(4, seed=1, full_shape=SMALL)
    pool = EventPool(source, 2, downsample=1)
    most = max(source.read(0).n_voxels)
    with pytest.raises(DataError) as from_source:
        load_batch(source, [0], 1, max_voxels=most - 1)
    with pytest.raises(DataError) as from_pool:
        pool.batch([2], max_voxels=most - 1)  # entry 2 is pool event 0
    assert str(from_pool.value) == str(from_source.value).replace("entry 0", "entry 2")
    assert pool.batch([2], max_voxels=most).batch_size == 1


def test_open_source_pools_every_synthetic_split():
    def opened(*settings):
        cfg = config.load(["run.id=x", "data.synthetic=true", "data.seed=3", "data.downsample=5", *settings])
        return open_source(cfg, "file"), open_source(cfg, "aux_file")

    train, validation = opened("data.synthetic_events=20", "data.synthetic_pool=8")
    assert isinstance(train, EventPool) and (train.size, len(train), train.downsample) == (8, 20, 5)
    assert train.source.seed != validation.source.seed
    small, _ = opened("data.synthetic_events=5")  # fewer events than the default pool: every one of them
    plain, _ = opened("data.synthetic_events=5", "data.synthetic_pool=0")
    assert isinstance(plain, SyntheticSource) and small.size == 5
    assert_batches_equal(load_batch(small, range(5), 5), load_batch(plain, range(5), 5))
    with pytest.raises(ConfigError, match="data.synthetic_pool=-1 is out of range: it must be >= 0"):
        config.load(["run.id=x", "data.synthetic_pool=-1"])


TINY_RUN = ["data.synthetic=true", "data.synthetic_events=12", "data.seed=5", "run.seed=11", *TINY_NETWORK,
            "run.minibatch_size=2", "run.aux_minibatch_size=2", "mode.optimizer.lr_schedule=flat",
            "framework.intra_op_parallelism_threads=1"]


def test_training_makes_every_synthetic_event_during_staging(tmp_path, monkeypatch, generate_calls):
    def recording(method):
        def record(self, key, *args, **kwargs):
            generate_calls.append(key)
            return method(self, key, *args, **kwargs)
        return record

    monkeypatch.setattr(MLPerfLog, "start", recording(MLPerfLog.start))
    monkeypatch.setattr(MLPerfLog, "end", recording(MLPerfLog.end))
    status = main(["mode=train", "run.id=pool", f"run.output_dir={tmp_path / 'pool'}", *TINY_RUN,
                   "run.iterations=4", "run.aux_iterations=2"])
    assert status == 0
    staging = generate_calls[generate_calls.index(C.STAGING_START) + 1:generate_calls.index(C.STAGING_STOP)]
    assert staging == ["generate"] * 24  # 12 training and 12 validation events
    assert generate_calls.count("generate") == 24 and C.RUN_START in generate_calls


def test_iotest_names_the_pool(tmp_path, capsys):
    status = main(["mode=iotest", "run.id=io", f"run.output_dir={tmp_path / 'io'}", *TINY_RUN, "run.iterations=30"])
    assert status == 0
    out = capsys.readouterr().out
    assert "prepared by 2 worker threads gathering from a pool of 12 events" in out
    assert "gather from pool" in out and "read and decode" not in out
