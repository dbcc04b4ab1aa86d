"""mode=train: the training loop, the same for every implementation.

Each step runs `gradient_accumulation` micro-batches of `run.minibatch_size`
images and one update; the learning rate is a pure function of the step, the
data order a pure function of (data seed, step), so a run resumed from its
last checkpoint continues exactly as an uninterrupted one would.

Under a benchmark's rules (`benchmark=NAME`) the whole validation set is
evaluated at the definition's cadence, the run stops when the target is
reached (or aborts after the definition's epoch limit), and the MLPerf log
records time-to-train between run_start and run_stop. A benchmark run never
resumes: its run.id with a checkpoint is refused, since time lost to an
interruption would vanish from time-to-train.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, List, Optional

import numpy as np
from omegaconf import DictConfig

from benchmark import metrics
from benchmark.checkpoints import CheckpointRecord, CheckpointStore, require_checkpoint
from benchmark.config.schema import Validation
from benchmark.convert import weights_for
from benchmark.data.sampler import EpochSampler, SequentialSampler
from benchmark.datasets import open_loader, verify_benchmark_dataset
from benchmark.errors import BenchmarkError
from benchmark.implementation import Implementation, StepResult
from benchmark.mlperf_events import load_system_fields, log_hyperparameters, log_submission
from benchmark.mlperf_log import C, MLPerfLog
from benchmark.output import MetricsCSV
from benchmark.profiling import FlameGraph
from benchmark.reporting import Progress, metric_line
from benchmark.rules import get_benchmark
from benchmark.schedule import cadence, learning_rate
from benchmark.session import Session, resolve_seeds, start
from benchmark.throughput import SKIPPED_ITERATIONS, Throughput
from benchmark.parallel.context import SINGLE, Parallel

_METRIC_KEYS = sorted(k for k in metrics.summarize(np.zeros((1, 3, 3, 3), dtype=np.int64)))
# mlperf_log: the invocation that wrote the row; a resumed run appends, so a step can have a row from each (MetricsCSV)
TRAIN_COLUMNS = ["step", "epoch", "learning_rate", "loss", "images_per_second"] + _METRIC_KEYS + ["mlperf_log"]
VALIDATION_COLUMNS = ["step", "events", "loss"] + _METRIC_KEYS + ["mlperf_log"]


class Trainer:
    def __init__(self, session: Session, impl: Implementation, store: CheckpointStore, mlog: MLPerfLog):
        cfg = session.cfg
        self.cfg, self.session, self.impl, self.store, self.mlog = cfg, session, impl, store, mlog
        self.parallel = parallel = session.parallel
        self.accumulation = cfg.mode.optimizer.gradient_accumulation
        self.images_per_step = cfg.run.minibatch_size * self.accumulation
        train = session.source("file")
        self.train_events = len(train)
        self.sampler = EpochSampler(len(train), cfg.run.minibatch_size, seed=cfg.data.seed,
                                    rank=parallel.rank, world_size=parallel.size)
        self.steps_per_epoch = max(self.sampler.batches_per_epoch // self.accumulation, 1)
        self.loader = open_loader(cfg, train, self.sampler)
        self.definition = get_benchmark(cfg.run.benchmark) if cfg.run.benchmark else None
        self.target = self.definition.target if self.definition else None
        self.total_steps, self.eval_every = self._cadence()
        self.validation, self.eval_events = None, 0
        if self.eval_every > 0:
            aux = session.source("aux_file")
            self.eval_events = len(aux)
            if cfg.run.validation == Validation.full:
                aux_sampler = SequentialSampler(len(aux), cfg.run.aux_minibatch_size, parallel.rank, parallel.size)
            else:
                aux_sampler = EpochSampler(len(aux), cfg.run.aux_minibatch_size, seed=cfg.data.seed, shuffle=False,
                                           rank=parallel.rank, world_size=parallel.size)
            self.validation = open_loader(cfg, aux, aux_sampler, workers=1, prefetch=1)
            self.aux_sampler = aux_sampler
        self.train_csv = MetricsCSV(session.directory.file("train_metrics.csv"), TRAIN_COLUMNS, enabled=parallel.is_root)
        self.val_csv = MetricsCSV(session.directory.file("val_metrics.csv"), VALIDATION_COLUMNS, enabled=parallel.is_root)
        self.log_name = os.path.basename(mlog.path) if mlog.path else ""
        self.throughput = Throughput()
        self.reached = False
        self.profile_dir = session.directory.file("profile")

    def _cadence(self):
        """(steps to run, steps between validations): the definition's, in epochs, or the configuration's."""
        if self.target is None:
            return self.cfg.run.iterations, self.cfg.run.aux_iterations
        return cadence(self.definition.max_epochs, self.definition.eval_interval_epochs, self.steps_per_epoch)

    def close(self) -> None:
        self.loader.close()
        if self.validation is not None:
            self.validation.close()

    def epoch_of(self, step: int) -> int:
        """1-based epoch that update `step` (0-based) belongs to."""
        return step // self.steps_per_epoch + 1

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
        """The step's loss and metrics over every rank's events (ranks hold equal shares)."""
        loss = float(np.mean([self.impl.fetch(r.loss) for r in results]))
        confusion = np.concatenate([self.impl.fetch(r.confusion) for r in results])
        comm = self.parallel.comm
        loss = float(comm.allreduce_sum(np.array([loss]))[0]) / comm.size
        return {"loss": loss, **metrics.summarize(np.concatenate(comm.allgather(confusion)))}

    def validate(self, index: int) -> Dict[str, float]:
        """One batch (validation=batch) or every event of the validation file (full), over every rank."""
        batches = range(len(self.aux_sampler)) if self.cfg.run.validation == Validation.full else [index]
        confusions, loss = [], 0.0
        for number in batches:
            batch = self.validation.get(number)
            if batch.batch_size == 0:  # this rank's share of a short last batch
                continue
            result = self.impl.evaluate(batch)
            confusions.append(self.impl.fetch(result.confusion))
            loss += float(self.impl.fetch(result.loss)) * batch.batch_size
        accumulator = metrics.MetricAccumulator()
        for share in self.parallel.comm.allgather(confusions):
            for confusion in share:
                accumulator.add(confusion)
        loss = float(self.parallel.comm.allreduce_sum(np.array([loss]))[0])
        return {"loss": loss / accumulator.count, "events": accumulator.count, **accumulator.summary()}

    def checkpoint(self, done: int) -> None:
        """Rank 0 writes (the ranks hold the same weights); the others wait until it is complete."""
        if self.parallel.is_root:
            path = self.store.path_for(done)
            self.impl.save(path)
            self.store.commit(CheckpointRecord(done, os.path.basename(path), self.cfg.run.seed, self.cfg.data.seed))
        self.parallel.comm.barrier()

    def run(self, first: int) -> None:
        cfg, mlog = self.cfg, self.mlog
        self.train_csv.start()
        self.val_csv.start()
        progress = Progress(self.total_steps, initial=first, description="train", enabled=self.parallel.world_rank == 0)
        profiled = range(first + 2, min(first + 5, self.total_steps))  # a few steps past the warm-up
        window_begin, window_steps, rate = time.perf_counter(), 0, 0.0
        try:
            for step in range(first, self.total_steps):
                done = step + 1
                if step == first or step % self.steps_per_epoch == 0:
                    mlog.start(C.EPOCH_START, epoch_num=self.epoch_of(step))
                logs = done % cfg.mode.logging_iteration == 0 or done == self.total_steps
                ends_epoch = done % self.steps_per_epoch == 0 or done == self.total_steps
                validates = self.validation is not None and done % self.eval_every == 0
                checkpoints = bool(cfg.mode.checkpoint_iteration) and (
                    done % cfg.mode.checkpoint_iteration == 0 or done == self.total_steps)
                # The host waits for the device only where it needs a value or a time stamp, and after each
                # warm-up step (timed alone); other steps are queued behind the running one.
                timed = logs or ends_epoch or validates or checkpoints or step - first < SKIPPED_ITERATIONS \
                    or (cfg.run.profile and step in profiled)
                with self._profiler(step, profiled):
                    results = self.step(step)
                    if timed:  # inside the profiler: a profiled step's trace holds its device work
                        self.impl.synchronize()
                window_steps += 1
                if timed:
                    rate = self.throughput.add(window_steps * self.images_per_step,
                                               time.perf_counter() - window_begin, window_steps)
                    window_steps = 0
                progress.advance(**{"img/s": f"{rate:.2f}"})
                if logs:
                    self._log(step, done, results, progress)
                if ends_epoch:
                    mlog.end(C.EPOCH_STOP, epoch_num=self.epoch_of(step))
                if validates:
                    self._evaluate(done, progress)
                if checkpoints:
                    self.checkpoint(done)
                if self.reached:
                    break
                if timed:  # what ran since the device was waited for (metrics, validation, checkpoint) is not timed
                    window_begin = time.perf_counter()
        finally:
            progress.close()

    def _profiler(self, step: int, profiled: range):
        """The framework profiler around the profiled steps (one trace for all of them)."""
        if not self.cfg.run.profile or step not in profiled:
            return contextlib.nullcontext()
        if step == profiled.start:
            self._profiling = self.impl.profile_steps(self.profile_dir)
            self._profiling.__enter__()
        if step == profiled.stop - 1:
            return _Exit(self._profiling)
        return contextlib.nullcontext()

    def _evaluate(self, done: int, progress: Progress) -> None:
        epoch = done * self.images_per_step / self.train_events
        self.mlog.start(C.EVAL_START, epoch_num=epoch)
        values = self.validate(done // self.eval_every - 1)
        self.mlog.end(C.EVAL_STOP, epoch_num=epoch)
        self.mlog.event(
            C.EVAL_ACCURACY, values["Average/mIoU"], epoch_num=epoch, step_num=done,
            cosmic_iou=values["Average/Cosmic_IoU"], neutrino_iou=values["Average/Neutrino_IoU"],
            non_bkg_accuracy=values["Average/Non_Bkg_Accuracy"],
        )
        self.mlog.event("tracked_stats", {"throughput": self.throughput.steady_state()}, step_num=done, epoch_num=epoch)
        self.val_csv.append({"step": done, **values, "mlperf_log": self.log_name})
        what = "validation" if self.cfg.run.validation == Validation.batch else f"validation ({values['events']} events)"
        progress.print(metric_line(f"{what} after step {done}", values["loss"], values))
        if self.target is not None and self.target.reached(values):
            self.reached = True
            progress.print(f"target reached after step {done} (epoch {epoch:.2f}): {self.target.describe()}")

    def _log(self, step: int, done: int, results: List[StepResult], progress: Progress) -> None:
        values = self.summarize(results)
        epoch = done * self.images_per_step / self.train_events
        rate_lr = learning_rate(step, self.cfg.mode.optimizer, self.images_per_step, self.train_events)
        window = self.throughput.window(self.cfg.mode.logging_iteration)
        row = {"step": done, "epoch": epoch, "learning_rate": rate_lr, "images_per_second": window, **values,
               "mlperf_log": self.log_name}
        self.train_csv.append(row)
        prefix = f"step {done}/{self.total_steps}  epoch {epoch:.3f}  lr {rate_lr:.3g}"
        progress.print(metric_line(prefix, values["loss"], values, {"img/s": f"{window:.2f}"}))

    def status(self, completed: bool) -> str:
        """MLPerf run status: success only when the target was reached (or, without one, all steps ran)."""
        if self.target is not None:
            return C.SUCCESS if self.reached else C.ABORTED
        return C.SUCCESS if completed else C.ABORTED


class _Exit:
    """Leaves an already-entered context when the `with` block ends."""

    def __init__(self, context):
        self.context = context

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self.context.__exit__(*exc_info)


def run(cfg: DictConfig, parallel: Parallel = SINGLE) -> int:
    session = start(cfg, parallel)
    store = CheckpointStore(session.directory.checkpoints, suffix=".pt")
    record = store.latest()
    if record is not None and cfg.run.benchmark:
        raise BenchmarkError(
            f"{store.latest_path()}: run.id={cfg.run.id} has a checkpoint (after step {record.step}), and a "
            f"benchmark={cfg.run.benchmark} run never resumes: its time-to-train has one clock, and the time lost to "
            f"the interruption would not count; use a new run.id")
    if record is not None:
        # Continue with the seeds the run started with, whatever was given now.
        cfg.run.seed, cfg.data.seed = record.run_seed, record.data_seed
    if record is None and cfg.mode.weights_location:
        require_checkpoint(cfg.mode.weights_location)  # before the run folder is made
    resolve_seeds(cfg, parallel)
    system = load_system_fields(cfg)
    session.create_directory()
    mlog = MLPerfLog(session.directory.unused("mlperf.log")[0] if parallel.is_root else None)
    mlog.event(C.CACHE_CLEAR, os.environ.get("COSMICTAGGER_CACHE_CLEARED", "0") == "1")
    mlog.start(C.INIT_START)
    session.print_config()
    session.save_config()
    impl = session.implementation()
    store.suffix = impl.checkpoint_suffix()
    log_submission(mlog, cfg, system, impl.name)
    first = _restore(cfg, impl, store, record, parallel)
    if first is None:
        mlog.close()
        return 0
    mlog.start(C.STAGING_START)
    if cfg.run.benchmark:
        verify_benchmark_dataset(cfg, get_benchmark(cfg.run.benchmark))
    trainer = Trainer(session, impl, store, mlog)
    mlog.end(C.STAGING_STOP)
    accelerators = parallel.local_size if impl.uses_accelerator() else 0  # one per rank
    log_hyperparameters(mlog, cfg, parallel, accelerators, trainer.train_events, trainer.eval_events)
    if trainer.target is not None:
        print(f"benchmark {cfg.run.benchmark}: target {trainer.target.describe()} on {trainer.eval_events} validation "
              f"events every {trainer.eval_every} steps, at most {trainer.total_steps} steps", flush=True)
    flame = None
    if cfg.run.profile:
        os.makedirs(trainer.profile_dir, exist_ok=True)
        flame = FlameGraph(os.path.join(trainer.profile_dir, "flamegraph.svg"))
        flame.start()
    mlog.end(C.INIT_STOP)
    mlog.start(C.RUN_START)
    run_begin = time.time()
    completed = False
    try:
        trainer.run(first)
        completed = True
    finally:
        if flame is not None:
            flame.stop()
        trainer.close()
        status = trainer.status(completed)
        mlog.event("tracked_stats", {"throughput": trainer.throughput.steady_state()}, step_num=trainer.total_steps)
        mlog.end(C.RUN_STOP, status=status)
        mlog.close()
    print(trainer.throughput.report(), flush=True)
    print(f"peak memory: {impl.peak_memory_bytes() / 2**30:.2f} GiB on {impl.device_description()}", flush=True)
    if trainer.target is not None:
        print(f"time to train: {(time.time() - run_begin) / 60:.2f} minutes, status {status}", flush=True)
    print(f"MLPerf log: {mlog.path}", flush=True)
    if flame is not None:
        traces = sorted(name for name in os.listdir(trainer.profile_dir) if not name.startswith("flamegraph.svg"))
        print(f"profile: {trainer.profile_dir}/ (flamegraph.svg by py-spy; {', '.join(traces) or 'nothing'} "
              f"by {impl.name}'s profiler)", flush=True)
    return 0


def _restore(cfg: DictConfig, impl: Implementation, store: CheckpointStore, record, parallel: Parallel) -> Optional[int]:
    """The first step to run, after restoring a checkpoint; None when the run is already complete."""
    first = 0
    if record is not None:
        impl.load(store.latest_path())
        first = record.step
        print(f"resuming from {store.latest_path()} after step {first}", flush=True)
    elif cfg.mode.weights_location:
        weights = weights_for(cfg, cfg.mode.weights_location, store.directory, parallel)
        impl.load(weights, weights_only=True)
        print(f"starting from the weights in {weights}", flush=True)
    if first >= cfg.run.iterations and not cfg.run.benchmark:
        print(f"run {cfg.run.id} has already completed {first} steps (run.iterations={cfg.run.iterations}); nothing to do")
        return None
    return first
