"""mode=train: the training loop, the same for every implementation.

Each step runs `gradient_accumulation` micro-batches of `run.minibatch_size`
images and one update; the learning rate is a pure function of the step, the
data order a pure function of (data seed, step), so a run resumed from its
last checkpoint continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import time
from typing import Dict, List

import numpy as np
from omegaconf import DictConfig

from benchmark import metrics
from benchmark.checkpoints import CheckpointRecord, CheckpointStore
from benchmark.datasets import open_loader
from benchmark.data.sampler import EpochSampler
from benchmark.implementation import Implementation, StepResult
from benchmark.output import MetricsCSV
from benchmark.reporting import Progress, metric_line
from benchmark.schedule import learning_rate
from benchmark.session import Session, resolve_seeds, start
from benchmark.throughput import Throughput

_METRIC_KEYS = sorted(k for k in metrics.summarize(np.zeros((1, 3, 3, 3), dtype=np.int64)))
TRAIN_COLUMNS = ["step", "epoch", "learning_rate", "loss", "images_per_second"] + _METRIC_KEYS
VALIDATION_COLUMNS = ["step", "events", "loss"] + _METRIC_KEYS


class Trainer:
    def __init__(self, session: Session, impl: Implementation, store: CheckpointStore):
        cfg = session.cfg
        self.cfg, self.session, self.impl, self.store = cfg, session, impl, store
        self.accumulation = cfg.mode.optimizer.gradient_accumulation
        self.images_per_step = cfg.run.minibatch_size * self.accumulation
        train = session.source("file")
        self.train_events = len(train)
        sampler = EpochSampler(len(train), cfg.run.minibatch_size, seed=cfg.data.seed)
        self.loader = open_loader(cfg, train, sampler)
        self.validation = None
        if cfg.run.aux_iterations > 0:
            aux = session.source("aux_file")
            aux_sampler = EpochSampler(len(aux), cfg.run.aux_minibatch_size, seed=cfg.data.seed, shuffle=False)
            self.validation = open_loader(cfg, aux, aux_sampler, workers=1, prefetch=1)
        self.train_csv = MetricsCSV(session.directory.file("train_metrics.csv"), TRAIN_COLUMNS)
        self.val_csv = MetricsCSV(session.directory.file("val_metrics.csv"), VALIDATION_COLUMNS)
        self.throughput = Throughput()

    def close(self) -> None:
        self.loader.close()
        if self.validation is not None:
            self.validation.close()

    def step(self, step: int) -> List[StepResult]:
        """One update: `accumulation` micro-batches, then the optimizer."""
        rate = learning_rate(step, self.cfg.mode.optimizer, self.images_per_step, self.train_events)
        results = []
        for micro in range(self.accumulation):
            batch = self.loader.get(step * self.accumulation + micro)
            results.append(self.impl.accumulate(batch, 1.0 / self.accumulation))
        self.impl.apply_update(rate)
        return results

    def summarize(self, results: List[StepResult]) -> Dict[str, float]:
        loss = float(np.mean([self.impl.fetch(r.loss) for r in results]))
        confusion = np.concatenate([self.impl.fetch(r.confusion) for r in results])
        return {"loss": loss, **metrics.summarize(confusion)}

    def validate(self, index: int) -> Dict[str, float]:
        batch = self.validation.get(index)
        result = self.impl.evaluate(batch)
        confusion = self.impl.fetch(result.confusion)
        return {"loss": float(self.impl.fetch(result.loss)), "events": batch.batch_size, **metrics.summarize(confusion)}

    def checkpoint(self, done: int) -> None:
        path = self.store.path_for(done)
        self.impl.save(path)
        self.store.commit(CheckpointRecord(done, path.rsplit("/", 1)[-1], self.cfg.run.seed, self.cfg.data.seed))

    def run(self, first: int) -> None:
        cfg = self.cfg
        total = cfg.run.iterations
        self.train_csv.start(first)
        self.val_csv.start(first)
        progress = Progress(total, initial=first, description="train")
        try:
            for step in range(first, total):
                done = step + 1
                begin = time.perf_counter()
                results = self.step(step)
                self.impl.synchronize()
                rate = self.throughput.add(self.images_per_step, time.perf_counter() - begin)
                progress.advance(**{"img/s": f"{rate:.2f}"})
                if done % cfg.mode.logging_iteration == 0 or done == total:
                    self._log(step, done, results, rate, progress)
                if self.validation is not None and done % cfg.run.aux_iterations == 0:
                    values = self.validate(done // cfg.run.aux_iterations - 1)
                    self.val_csv.append({"step": done, **values})
                    progress.print(metric_line(f"validation after step {done}", values["loss"], values))
                if cfg.mode.checkpoint_iteration and (done % cfg.mode.checkpoint_iteration == 0 or done == total):
                    self.checkpoint(done)
        finally:
            progress.close()

    def _log(self, step: int, done: int, results: List[StepResult], rate: float, progress: Progress) -> None:
        values = self.summarize(results)
        epoch = done * self.images_per_step / self.train_events
        rate_lr = learning_rate(step, self.cfg.mode.optimizer, self.images_per_step, self.train_events)
        row = {"step": done, "epoch": epoch, "learning_rate": rate_lr, "images_per_second": rate, **values}
        self.train_csv.append(row)
        window = self.throughput.window(self.cfg.mode.logging_iteration)
        prefix = f"step {done}/{self.cfg.run.iterations}  epoch {epoch:.3f}  lr {rate_lr:.3g}"
        progress.print(metric_line(prefix, values["loss"], values, {"img/s": f"{window:.2f}"}))


def run(cfg: DictConfig) -> int:
    session = start(cfg)
    store = CheckpointStore(session.directory.checkpoints, suffix=".pt")
    record = store.latest()
    if record is not None:
        # Continue with the seeds the run started with, whatever was given now.
        cfg.run.seed, cfg.data.seed = record.run_seed, record.data_seed
    resolve_seeds(cfg)
    session.directory.create()
    session.print_config()
    session.save_config()
    impl = session.implementation()
    store.suffix = impl.checkpoint_suffix()
    first = 0
    if record is not None:
        impl.load(store.latest_path())
        first = record.step
        print(f"resuming from {store.latest_path()} after step {first}", flush=True)
    elif cfg.mode.weights_location:
        impl.load(cfg.mode.weights_location, weights_only=True)
        print(f"starting from the weights in {cfg.mode.weights_location}", flush=True)
    if first >= cfg.run.iterations:
        print(f"run {cfg.run.id} has already completed {first} steps (run.iterations={cfg.run.iterations}); nothing to do")
        return 0
    trainer = Trainer(session, impl, store)
    try:
        trainer.run(first)
    finally:
        trainer.close()
    print(trainer.throughput.report(), flush=True)
    print(f"peak memory: {impl.peak_memory_bytes() / 2**30:.2f} GiB on {impl.device_description()}", flush=True)
    return 0
