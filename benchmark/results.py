"""Stored results: one MLPerf log per run, and the score of each submission.

Layout (MLPerf's, with the implementation as a level, since systems compare
implementations too): `<root>/<system>/<benchmark>/<implementation>/result_<i>.txt`;
a weak-scaling job's instance logs go together into
`<root>/<system>/<benchmark>/<implementation>/weak_<j>/result_<i>.txt`.

    python -m benchmark.results store LOG --root DIR --system S --benchmark B --implementation I
    python -m benchmark.results store --weak LOG LOG ... --root DIR --system S --benchmark B --implementation I
    python -m benchmark.results summarize [DIR]

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
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from benchmark.errors import BenchmarkError
from benchmark.rules import get_benchmark

TOKEN = ":::MLLOG "
RESULT_FILE = re.compile(r"^result_(\d+)\.txt$")
DEFAULT_ROOT = "results"


# ---------------------------------------------------------------- storing


def _folder(results_root: str, system: str, benchmark: str, implementation: str) -> str:
    get_benchmark(benchmark)  # an unknown name would give a folder that cannot be scored
    for name in (system, implementation):
        if name in ("", ".", "..") or name != os.path.basename(name):
            raise BenchmarkError(f"'{name}' cannot be a results folder name (one path component, not empty)")
    return os.path.join(results_root, system, benchmark, implementation)


def store(log_path: str, results_root: str, system: str, benchmark: str, implementation: str) -> str:
    """Copy a run's log to the next result_<i>.txt of its folder; never overwrites one."""
    folder = _folder(results_root, system, benchmark, implementation)
    return _store_in(folder, _read_bytes(log_path))


def store_weak(log_paths: Sequence[str], results_root: str, system: str, benchmark: str, implementation: str) -> str:
    """Copy one weak-scaling job's instance logs into a new weak_<j> folder (result_0.txt, ...); returns the folder."""
    data = [_read_bytes(path) for path in log_paths]  # all readable before anything is written
    parent = _folder(results_root, system, benchmark, implementation)
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
    return max((i for i, _ in _result_files(folder)), default=0)


def _result_files(folder: str) -> List[Tuple[int, str]]:
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
    system: Optional[str] = None
    implementation: Optional[str] = None
    seed: Optional[int] = None
    status: str = "incomplete"
    time_to_train_s: Optional[float] = None
    images_per_second: Optional[float] = None
    evals: List[Tuple[float, float, Optional[float]]] = field(default_factory=list)  # (minutes, mIoU, epoch)
    global_batch_size: Optional[int] = None
    ranks: Optional[int] = None
    start_ms: Optional[float] = None  # run_start, since the epoch
    stop_ms: Optional[float] = None  # run_stop

    @property
    def converged(self) -> bool:
        return self.status == "success"


# Log keys copied as they are into RunRecord fields.
_PLAIN_KEYS = {
    "cosmictagger_benchmark": "benchmark",
    "submission_platform": "system",
    "implementation": "implementation",
    "seed": "seed",
    "global_batch_size": "global_batch_size",
    "number_of_ranks": "ranks",
}


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
    for event in read_events(path):
        key, value = event["key"], event.get("value")
        metadata = event.get("metadata") or {}
        # Several ranks may log the same key: the first one counts.
        if key in _PLAIN_KEYS and getattr(record, _PLAIN_KEYS[key]) is None:
            setattr(record, _PLAIN_KEYS[key], value)
        elif key == "run_start" and start_ms is None:
            start_ms = event["time_ms"]
        elif key == "run_stop" and stop_ms is None:
            stop_ms = event["time_ms"]
            stop_status = str(metadata.get("status", "aborted")).lower()
        elif key == "eval_accuracy":
            evals_ms.append((event["time_ms"], value, metadata.get("epoch_num")))
        elif key == "tracked_stats" and isinstance(value, dict) and "throughput" in value:
            record.images_per_second = value["throughput"]  # the last one is the steady state
    record.start_ms, record.stop_ms = start_ms, stop_ms
    if start_ms is not None and stop_ms is not None:
        record.status = stop_status
        record.time_to_train_s = (stop_ms - start_ms) / 1000.0
    origin = start_ms if start_ms is not None else min((t for t, _, _ in evals_ms), default=0)
    record.evals = [((t - origin) / 60000.0, v, epoch) for t, v, epoch in evals_ms]
    return record


# ---------------------------------------------------------------- scoring


@dataclass
class SummaryRow:
    """The score of one (system, benchmark, implementation)."""

    system: str
    benchmark: str
    implementation: str
    runs: int
    required: int  # runs a submission needs
    converged: int
    time_to_train_min: Optional[float]  # None: no score (see status), or a throughput benchmark
    images_per_second: Optional[float]  # median over the runs that report it
    status: str  # valid, incomplete, invalid
    timed: bool  # whether the benchmark is scored by time to train

    def time_to_train_text(self) -> str:
        if not self.timed:
            return "n/a"
        if self.runs < self.required:
            return f"incomplete ({self.runs} of {self.required} runs)"
        if self.time_to_train_min is None:
            return "invalid"
        return f"{self.time_to_train_min:.2f}"


def olympic_mean(minutes: Sequence[float]) -> float:
    """Mean without the fastest and the slowest (all of them when there are too few to drop two)."""
    ordered = sorted(minutes)
    kept = ordered[1:-1] if len(ordered) > 2 else ordered
    return statistics.fmean(kept)


def score(system: str, benchmark: str, implementation: str, records: Sequence[RunRecord]) -> SummaryRow:
    """Score one folder's runs (in index order)."""
    definition = get_benchmark(benchmark)
    required = definition.runs
    timed = definition.target is not None
    rates = [r.images_per_second for r in records if r.images_per_second is not None]
    row = SummaryRow(
        system=system, benchmark=benchmark, implementation=implementation,
        runs=len(records), required=required, converged=sum(r.converged for r in records),
        time_to_train_min=None, images_per_second=statistics.median(rates) if rates else None,
        status="incomplete", timed=timed,
    )
    if len(records) < required:
        return row
    if not timed:
        row.status = "valid" if all(r.converged for r in records) else "invalid"
        return row
    scored = records[:required]
    if sum(not r.converged for r in scored) > 1:
        row.status = "invalid"
        return row
    # A run that missed the target is the slowest, so it is always the one dropped at the top.
    row.time_to_train_min = olympic_mean([r.time_to_train_s / 60.0 if r.converged else float("inf") for r in scored])
    row.status = "valid"
    return row


@dataclass
class WeakScalingRow:
    """The score of one weak-scaling job: MLPerf HPC's (T, S, M', time to train all)."""

    system: str
    benchmark: str
    implementation: str
    job: str  # weak_<j>
    models: int  # M: instances in the job
    converged: int  # M': instances that reached the target
    instance_ranks: Optional[int]  # S
    total_ranks: int  # T
    time_to_train_all_min: Optional[float]  # first run_start to the last converged run_stop; None: none converged


def score_weak(key: Tuple[str, str, str], job: str, records: Sequence[RunRecord]) -> WeakScalingRow:
    converged = [r for r in records if r.converged]
    starts = [r.start_ms for r in records if r.start_ms is not None]
    ranks = [r.ranks for r in records if r.ranks is not None]
    total = None
    if converged and starts:
        total = (max(r.stop_ms for r in converged) - min(starts)) / 60000.0
    return WeakScalingRow(*key, job=job, models=len(records), converged=len(converged),
                          instance_ranks=max(ranks) if ranks else None, total_ranks=sum(ranks),
                          time_to_train_all_min=total)


def collect_weak(root: str) -> List[WeakScalingRow]:
    """The scored weak-scaling jobs (<system>/<benchmark>/<implementation>/weak_<j>/) under root."""
    rows = []
    for folder, subfolders, _ in os.walk(root):
        parts = os.path.relpath(folder, root).split(os.sep)
        if len(parts) == 4 and re.match(r"^weak_\d+$", parts[3]):
            _check_benchmark(folder, parts[1])
            files = _result_files(folder)
            if files:
                rows.append(score_weak(tuple(parts[:3]), parts[3], [parse_log(path) for _, path in files]))
        if len(parts) >= 4:
            subfolders.clear()
    return sorted(rows, key=lambda r: (r.system, r.benchmark, r.implementation, r.job))


def weak_scaling_table(rows: Sequence[WeakScalingRow]) -> str:
    columns = ("system", "benchmark", "implementation", "job", "models (M' of M)", "ranks per model", "ranks in all",
               "time to train all (min)")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        total = f"{row.time_to_train_all_min:.2f}" if row.time_to_train_all_min is not None else "none converged"
        cells = (row.system, row.benchmark, row.implementation, row.job, f"{row.converged} of {row.models}",
                 str(row.instance_ranks or "-"), str(row.total_ranks), total)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def collect(root: str) -> Dict[Tuple[str, str, str], List[RunRecord]]:
    """The parsed runs of every <system>/<benchmark>/<implementation> folder under root, in index order."""
    if not os.path.isdir(root):
        raise BenchmarkError(f"no results folder {root}")
    groups = {}
    for folder, subfolders, _ in os.walk(root):
        parts = os.path.relpath(folder, root).split(os.sep)
        if len(parts) != 3:
            continue
        subfolders.clear()  # result files sit exactly three levels down
        files = _result_files(folder)
        if files:
            _check_benchmark(folder, parts[1])
            groups[tuple(parts)] = [parse_log(path) for _, path in files]
    if not groups and not collect_weak(root):
        raise BenchmarkError(f"no result files (<system>/<benchmark>/<implementation>/result_<i>.txt) under {root}")
    return dict(sorted(groups.items()))


def _check_benchmark(folder: str, name: str) -> None:
    try:
        get_benchmark(name)
    except BenchmarkError as exc:
        raise BenchmarkError(f"{folder}: {exc}") from None


def summarize(root: str) -> List[SummaryRow]:
    return [score(*key, records) for key, records in collect(root).items()]


# ---------------------------------------------------------------- reports

_COLUMNS = ("system", "benchmark", "implementation", "runs", "converged", "time to train (min)", "images/s (median)", "status")


def markdown_table(rows: Sequence[SummaryRow]) -> str:
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in rows:
        rate = f"{row.images_per_second:.2f}" if row.images_per_second is not None else "-"
        cells = (row.system, row.benchmark, row.implementation, f"{row.runs} of {row.required}",
                 str(row.converged), row.time_to_train_text(), rate, row.status)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[SummaryRow], path: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["system", "benchmark", "implementation", "runs", "runs_required", "converged",
                         "time_to_train_min", "images_per_second_median", "status"])
        for row in rows:
            writer.writerow([row.system, row.benchmark, row.implementation, row.runs, row.required, row.converged,
                             _blank_if_none(row.time_to_train_min), _blank_if_none(row.images_per_second), row.status])


def _blank_if_none(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a compute node
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(key: Tuple[str, str, str], records: Sequence[RunRecord], path: str) -> None:
    """Validation mIoU against minutes since run_start, one line per run."""
    plt = _pyplot()
    system, benchmark, implementation = key
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for record in records:
        minutes, values = [e[0] for e in record.evals], [e[1] for e in record.evals]
        label = os.path.basename(record.path) + ("" if record.converged else f" ({record.status})")
        ax.plot(minutes, values, marker="o", markersize=3, label=label)
    target = get_benchmark(benchmark).target
    title = f"{system} / {benchmark} / {implementation}: validation mIoU"
    ax.set_title(title + (f"\ntarget: {target.describe()}" if target else ""), fontsize=9)
    ax.set_xlabel("minutes since run_start")
    ax.set_ylabel("validation mIoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_throughput(rows: Sequence[SummaryRow], path: str) -> None:
    """Median images/s: one group per benchmark, one bar per system and implementation."""
    plt = _pyplot()
    rows = [r for r in rows if r.images_per_second is not None]
    benchmarks = sorted({r.benchmark for r in rows})
    series = sorted({(r.system, r.implementation) for r in rows})
    rates = {(r.benchmark, r.system, r.implementation): r.images_per_second for r in rows}
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(min(16, max(6, 1.5 * len(benchmarks) * len(series))), 4.5))
    for i, (system, implementation) in enumerate(series):
        positions = [b + i * width for b in range(len(benchmarks))]
        heights = [rates.get((bench, system, implementation), float("nan")) for bench in benchmarks]  # nan: no bar
        ax.bar(positions, heights, width, label=f"{system} / {implementation}")
    ax.set_xticks([b + 0.4 - width / 2 for b in range(len(benchmarks))], benchmarks)
    ax.set_ylabel("images/s (median over runs)")
    ax.set_title("Training throughput")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(root: str) -> Tuple[List[SummaryRow], List[str]]:
    """Score every folder under root and write summary.md, summary.csv and plots/; returns rows and written paths."""
    groups = collect(root)
    rows = [score(*key, records) for key, records in groups.items()]
    weak = collect_weak(root)
    written = [os.path.join(root, "summary.md"), os.path.join(root, "summary.csv")]
    try:
        with open(written[0], "w") as handle:
            handle.write(f"# CosmicTagger benchmark results\n\n{markdown_table(rows)}")
            if weak:
                handle.write(f"\n## Weak scaling\n\n{weak_scaling_table(weak)}")
        write_csv(rows, written[1])
        plots = os.path.join(root, "plots")
        os.makedirs(plots, exist_ok=True)
        for key, records in groups.items():
            if any(r.evals for r in records):
                written.append(os.path.join(plots, "accuracy_{}_{}_{}.png".format(*key)))
                plot_accuracy(key, records, written[-1])
        if any(r.images_per_second is not None for r in rows):
            written.append(os.path.join(plots, "throughput.png"))
            plot_throughput(rows, written[-1])
    except OSError as exc:
        raise BenchmarkError(f"cannot write reports in {root}: {exc.strerror or exc}") from None
    return rows, written


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
            rows, written = write_reports(args.root)
            print(markdown_table(rows), end="")
            weak = collect_weak(args.root)
            if weak:
                print("\nweak scaling:\n" + weak_scaling_table(weak), end="")
            print(f"wrote {len(written)} files: {', '.join(written)}", file=sys.stderr)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
