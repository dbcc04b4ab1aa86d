"""mode=inference: every event of `data.file` once, a report over all events, a per-event CSV.

A run folder keeps every inference's files: a second inference of the same
run.id writes predictions.1.h5, inference_events.1.csv and
inference_report.1.json (numbered together, as the MLPerf logs are).
"""
from __future__ import annotations

import json
import time

import numpy as np
from omegaconf import DictConfig

from benchmark import metrics
from benchmark.checkpoints import CheckpointStore, require_checkpoint
from benchmark.convert import weights_for
from benchmark.datasets import open_loader
from benchmark.data.predictions import PREDICTION_PRODUCER, PredictionWriter
from benchmark.data.sampler import SequentialSampler
from benchmark.errors import BenchmarkError
from benchmark.output import MetricsCSV
from benchmark.reporting import Progress
from benchmark.session import resolve_seeds, start
from benchmark.throughput import Throughput
from benchmark.parallel.context import SINGLE, Parallel

OUTPUTS = ("predictions.h5", "inference_events.csv", "inference_report.json")


def _weights(cfg: DictConfig, store: CheckpointStore) -> str:
    if cfg.mode.weights_location:
        return require_checkpoint(cfg.mode.weights_location)
    path = store.latest_path()
    if path is None:
        raise BenchmarkError(
            f"inference needs weights: set mode.weights_location, or train run.id={cfg.run.id} first "
            f"(no checkpoint in {store.directory})"
        )
    return path


def run(cfg: DictConfig, parallel: Parallel = SINGLE) -> int:
    session = start(cfg, parallel)
    store = CheckpointStore(session.directory.checkpoints, suffix="")
    weights = _weights(cfg, store)
    resolve_seeds(cfg, parallel)
    session.create_directory()
    session.print_config()
    session.save_config()
    impl = session.implementation()
    weights = weights_for(cfg, weights, session.directory.checkpoints, parallel)
    impl.load(weights, weights_only=True)
    print(f"weights: {weights}", flush=True)

    source = session.source("file")
    sampler = SequentialSampler(len(source), cfg.run.minibatch_size, parallel.rank, parallel.size)
    accumulator = metrics.MetricAccumulator()
    entries, losses = [], []
    throughput = Throughput()
    progress = Progress(len(sampler), description="inference", enabled=parallel.world_rank == 0)
    writer = None
    if parallel.is_root:
        prediction_path, events_path, report_path = session.directory.unused(*OUTPUTS)
        writer = PredictionWriter(prediction_path, source.full_shape, cfg.data.downsample)
    with open_loader(cfg, source, sampler) as loader:
        for index in range(len(sampler)):
            begin = time.perf_counter()
            batch = loader.get(index)
            share = _evaluate(impl, batch)
            # every rank's share, in rank order: together the global batch, each event once
            shares = parallel.comm.allgather(share[:3])
            throughput.add(sum(len(s[0]) for s in shares), time.perf_counter() - begin)
            for share_entries, confusion, loss in shares:
                if len(share_entries):
                    accumulator.add(confusion)
                    losses.append(loss)
                    entries.append(share_entries)
            # Outside the timed region: predictions go back to every full-resolution voxel, written by rank 0.
            for share_entries, predicted in _predictions(parallel, share):
                for event_entry, event_prediction in zip(share_entries, predicted):
                    writer.add(source.read(int(event_entry)), event_prediction)
            progress.advance()
    progress.close()
    if writer is not None:
        writer.close()
    if not parallel.is_root:
        return 0

    summary = accumulator.summary()
    mean_loss = sum(losses) / accumulator.count
    _write_events(events_path, np.concatenate(entries), accumulator.per_event())
    with open(report_path, "w") as handle:
        json.dump({"events": accumulator.count, "weights": weights, "loss": mean_loss, **summary}, handle, indent=1)
    print(f"-- INFERENCE REPORT -- {accumulator.count} events of {cfg.data.file if not cfg.data.synthetic else 'synthetic data'}")
    print(f"  {'loss'.ljust(26)}: {mean_loss:.5f}")
    for key in sorted(summary):
        print(f"  {key.ljust(26)}: {summary[key]:.5f}")
    print(f"predictions: {prediction_path} (larcv3; product {PREDICTION_PRODUCER})")
    print(f"per-event metrics: {events_path}; report: {report_path}")
    print(throughput.report(), flush=True)
    return 0


def _evaluate(impl, batch):
    """(entries, confusion, loss x events, predictions) of this rank's share; empty arrays for an empty share."""
    if batch.batch_size == 0:
        return batch.entries, np.zeros((0, 3, 3, 3), np.int64), 0.0, np.zeros((0, 3, *batch.image_shape), np.uint8)
    result = impl.evaluate(batch, with_predictions=True)
    return (batch.entries, impl.fetch(result.confusion), float(impl.fetch(result.loss)) * batch.batch_size,
            impl.fetch(result.predictions))


def _predictions(parallel: Parallel, share):
    """On rank 0, every rank's (entries, predictions) in rank order; nothing elsewhere."""
    return parallel.comm.gather((share[0], share[3]))


def _write_events(path: str, entries: np.ndarray, per_event: dict) -> None:
    """One row per event: its entry and every metric, per plane and averaged."""
    columns = ["entry"] + [f"plane{p}/{name}" for name in metrics.METRIC_NAMES for p in range(3)]
    columns += [f"Average/{name}" for name in metrics.METRIC_NAMES]
    table = MetricsCSV(path, columns)
    table.start()
    for row, entry in enumerate(entries):
        values = {"entry": int(entry)}
        for name in metrics.METRIC_NAMES:
            planes = per_event[name][row]
            values.update({f"plane{p}/{name}": float(planes[p]) for p in range(3)})
            values[f"Average/{name}"] = float(np.mean(planes))
        table.append(values)
