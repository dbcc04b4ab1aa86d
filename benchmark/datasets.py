"""The event sources a run reads: synthetic streams or larcv3 files.

Synthetic data stands in for the real dataset with its sizes (43,075
training and 7,362 validation events, the published counts), unless
`data.synthetic_events` sets another size; each split has its own stream.
Each split's first `data.synthetic_pool` events are made when the source is
opened (during staging, before run_start) and cycled, so that batches cost
a gather: the throughput benchmark then measures the accelerator, not the
host that generates its input.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Tuple

from omegaconf import DictConfig

from benchmark.data.source import EventSource
from benchmark.errors import DataError

if TYPE_CHECKING:  # the loader starts threads; import it only where one is opened
    from benchmark.data.pipeline import Loader

SBND_SHAPE: Tuple[int, int] = (1280, 2048)  # rows (drift time) x columns (wires) per plane
REAL_TRAIN_EVENTS, REAL_VALIDATION_EVENTS = 43_075, 7_362
_STREAMS = {"file": 0, "aux_file": 1}


def open_source(cfg: DictConfig, which: str) -> EventSource:
    """`which` is "file" (training, or what inference evaluates) or "aux_file" (validation: its first
    `data.aux_events` events when that is set)."""
    source = _open_whole(cfg, which)
    if which == "aux_file" and cfg.data.aux_events:
        from benchmark.data.subset import FirstEvents

        return FirstEvents(source, cfg.data.aux_events)
    return source


def _open_whole(cfg: DictConfig, which: str) -> EventSource:
    if cfg.data.synthetic:
        from benchmark.data.synthetic import SyntheticSource

        default = REAL_TRAIN_EVENTS if which == "file" else REAL_VALIDATION_EVENTS
        events = cfg.data.synthetic_events or default
        # Distinct seeds per split, so validation events are not training events.
        source = SyntheticSource(events, seed=cfg.data.seed * 2 + _STREAMS[which], full_shape=SBND_SHAPE)
        if not cfg.data.synthetic_pool:
            return source
        from benchmark.data.pool import EventPool

        return EventPool(source, min(cfg.data.synthetic_pool, events), cfg.data.downsample, workers=cfg.data.workers)
    path = os.path.join(cfg.data.data_directory, cfg.data[which])
    if not os.path.exists(path):
        raise DataError(f"data.{which}: {path} does not exist (set data.data_directory, or data.synthetic=true)")
    from benchmark.data.larcv import LarcvSource

    return LarcvSource(path)


def full_shape_for_sizing(cfg: DictConfig) -> Tuple[int, int]:
    """The plane shape to size a network for, without requiring the dataset."""
    if cfg.data.synthetic:
        return SBND_SHAPE
    path = os.path.join(cfg.data.data_directory, cfg.data.file)
    if os.path.exists(path):
        return open_source(cfg, "file").full_shape
    return SBND_SHAPE


def open_loader(cfg: DictConfig, source: EventSource, sampler, **overrides) -> "Loader":
    """A Loader with the run's data settings (`overrides` win, e.g. workers=1 for validation)."""
    from benchmark.data.pipeline import Loader

    options = {
        "downsample": cfg.data.downsample,
        "workers": cfg.data.workers,
        "processes": cfg.data.worker_processes,
        "prefetch": 2 * cfg.data.workers,  # keep every worker busy while a step runs
        "max_voxels": cfg.data.max_voxels,
    }
    options.update(overrides)
    return Loader(source, sampler, **options)


def verify_benchmark_dataset(cfg: DictConfig, definition) -> None:
    """The files a benchmark definition names: present, with its event counts and checksums."""
    from benchmark.data.dataset import sha256

    if definition.dataset is None:
        return
    for spec in (definition.dataset.train, definition.dataset.validation):
        path = os.path.join(cfg.data.data_directory, spec.name)
        if not os.path.exists(path):
            raise DataError(f"{path}: missing; the {definition.name} benchmark needs {spec.name} ({spec.events} events)")
        from benchmark.data.larcv import LarcvSource

        events = len(LarcvSource(path))
        if events != spec.events:
            raise DataError(f"{path}: {events} events, but the {definition.name} benchmark defines {spec.events}")
        if spec.sha256 is not None and sha256(path) != spec.sha256:
            raise DataError(f"{path}: sha256 does not match the {definition.name} benchmark's definition")


def generated_dataset_folder(name: str) -> str:
    """Where run_benchmark.sh and convergence studies keep a benchmark's generated dataset (made once):
    .cache/datasets/<name>-v<generator version>-seed<seed> in the repository, so a changed definition gets a new one."""
    from benchmark.rules import get_benchmark

    dataset = get_benchmark(name).dataset
    if dataset is None or dataset.generated is None:
        raise DataError(f"the {name} benchmark does not use a generated dataset")
    generated = dataset.generated
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repository, ".cache", "datasets",
                        f"{name}-v{generated['generator_version']}-seed{generated['seed']}")


def generate_benchmark_dataset(name: str, out: str) -> None:
    """Generate the dataset a benchmark definition describes (its seed, counts and compression)."""
    from benchmark.data.dataset import generate
    from benchmark.rules import get_benchmark

    dataset = get_benchmark(name).dataset
    if dataset is None or dataset.generated is None:
        raise DataError(f"the {name} benchmark does not use a generated dataset")
    counts = {"train": dataset.train.events, "val": dataset.validation.events, "test": dataset.test.events}
    generated = dataset.generated
    generate(out, counts, int(generated["seed"]), compression=generated.get("compression"))
