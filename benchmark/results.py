"""Stored results: one MLPerf log per run, and the score of each submission.

Layout (MLPerf's, with the implementation as a level, since systems compare
implementations too): `<root>/<system>/<benchmark>/<implementation>/result_<i>.txt`;
a weak-scaling job's instance logs go together into
`<root>/<system>/<benchmark>/<implementation>/weak_<j>/result_<i>.txt`.

    python -m benchmark.results store LOG --root DIR --system S --benchmark B --implementation I
    python -m benchmark.results store --weak LOG LOG ... --root DIR --system S --benchmark B --implementation I
    python -m benchmark.results summarize [DIR]

A result is what its log says: `store` refuses, in one line and writing
nothing, a log whose `cosmictagger_benchmark` or `implementation` is not the
one it is filed under, whose `cosmictagger_rules_version` is not the
benchmark's current one, or that the official compliance checker fails.
`summarize` checks every stored log again the same way; only compliant ones
are scored, the others are listed with their reason and make their entry
invalid. Entries are (system, benchmark, rules version, implementation):
runs under different versions of a definition are never scored together.
A valid timed entry is also held to its benchmark's reference convergence
points (`benchmark.rcp`), which give its normalised score; `<root>/rcp/`
holds reference runs' logs, not results, and is passed over.

A time-to-train score is the olympic mean of the first N runs (N from the
benchmark definition): the fastest and slowest are dropped and the rest
averaged; one run that missed the target counts as the slowest, two or more
make the result invalid. A weak-scaling job is scored as MLPerf HPC does:
the number of models M, those that reached the target M', the ranks per
instance and in all, and the time to train all of them, from the first
instance's run_start to the last run_stop of a converged instance.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple

from benchmark.compliance.checker import check
from benchmark.errors import BenchmarkError
from benchmark.plots import plot_metrics, plot_throughput
from benchmark.rules import TARGET_METRICS, get_benchmark

if TYPE_CHECKING:
    from benchmark.rcp.check import Outcome

TOKEN = ":::MLLOG "
RESULT_FILE = re.compile(r"^result_(\d+)\.txt$")
DEFAULT_ROOT = "results"
REFERENCE_RUNS = "rcp"  # <root>/rcp/ keeps the logs RCP files are built from; summarize passes it over
STUDIES = "studies"  # <root>/studies/ keeps convergence studies (benchmark.convergence); passed over too


# ---------------------------------------------------------------- storing


def _folder(results_root: str, system: str, benchmark: str, implementation: str) -> str:
    get_benchmark(benchmark)  # an unknown name would give a folder that cannot be scored
    for name in (system, implementation):
        if name in ("", ".", "..") or name != os.path.basename(name):
            raise BenchmarkError(f"'{name}' cannot be a results folder name (one path component, not empty)")
    return os.path.join(results_root, system, benchmark, implementation)


def store(log_path: str, results_root: str, system: str, benchmark: str, implementation: str) -> str:
    """Copy a run's log to the next result_<i>.txt of its folder; never overwrites one.

    Refused, with nothing written, unless the log is a compliant run of this benchmark and implementation."""
    folder = _folder(results_root, system, benchmark, implementation)
    data = _read_bytes(log_path)
    _refuse_unless_results([log_path], benchmark, implementation)
    return _store_in(folder, data)


def store_weak(log_paths: Sequence[str], results_root: str, system: str, benchmark: str, implementation: str) -> str:
    """Copy one weak-scaling job's instance logs into a new weak_<j> folder (result_0.txt, ...); returns the folder.

    Refused, with nothing written, unless every instance's log is a compliant run of this benchmark and
    implementation."""
    parent = _folder(results_root, system, benchmark, implementation)
    data = [_read_bytes(path) for path in log_paths]  # all readable before anything is written
    _refuse_unless_results(log_paths, benchmark, implementation)
    index = 1
    while True:
        folder = os.path.join(parent, f"weak_{index}")
        try:
            os.makedirs(folder)  # a new folder: a concurrent store that took this index makes us try the next
            break
        except FileExistsError:
            index += 1
        except OSError as exc:
            raise BenchmarkError(f"cannot create results folder {folder}: {exc.strerror}") from None
    for instance, content in enumerate(data):
        _write_all(os.open(os.path.join(folder, f"result_{instance}.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644),
                   os.path.join(folder, f"result_{instance}.txt"), content)
    return folder


def _refuse_unless_results(log_paths: Sequence[str], benchmark: str, implementation: str) -> None:
    for path in log_paths:
        parse_log(path)  # a malformed log is refused with its line
    for examined in examine([(path, benchmark, implementation) for path in log_paths]):
        if examined.reason:
            raise BenchmarkError(f"{examined.record.path} is not stored: {examined.reason}")


def _store_in(folder: str, data: bytes) -> str:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"cannot create results folder {folder}: {exc.strerror}") from None
    index = _last_index(folder) + 1
    while True:
        path = os.path.join(folder, f"result_{index}.txt")
        try:
            # O_EXCL: a concurrent store that took this index makes us try the next one.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            index += 1
            continue
        except OSError as exc:
            raise BenchmarkError(f"cannot write {path}: {exc.strerror}") from None
        _write_all(fd, path, data)
        return path


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BenchmarkError(f"cannot read log {path}: {exc.strerror}") from None


def _write_all(fd: int, path: str, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        os.unlink(path)  # a truncated copy would later be scored as a real run
        raise BenchmarkError(f"cannot write {path}: {exc.strerror}") from None


def _last_index(folder: str) -> int:
    """The highest result index in a folder (0 if none): new runs go after it, so index order is run order."""
    return max((i for i, _ in result_files(folder)), default=0)


def result_files(folder: str) -> List[Tuple[int, str]]:
    """(index, path) of a folder's result files, in index order."""
    found = []
    for name in os.listdir(folder):
        match = RESULT_FILE.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(folder, name)))
    return sorted(found)


# ---------------------------------------------------------------- parsing


@dataclass
class RunRecord:
    """What one run's log says. `status`: success, aborted, or incomplete (no run_start or run_stop)."""

    path: str
    benchmark: Optional[str] = None
    rules_version: Optional[str] = None
    system: Optional[str] = None
    implementation: Optional[str] = None
    seed: Optional[int] = None
    status: str = "incomplete"
    time_to_train_s: Optional[float] = None
    images_per_second: Optional[float] = None
    evals: List[Tuple[float, float, Optional[float]]] = field(default_factory=list)  # (minutes, mIoU, epoch)
    eval_metrics: List[Dict[str, float]] = field(default_factory=list)  # per evaluation: the target's metrics
    global_batch_size: Optional[int] = None
    ranks: Optional[int] = None
    start_ms: Optional[float] = None  # run_start, since the epoch
    stop_ms: Optional[float] = None  # run_stop
    # MLPerf's epochs to converge: the epoch_num of the last eval_accuracy before a successful run_stop (to 3 decimals)
    epochs_to_converge: Optional[float] = None
    precision: Optional[str] = None
    hyperparameters: Dict[str, object] = field(default_factory=dict)  # opt_*, scheduler_*, batch size, accumulation

    @property
    def converged(self) -> bool:
        return self.status == "success"


# Log keys copied as they are into RunRecord fields.
_PLAIN_KEYS = {
    "cosmictagger_benchmark": "benchmark",
    "cosmictagger_rules_version": "rules_version",
    "submission_platform": "system",
    "implementation": "implementation",
    "seed": "seed",
    "global_batch_size": "global_batch_size",
    "number_of_ranks": "ranks",
    "precision": "precision",
}
# Log keys that make up a run's hyperparameters (an RCP is one set of them per batch size).
_HYPERPARAMETER = re.compile(r"^(opt_.*|scheduler_.*|global_batch_size|gradient_accumulation_frequency)$")


def read_events(path: str) -> Iterator[dict]:
    """The event of each MLLOG line; other text (and any prefix before the token) is ignored."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BenchmarkError(f"cannot read log {path}: {exc.strerror}") from None
    with handle:
        for lineno, line in enumerate(handle, start=1):
            _, token, payload = line.partition(TOKEN)
            if token:
                yield _decode(path, lineno, payload)


def _decode(path: str, lineno: int, payload: str) -> dict:
    try:
        event = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{path}:{lineno}: malformed MLLOG line ({exc.msg})") from None
    if (not isinstance(event, dict) or not isinstance(event.get("key"), str)
            or not isinstance(event.get("time_ms"), (int, float))
            or not isinstance(event.get("metadata") or {}, dict)):
        raise BenchmarkError(f"{path}:{lineno}: malformed MLLOG line (needs a key, a time_ms and metadata as an object)")
    return event


def parse_log(path: str) -> RunRecord:
    record = RunRecord(path=path)
    start_ms = stop_ms = None
    stop_status = None
    evals_ms = []
    evals_before_stop = 0
    for event in read_events(path):
        key, value = event["key"], event.get("value")
        metadata = event.get("metadata") or {}
        # Several ranks may log the same key: the first one counts.
        if _HYPERPARAMETER.match(key):
            record.hyperparameters.setdefault(key, value)
        if key in _PLAIN_KEYS and getattr(record, _PLAIN_KEYS[key]) is None:
            setattr(record, _PLAIN_KEYS[key], value)
        elif key == "run_start" and start_ms is None:
            start_ms = event["time_ms"]
        elif key == "run_stop" and stop_ms is None:
            stop_ms = event["time_ms"]
            stop_status = str(metadata.get("status", "aborted")).lower()
            evals_before_stop = len(evals_ms)
        elif key == "eval_accuracy":
            evals_ms.append((event["time_ms"], value, metadata.get("epoch_num")))
            record.eval_metrics.append({name: metadata[name] for name in TARGET_METRICS
                                        if isinstance(metadata.get(name), (int, float))})
        elif key == "tracked_stats" and isinstance(value, dict) and "throughput" in value:
            record.images_per_second = value["throughput"]  # the last one is the steady state
    record.start_ms, record.stop_ms = start_ms, stop_ms
    if start_ms is not None and stop_ms is not None:
        record.status = stop_status
        record.time_to_train_s = (stop_ms - start_ms) / 1000.0
    last_epoch = evals_ms[evals_before_stop - 1][2] if evals_before_stop else None
    if record.status == "success" and isinstance(last_epoch, (int, float)):
        record.epochs_to_converge = round(last_epoch, 3)  # MLPerf rounds it so
    origin = start_ms if start_ms is not None else min((t for t, _, _ in evals_ms), default=0)
    record.evals = [((t - origin) / 60000.0, v, epoch) for t, v, epoch in evals_ms]
    return record


# ---------------------------------------------------------------- verifying


@dataclass
class Examined:
    """A log, and why it is not a result of the folder it is filed under (None: it is one, and compliant)."""

    record: RunRecord
    reason: Optional[str] = None


def examine(logs: Sequence[Tuple[str, str, str]]) -> List[Examined]:
    """Each (log, benchmark, implementation): what the log says, checked against both, the rules version and
    the official compliance checker (a process per log: only for logs that pass the rest, several at once)."""
    examined = []
    for path, benchmark, implementation in logs:
        try:
            record = parse_log(path)
        except BenchmarkError as exc:
            examined.append(Examined(RunRecord(path=path), str(exc)))
            continue
        examined.append(Examined(record, mismatch(record, benchmark, implementation)))
    return _checked(examined)


def examine_records(records: Sequence[Tuple[RunRecord, str, str]]) -> List[Examined]:
    """`examine` for logs already parsed: each (record, benchmark, implementation)."""
    return _checked([Examined(record, mismatch(record, benchmark, implementation))
                     for record, benchmark, implementation in records])


def _checked(examined: List[Examined]) -> List[Examined]:
    """The official checker's verdict added to those with no reason yet."""
    pending = [item for item in examined if item.reason is None]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for item, result in zip(pending, pool.map(check, [item.record.path for item in pending])):
            if not result.passed:
                item.reason = f"the compliance checker fails it: {result.first_problem()}"
    return examined


def mismatch(record: RunRecord, benchmark: str, implementation: str) -> Optional[str]:
    """Why a parsed log is not a run of this benchmark, under its current rules, and implementation (None: it is)."""
    if record.benchmark != benchmark:
        if record.benchmark is None:
            return f"it logs no cosmictagger_benchmark, so it is no run of the {benchmark} benchmark"
        if record.benchmark == "none":
            return (f"it is an ordinary training run (cosmictagger_benchmark 'none'), "
                    f"not a run of the {benchmark} benchmark")
        return f"it is a run of the {record.benchmark!r} benchmark, not of {benchmark!r}"
    if record.implementation != implementation:
        if record.implementation is None:
            return f"it logs no implementation (filed as {implementation!r})"
        return f"its implementation is {record.implementation!r}, not {implementation!r}"
    current = get_benchmark(benchmark).rules_version
    if record.rules_version != current:
        if record.rules_version is None:
            return f"it logs no cosmictagger_rules_version (the {benchmark} benchmark's rules are version {current})"
        return (f"it ran under rules version {record.rules_version!r} of the {benchmark} benchmark, "
                f"not the current {current}")
    return None


# ---------------------------------------------------------------- scoring


@dataclass
class SummaryRow:
    """The score of one (system, benchmark, rules version, implementation): its compliant runs only."""

    system: str
    benchmark: str
    rules_version: Optional[str]  # as its runs logged it; None: they logged none
    implementation: str
    runs: int  # compliant runs
    required: int  # runs a submission needs
    converged: int
    time_to_train_min: Optional[float]  # None: no score (see status), or a throughput benchmark
    images_per_second: Optional[float]  # median over the compliant runs that report it
    status: str  # valid, incomplete, invalid
    timed: bool  # whether the benchmark is scored by time to train
    rejected: List[Examined] = field(default_factory=list)  # logs filed here that are no compliant result
    # Over the compliant runs that reached the target (None: fewer than two):
    time_cv: Optional[float] = None  # stdev / mean of time to train (sample stdev)
    epochs_cv: Optional[float] = None  # and of epochs to converge
    rcp: Optional["Outcome"] = None  # the RCP check of a valid timed entry (None: not checked)

    def rcp_text(self) -> str:
        return "-" if self.rcp is None else self.rcp.status

    def normalised_text(self) -> str:
        """The score a passing RCP check gives: time to train scaled by RCP mean / submission mean, if faster."""
        return "-" if self.rcp is None or self.rcp.normalised_min is None else f"{self.rcp.normalised_min:.2f}"

    def time_to_train_text(self) -> str:
        if not self.timed:
            return "n/a"
        if self.rejected:
            return "invalid"
        if self.runs < self.required:
            return f"incomplete ({self.runs} of {self.required} runs)"
        if self.time_to_train_min is None:
            return "invalid"
        return f"{self.time_to_train_min:.2f}"


def coefficient_of_variation(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation / mean (None below two values)."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else None


def olympic_mean(minutes: Sequence[float]) -> float:
    """Mean without the fastest and the slowest (all of them when there are too few to drop two)."""
    ordered = sorted(minutes)
    kept = ordered[1:-1] if len(ordered) > 2 else ordered
    return statistics.fmean(kept)


def score(system: str, benchmark: str, rules_version: Optional[str], implementation: str,
          records: Sequence[RunRecord], rejected: Sequence[Examined] = ()) -> SummaryRow:
    """Score one entry's compliant runs (in index order); any rejected log makes the entry invalid."""
    definition = get_benchmark(benchmark)
    required = definition.runs
    timed = definition.target is not None
    rates = [r.images_per_second for r in records if r.images_per_second is not None]
    row = SummaryRow(
        system=system, benchmark=benchmark, rules_version=rules_version, implementation=implementation,
        runs=len(records), required=required, converged=sum(r.converged for r in records),
        time_to_train_min=None, images_per_second=statistics.median(rates) if rates else None,
        status="incomplete", timed=timed, rejected=list(rejected),
    )
    if timed:
        converged = [r for r in records if r.converged]
        row.time_cv = coefficient_of_variation([r.time_to_train_s for r in converged])
        row.epochs_cv = coefficient_of_variation([r.epochs_to_converge for r in converged
                                                  if r.epochs_to_converge is not None])
    if rejected:
        row.status = "invalid"
        return row
    if len(records) < required:
        return row
    if not timed:
        row.status = "valid" if all(r.converged for r in records) else "invalid"
        return row
    row.time_to_train_min = time_to_train(records[:required])
    row.status = "valid" if row.time_to_train_min is not None else "invalid"
    if row.status == "valid":
        row.rcp = _rcp_check(benchmark, rules_version, records)
    return row


def _rcp_check(benchmark: str, rules_version: str, records: Sequence[RunRecord]) -> "Outcome":
    # Imported here: benchmark.rcp reads logs through this module.
    from benchmark.rcp.check import FAIL, Outcome, check_runs

    try:
        return check_runs(benchmark, rules_version, records)
    except BenchmarkError as exc:  # an RCP file that cannot be read fails the check; the summary goes on
        return Outcome(FAIL, str(exc), rcp_file="")


def time_to_train(records: Sequence[RunRecord]) -> Optional[float]:
    """The olympic mean time-to-train of a submission's runs in minutes (None: two or more missed the target)."""
    if sum(not r.converged for r in records) > 1:
        return None
    # A run that missed the target is the slowest, so it is always the one dropped at the top.
    return olympic_mean([r.time_to_train_s / 60.0 if r.converged else float("inf") for r in records])


@dataclass
class WeakScalingRow:
    """The score of one weak-scaling job: MLPerf HPC's (T, S, M', time to train all)."""

    system: str
    benchmark: str
    rules_version: Optional[str]  # as its instances logged it (several, comma-separated, if they disagree)
    implementation: str
    job: str  # weak_<j>
    models: int  # M: instances in the job
    converged: int  # M': compliant instances that reached the target
    instance_ranks: Optional[int]  # S
    total_ranks: int  # T
    time_to_train_all_min: Optional[float]  # first run_start to the last converged run_stop; None: none converged
    rejected: List[Examined] = field(default_factory=list)  # instance logs that are no compliant result

    @property
    def status(self) -> str:
        return "invalid" if self.rejected else "valid"


def score_weak(key: Tuple[str, str, str], job: str, instances: Sequence[Examined]) -> WeakScalingRow:
    """Score one job; a rejected instance log makes the whole job invalid (no time to train all)."""
    system, benchmark, implementation = key
    rejected = [item for item in instances if item.reason]
    records = [item.record for item in instances]
    converged = [item.record for item in instances if not item.reason and item.record.converged]
    starts = [r.start_ms for r in records if r.start_ms is not None]
    ranks = [r.ranks for r in records if r.ranks is not None]
    versions = sorted({str(r.rules_version) for r in records if r.rules_version is not None})
    total = None
    if converged and starts and not rejected:
        total = (max(r.stop_ms for r in converged) - min(starts)) / 60000.0
    return WeakScalingRow(system, benchmark, ", ".join(versions) or None, implementation, job=job,
                          models=len(records), converged=len(converged), instance_ranks=max(ranks) if ranks else None,
                          total_ranks=sum(ranks), time_to_train_all_min=total, rejected=rejected)


EntryKey = Tuple[str, str, Optional[str], str]  # (system, benchmark, rules version, implementation)


@dataclass
class Results:
    """Every stored log under a results root, examined once, and the scores."""

    root: str
    rows: List[SummaryRow]
    weak: List[WeakScalingRow]
    runs: Dict[EntryKey, List[Examined]]  # every log of each entry, compliant or not, in index order

    def rejected(self) -> List[Examined]:
        """The logs that are not scored, entry by entry as the tables list them."""
        return [item for row in [*self.rows, *self.weak] for item in row.rejected]


def collect(root: str) -> Results:
    """Examine and score every <system>/<benchmark>/<implementation>/ folder and weak_<j> job under root."""
    if not os.path.isdir(root):
        raise BenchmarkError(f"no results folder {root}")
    folders, jobs = _result_folders(root)
    if not folders and not jobs:
        raise BenchmarkError(f"no result files (<system>/<benchmark>/<implementation>/result_<i>.txt) under {root}")
    logs = [(path, key[1], key[2]) for key, paths in folders for path in paths]
    logs += [(path, key[1], key[2]) for key, _, paths in jobs for path in paths]
    examined = iter(examine(logs))
    entries: Dict[EntryKey, List[Examined]] = {}
    for (system, benchmark, implementation), paths in folders:
        for _ in paths:
            item = next(examined)
            version = None if item.record.rules_version is None else str(item.record.rules_version)
            entries.setdefault((system, benchmark, version, implementation), []).append(item)
    entries = dict(sorted(entries.items(), key=lambda entry: _entry_order(entry[0])))
    rows = [score(*key, [i.record for i in items if not i.reason], [i for i in items if i.reason])
            for key, items in entries.items()]
    weak = [score_weak(key, job, [next(examined) for _ in paths]) for key, job, paths in jobs]
    return Results(root=root, rows=rows, weak=weak, runs=entries)


def _result_folders(root: str):
    """([(system, benchmark, implementation), [log, ...]), ...], [(that key, weak_<j>, [log, ...]), ...])."""
    folders, jobs = [], []
    for folder, subfolders, _ in os.walk(root):
        parts = os.path.relpath(folder, root).split(os.sep)
        if parts[0] in (REFERENCE_RUNS, STUDIES):
            subfolders.clear()  # reference runs and studies: no system's results
            continue
        weak_job = len(parts) == 4 and re.match(r"^weak_\d+$", parts[3])
        if len(parts) == 3 or weak_job:
            files = [path for _, path in result_files(folder)]
            if files:
                _check_benchmark(folder, parts[1])
                if weak_job:
                    jobs.append((tuple(parts[:3]), parts[3], files))
                else:
                    folders.append((tuple(parts), files))
        if len(parts) >= 4:
            subfolders.clear()  # result files sit three levels down, a weak-scaling job's four
    return sorted(folders), sorted(jobs)


def _entry_order(key: EntryKey):
    system, benchmark, version, implementation = key
    parts = () if version is None else tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in version.split("."))
    return system, benchmark, version is None, parts, implementation


def _check_benchmark(folder: str, name: str) -> None:
    try:
        get_benchmark(name)
    except BenchmarkError as exc:
        raise BenchmarkError(f"{folder}: {exc}") from None


def summarize(root: str) -> List[SummaryRow]:
    return collect(root).rows


def collect_weak(root: str) -> List[WeakScalingRow]:
    """The scored weak-scaling jobs (<system>/<benchmark>/<implementation>/weak_<j>/) under root."""
    return collect(root).weak


# ---------------------------------------------------------------- reports

_COLUMNS = ("system", "benchmark", "rules version", "implementation", "runs", "converged", "not compliant",
            "time to train (min)", "RCP", "normalised (min)", "CV time", "CV epochs", "images/s (median)", "status")


def _version_text(version: Optional[str]) -> str:
    return "-" if version is None else version


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        rate = f"{row.images_per_second:.2f}" if row.images_per_second is not None else "-"
        cells = (row.system, row.benchmark, _version_text(row.rules_version), row.implementation,
                 f"{row.runs} of {row.required}", str(row.converged), str(len(row.rejected)), row.time_to_train_text(),
                 row.rcp_text(), row.normalised_text(), _percent(row.time_cv), _percent(row.epochs_cv), rate,
                 row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _percent(fraction: Optional[float]) -> str:
    return "-" if fraction is None else f"{100 * fraction:.1f} %"


def rcp_list(rows: Sequence[SummaryRow]) -> str:
    """One line per RCP check: the entry, its verdict and the numbers behind it."""
    lines = []
    for row in rows:
        if row.rcp is None:
            continue
        verdict = row.rcp.verdict
        numbers = ""
        if verdict is not None and verdict.point is not None:
            numbers = (f" (olympic mean {verdict.submission_mean:.3f} epochs at batch size {row.rcp.batch_size}; "
                       f"{verdict.point.name}: mean {verdict.point.mean:.3f}, at least {verdict.point.min_epochs:.3f}"
                       + (f"; normalisation factor {verdict.norm_factor:.4f}" if verdict.passed else "") + ")")
        lines.append(f"- {row.system} / {row.benchmark} (rules {_version_text(row.rules_version)}) / "
                     f"{row.implementation}: {row.rcp.status}: {row.rcp.reason}{numbers}\n")
    return "".join(lines)


def weak_scaling_table(rows: Sequence[WeakScalingRow]) -> str:
    columns = ("system", "benchmark", "rules version", "implementation", "job", "models (M' of M)", "ranks per model",
               "ranks in all", "time to train all (min)", "status")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        if row.rejected:
            total = "invalid"
        else:
            total = f"{row.time_to_train_all_min:.2f}" if row.time_to_train_all_min is not None else "none converged"
        cells = (row.system, row.benchmark, _version_text(row.rules_version), row.implementation, row.job,
                 f"{row.converged} of {row.models}", str(row.instance_ranks or "-"), str(row.total_ranks), total,
                 row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rejected_list(results: Results) -> str:
    """One line per stored log that is not scored, with its reason (paths relative to the results root)."""
    return "".join(f"- `{os.path.relpath(item.record.path, results.root)}`: {item.reason}\n"
                   for item in results.rejected())


def report(results: Results) -> str:
    """The summary as printed, and as summary.md holds it under its title."""
    text = markdown_table(results.rows)
    checks = rcp_list(results.rows)
    if checks:
        text += f"\n## RCP checks (`python -m benchmark.rcp check <folder>` prints each in full)\n\n{checks}"
    if results.weak:
        text += f"\n## Weak scaling\n\n{weak_scaling_table(results.weak)}"
    if results.rejected():
        text += f"\n## Not scored: logs that are no compliant result of their folder (their entries are invalid)\n\n"
        text += rejected_list(results)
    return text


def write_csv(rows: Sequence[SummaryRow], path: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["system", "benchmark", "rules_version", "implementation", "runs", "runs_required", "converged",
                         "not_compliant", "time_to_train_min", "rcp", "normalised_time_to_train_min",
                         "time_to_train_cv", "epochs_to_converge_cv", "images_per_second_median", "status"])
        for row in rows:
            normalised = row.rcp.normalised_min if row.rcp is not None else None
            writer.writerow([row.system, row.benchmark, row.rules_version or "", row.implementation, row.runs,
                             row.required, row.converged, len(row.rejected), _blank_if_none(row.time_to_train_min),
                             row.rcp.status if row.rcp is not None else "", _blank_if_none(normalised),
                             _blank_if_none(row.time_cv), _blank_if_none(row.epochs_cv),
                             _blank_if_none(row.images_per_second), row.status])


def _blank_if_none(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


# What summarize writes into plots/ (accuracy_*: an earlier summary's, removed).
_PLOT_FILE = re.compile(r"^(metrics_.*|accuracy_.*|throughput)\.png$")


def _plot_name(key: EntryKey) -> str:
    system, benchmark, version, implementation = key
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", f"rules{version}" if version is not None else "unversioned")
    return f"metrics_{system}_{benchmark}_{tag}_{implementation}.png"


def write_reports(root: str) -> Tuple[Results, List[str]]:
    """Examine and score everything under root; write summary.md, summary.csv and plots/ (a plot of an entry that
    is gone is removed). Returns the results and the written paths."""
    results = collect(root)
    written = [os.path.join(root, "summary.md"), os.path.join(root, "summary.csv")]
    try:
        with open(written[0], "w") as handle:
            handle.write(f"# CosmicTagger benchmark results\n\n{report(results)}")
        write_csv(results.rows, written[1])
        plots = os.path.join(root, "plots")
        os.makedirs(plots, exist_ok=True)
        rows = {(r.system, r.benchmark, r.rules_version, r.implementation): r for r in results.rows}
        for key, runs in results.runs.items():
            if any(item.record.evals for item in runs):
                written.append(os.path.join(plots, _plot_name(key)))
                checked = rows[key].rcp
                point = checked.verdict.point if checked is not None and checked.verdict is not None else None
                plot_metrics(key, runs, point, written[-1])
        if any(r.images_per_second is not None for r in results.rows):
            written.append(os.path.join(plots, "throughput.png"))
            plot_throughput(results.rows, written[-1])
        for name in os.listdir(plots):
            if _PLOT_FILE.match(name) and os.path.join(plots, name) not in written:
                os.unlink(os.path.join(plots, name))  # an earlier summary's plot would show what no longer counts
    except OSError as exc:
        raise BenchmarkError(f"cannot write reports in {root}: {exc.strerror or exc}") from None
    return results, written


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark.results", description="Store and score benchmark runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summarize", help="score every result folder; write summary.md, summary.csv, plots/")
    summary.add_argument("root", nargs="?", default=DEFAULT_ROOT, metavar="DIR", help=f"results folder (default: {DEFAULT_ROOT}/)")
    keep = commands.add_parser("store", help="copy a run's MLPerf log (or, with --weak, a weak-scaling job's) into the results folder")
    keep.add_argument("log", metavar="LOG", nargs="+")
    keep.add_argument("--weak", action="store_true", help="the logs are the instances of one weak-scaling job")
    keep.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR")
    keep.add_argument("--system", required=True)
    keep.add_argument("--benchmark", required=True)
    keep.add_argument("--implementation", required=True)
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "store" and args.weak:
            print(store_weak(args.log, args.root, args.system, args.benchmark, args.implementation))
        elif args.command == "store":
            if len(args.log) != 1:
                raise BenchmarkError(f"store takes one log ({len(args.log)} given); several only with --weak")
            print(store(args.log[0], args.root, args.system, args.benchmark, args.implementation))
        else:
            results, written = write_reports(args.root)
            print(report(results), end="")
            print(f"wrote {len(written)} files: {', '.join(written)}", file=sys.stderr)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
