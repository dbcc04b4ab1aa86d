"""Running a study's seeds: one bin/exec.py process per seed, published when it ends, never overwritten.

The study folder DIR:

    study.json             what the study runs (StudySpec); a later start must ask for the same
    runs/seed-S/           a finished run: the run's output folder (mlperf.log, config.yaml, metric CSVs,
                           checkpoints) plus console.log (what it printed) and record.json, renamed here from
                           running/ in one step once the run ended; never written again
    running/seed-S/        a run in progress
    interrupted/seed-S.K/  what an interrupted run left, kept aside at the next start; the seed is run again
                           from scratch (a benchmark run never resumes)
    failed/seed-S.K/       a run that exited with an error or without run_stop, kept for inspection; the study
                           stops starting seeds, and the seed is run again at the next start
    .lock                  held by the study and the runs it started: one study at a time in DIR

A run has ended when bin/exec.py exited with status 0 and its MLPerf log has run_stop (success, or aborted
at the definition's epoch limit: an honest miss, published and reported as not reaching the target).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from benchmark.convergence import records
from benchmark.convergence.spec import EXEC, StudyPlan, StudySpec
from benchmark.durable import fsync_path, publish_folder, published
from benchmark.errors import BenchmarkError, ConfigError

SPEC = "study.json"
LOCK = ".lock"
CONSOLE = "console.log"
SEED_FOLDER = re.compile(r"^seed-(\d+)$")
POLL_S = 0.5  # how often running seeds are looked at; their clocks are their own
STOP_WAIT_S = 60  # an interrupted run's grace to log run_stop and exit


class StudyFolder:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def sub(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def stored_spec(self) -> Optional[StudySpec]:
        path = self.sub(SPEC)
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as handle:
                return StudySpec.from_json(json.load(handle))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchmarkError(f"{path}: not a readable study description ({exc})") from None

    def check(self, spec: StudySpec) -> None:
        """Refuse, writing nothing, a folder that holds something other than this study."""
        if not os.path.exists(self.path):
            return
        if not os.path.isdir(self.path):
            raise ConfigError(f"--out {self.path}: exists and is not a folder")
        stored = self.stored_spec()
        if stored is None and set(os.listdir(self.path)) - {LOCK}:
            raise ConfigError(f"--out {self.path}: not empty and holds no {SPEC}; use a new folder for a study")
        if stored is not None and _identity(stored) != _identity(spec):
            raise ConfigError(f"--out {self.path} holds another study ({stored.describe()}); this one is "
                              f"{spec.describe()}: use another folder")

    @contextlib.contextmanager
    def locked(self) -> Iterator[int]:
        """The lock's descriptor, held (and passed to every run) while the block runs."""
        os.makedirs(self.path, exist_ok=True)
        descriptor = os.open(self.sub(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BenchmarkError(f"{self.path}: another study, or a run it started, is running there") from None
            yield descriptor
        finally:
            os.close(descriptor)

    def claim(self, spec: StudySpec) -> None:
        for folder in ("runs", "running", "interrupted", "failed"):
            os.makedirs(self.sub(folder), exist_ok=True)
        if self.stored_spec() is None:
            with published(self.sub(SPEC)) as temporary, open(temporary, "w") as handle:
                json.dump(spec.to_json(), handle, indent=1)
                handle.write("\n")

    def finished(self) -> Dict[int, str]:
        """Seed -> folder of every finished run."""
        return _seed_folders(self.sub("runs"))

    def keep_aside_leftovers(self) -> None:
        for seed, path in sorted(_seed_folders(self.sub("running")).items()):
            kept = self.aside(path, "interrupted", seed)
            print(f"seed {seed}: an interrupted run's folder is kept as {kept}; the seed runs again from scratch",
                  flush=True)

    def aside(self, path: str, kind: str, seed: int) -> str:
        index = 1
        while os.path.exists(target := self.sub(kind, f"seed-{seed}.{index}")):
            index += 1
        os.replace(path, target)
        return target

    def publish(self, seed: int, record: records.RunRecord) -> str:
        """Write record.json into the run's folder, flush it all and rename it into runs/ in one step."""
        source, target = self.sub("running", f"seed-{seed}"), self.sub("runs", f"seed-{seed}")
        records.save(record, os.path.join(source, records.RECORD))
        for folder, _, names in os.walk(source):
            for name in names:
                fsync_path(os.path.join(folder, name))
            fsync_path(folder)
        if os.path.exists(target):  # only a second study could have put it there, and the lock prevents that
            raise BenchmarkError(f"{target} exists: a finished run is never overwritten")
        publish_folder(source, target)
        return target


def _identity(spec: StudySpec) -> Dict[str, object]:
    """What two starts of a study must agree on; the dataset's folder may move (runs verify the data)."""
    values = spec.to_json()
    values.pop("data_directory")
    return values


def _seed_folders(folder: str) -> Dict[int, str]:
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in os.listdir(folder):
        match = SEED_FOLDER.match(name)
        if match:
            found[int(match.group(1))] = os.path.join(folder, name)
    return found


@dataclass
class _Running:
    seed: int
    process: subprocess.Popen
    console: object
    command: List[str]


def run_study(plan: StudyPlan, out: str, seeds: Sequence[int], parallel: int = 1,
              program: Sequence[str] = (sys.executable, EXEC)) -> List[int]:
    """Run every seed of `seeds` that has no finished run in `out`; returns the seeds finished now.

    Raises BenchmarkError after the running seeds ended if a run failed (later seeds are not started), and
    KeyboardInterrupt (also for SIGTERM) once the running seeds were told to stop."""
    folder = StudyFolder(out)
    folder.check(plan.spec)
    plan.prepare()
    with folder.locked() as lock, _interrupted_by_sigterm():
        folder.claim(plan.spec)
        folder.keep_aside_leftovers()
        finished = folder.finished()
        skipped = [seed for seed in seeds if seed in finished]
        if skipped:
            print(f"seeds {', '.join(map(str, skipped))}: finished before, skipped", flush=True)
        todo = [seed for seed in seeds if seed not in finished]
        return _Scheduler(plan, folder, parallel, program, lock).run(todo)


class _Scheduler:
    def __init__(self, plan: StudyPlan, folder: StudyFolder, parallel: int, program: Sequence[str], lock: int):
        self.plan, self.folder, self.program, self.lock = plan, folder, list(program), lock
        self.parallel = parallel
        self.slots = core_slots(parallel)
        self.active: Dict[int, _Running] = {}  # slot -> run
        self.done: List[int] = []
        self.failures: List[str] = []

    def run(self, todo: List[int]) -> List[int]:
        pending = list(todo)
        try:
            while pending or self.active:
                while pending and len(self.active) < self.parallel and not self.failures:
                    slot = min(set(range(self.parallel)) - set(self.active))
                    self.active[slot] = self._launch(pending.pop(0), slot)
                if not self.active:  # a run failed before the others: nothing left to wait for
                    break
                time.sleep(POLL_S)
                for slot, running in list(self.active.items()):
                    if running.process.poll() is not None:
                        del self.active[slot]
                        self._ended(running)
        except BaseException:  # Ctrl-C, SIGTERM or an error here: no run goes on unwatched
            self._stop_all()
            raise
        if self.failures:
            raise BenchmarkError("; ".join(self.failures) + " (the study stopped starting seeds; the next start "
                                 "runs the failed and the remaining seeds)")
        return self.done

    def _launch(self, seed: int, slot: int) -> _Running:
        folder = self.folder.sub("running", f"seed-{seed}")
        os.makedirs(folder)
        cores = self.slots[slot]
        threads = (len(cores), 1) if self.parallel > 1 else None
        command = self.plan.command(seed, folder, self.program, threads)
        console = open(os.path.join(folder, CONSOLE), "wb")
        pin = (lambda: os.sched_setaffinity(0, cores)) if self.parallel > 1 else None
        # The lock goes with the run: a study started while an orphaned run still writes here is refused.
        process = subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   pass_fds=(self.lock,), preexec_fn=pin)
        where = f" on cores {','.join(map(str, cores))}" if self.parallel > 1 else ""
        print(f"seed {seed}: started{where}, output {os.path.join(folder, CONSOLE)}", flush=True)
        return _Running(seed, process, console, command)

    def _ended(self, running: _Running) -> None:
        running.console.close()
        seed, status = running.seed, running.process.returncode
        folder = self.folder.sub("running", f"seed-{seed}")
        log = os.path.join(folder, records.LOG)
        record, problem = None, "its MLPerf log has no run_stop"
        try:
            record = records.from_log(log, seed) if os.path.isfile(log) else None
        except BenchmarkError as exc:  # a malformed log
            problem = str(exc)
        if status != 0 or record is None:
            kept = self.folder.aside(folder, "failed", seed)
            why = f"exit status {status}" if status != 0 else problem
            self.failures.append(f"seed {seed} failed ({why}: {_last_line(os.path.join(kept, CONSOLE))}); "
                                 f"its folder is kept as {kept}")
            print(f"seed {seed}: failed ({why}), kept as {kept}", flush=True)
            return
        record.parallel, record.command = self.parallel, running.command
        published_as = self.folder.publish(seed, record)
        self.done.append(seed)
        print(f"seed {seed}: {describe(record)} -> {published_as}", flush=True)

    def _stop_all(self) -> None:
        """Interrupt the running seeds (they log run_stop and exit) and wait; their folders stay in running/."""
        for running in self.active.values():
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_WAIT_S
        for running in self.active.values():
            try:
                running.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            running.console.close()


def describe(record: records.RunRecord) -> str:
    last = f"epoch {record.evaluations[-1].epoch:.2f}" if record.evaluations else "no evaluation"
    if record.epochs_to_target is not None:
        return (f"{record.status} at epoch {record.epochs_to_target:.2f} ({len(record.evaluations)} evaluations), "
                f"time-to-train {record.time_to_train_s / 60:.2f} min")
    return f"{record.status}, {len(record.evaluations)} evaluations up to {last}, {record.time_to_train_s / 60:.2f} min"


def core_slots(parallel: int) -> List[Tuple[int, ...]]:
    """The cores of each of `parallel` concurrent runs: equal disjoint shares of this process's cores (all of
    them for a single run; shared when there are more runs than cores)."""
    cores = sorted(os.sched_getaffinity(0))
    share = max(len(cores) // parallel, 1)
    return [tuple(cores[(slot * share) % len(cores):][:share]) for slot in range(parallel)]


def _last_line(path: str) -> str:
    with contextlib.suppress(OSError):
        with open(path, errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


@contextlib.contextmanager
def _interrupted_by_sigterm() -> Iterator[None]:
    """SIGTERM stops the study as Ctrl-C does: the running seeds are told to stop and their folders stay."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
