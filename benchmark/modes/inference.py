"""mode=inference: every event of `data.file` once, a report over all events, a per-event CSV."""
from __future__ import annotations

import json
import time

import numpy as np
from omegaconf import DictConfig

from benchmark import metrics
from benchmark.checkpoints import CheckpointStore
from benchmark.convert import weights_for
from benchmark.datasets import open_loader
from benchmark.data.predictions import PREDICTION_PRODUCER, PredictionWriter
from benchmark.data.sampler import SequentialSampler
from benchmark.errors import BenchmarkError
from benchmark.output import MetricsCSV
from benchmark.reporting import Progress
from benchmark.session import resolve_seeds, start
from benchmark.throughput import Throughput


def _weights(cfg: DictConfig, store: CheckpointStore) -> str:
    if cfg.mode.weights_location:
        return cfg.mode.weights_location
    path = store.latest_path()
    if path is None:
        raise BenchmarkError(
            f"inference needs weights: set mode.weights_location, or train run.id={cfg.run.id} first "
            f"(no checkpoint in {store.directory})"
        )
    return path


def run(cfg: DictConfig) -> int:
    session = start(cfg)
    store = CheckpointStore(session.directory.checkpoints, suffix="")
    weights = _weights(cfg, store)
    resolve_seeds(cfg)
    session.directory.create()
    session.print_config()
    session.save_config()
    impl = session.implementation()
    weights = weights_for(cfg, weights, session.directory.checkpoints)
    impl.load(weights, weights_only=True)
    print(f"weights: {weights}", flush=True)

    source = session.source("file")
    sampler = SequentialSampler(len(source), cfg.run.minibatch_size)
    accumulator = metrics.MetricAccumulator()
    entries, losses = [], []
    throughput = Throughput()
    progress = Progress(len(sampler), description="inference")
    prediction_path = session.directory.file("predictions.h5")
    writer = PredictionWriter(prediction_path, source.full_shape, cfg.data.downsample)
    with open_loader(cfg, source, sampler) as loader:
        for index in range(len(sampler)):
            begin = time.perf_counter()
            batch = loader.get(index)
            result = impl.evaluate(batch, with_predictions=True)
            confusion = impl.fetch(result.confusion)
            throughput.add(batch.batch_size, time.perf_counter() - begin)
            accumulator.add(confusion)
            losses.append(float(impl.fetch(result.loss)) * batch.batch_size)
            entries.append(batch.entries)
            # Outside the timed region: predictions go back to every full-resolution voxel.
            for event_entry, predicted in zip(batch.entries, impl.fetch(result.predictions)):
                writer.add(source.read(int(event_entry)), predicted)
            progress.advance()
    progress.close()
    writer.close()

    summary = accumulator.summary()
    mean_loss = sum(losses) / accumulator.count
    _write_events(session.directory.file("inference_events.csv"), np.concatenate(entries), accumulator.per_event())
    with open(session.directory.file("inference_report.json"), "w") as handle:
        json.dump({"events": accumulator.count, "weights": weights, "loss": mean_loss, **summary}, handle, indent=1)
    print(f"-- INFERENCE REPORT -- {accumulator.count} events of {cfg.data.file if not cfg.data.synthetic else 'synthetic data'}")
    print(f"  {'loss'.ljust(26)}: {mean_loss:.5f}")
    for key in sorted(summary):
        print(f"  {key.ljust(26)}: {summary[key]:.5f}")
    print(f"predictions: {prediction_path} (larcv3; product {PREDICTION_PRODUCER})")
    print(throughput.report(), flush=True)
    return 0


def _write_events(path: str, entries: np.ndarray, per_event: dict) -> None:
    """One row per event: its entry and every metric, per plane and averaged."""
    columns = ["entry"] + [f"plane{p}/{name}" for name in metrics.METRIC_NAMES for p in range(3)]
    columns += [f"Average/{name}" for name in metrics.METRIC_NAMES]
    table = MetricsCSV(path, columns)
    table.start(0)
    for row, entry in enumerate(entries):
        values = {"entry": int(entry)}
        for name in metrics.METRIC_NAMES:
            planes = per_event[name][row]
            values.update({f"plane{p}/{name}": float(planes[p]) for p in range(3)})
            values[f"Average/{name}"] = float(np.mean(planes))
        table.append(values)
