"""RCP files: `benchmark/rcps/<benchmark>-<rules version>.json` in MLPerf's format, built from reference runs' logs.

Each entry, keyed `<benchmark>_ref_<batch size>`, is one global batch size's reference runs: `Benchmark`, `BS`,
`Hyperparams` (what the runs logged: opt_*, scheduler_*, global_batch_size, gradient_accumulation_frequency),
`Epochs to converge` (one per run, read as MLPerf reads a log), `Platform`, `Precision` and `When` (the days
of their run_start), and `Logs`, the logs it was built from (MLPerf's checker reads only the keys it knows).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import re
from typing import Dict, List, Sequence

from benchmark.durable import published
from benchmark.errors import BenchmarkError
from benchmark.rcp import BadInput
from benchmark.rcp.points import References
from benchmark.results import RunRecord, examine_records, parse_log
from benchmark.rules import Benchmark, get_benchmark

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RCP_DIR = os.path.join(PACKAGE, "rcps")
REPOSITORY = os.path.dirname(PACKAGE)


def rcp_path(benchmark: str, rules_version: str) -> str:
    return os.path.join(RCP_DIR, f"{benchmark}-{rules_version}.json")


def shown(path: str) -> str:
    """A path as messages and RCP files name it: relative to the repository when inside it."""
    relative = os.path.relpath(os.path.abspath(path), REPOSITORY)
    return os.path.abspath(path) if relative.startswith(os.pardir) else relative


# ---------------------------------------------------------------- reading


def load(path: str, benchmark: str, submission_runs: int) -> References:
    """The reference points in an RCP file, for submissions of `submission_runs` runs; refused (BadInput) unless
    every entry is one batch size of `benchmark` with at least 3 runs that converged."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise BadInput(f"cannot read RCP file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise BadInput(f"RCP file {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise BadInput(f"RCP file {path} holds no RCP entries (an object of them, keyed like {benchmark}_ref_8)")
    entries: Dict[str, tuple] = {}
    batch_sizes = set()
    for name, entry in raw.items():
        problem = _entry_problem(entry, benchmark)
        if problem:
            raise BadInput(f"RCP file {path}, entry {name}: {problem}")
        if entry["BS"] in batch_sizes:
            raise BadInput(f"RCP file {path}: two entries for batch size {entry['BS']}")
        batch_sizes.add(entry["BS"])
        entries[name] = (entry["BS"], [float(e) for e in entry["Epochs to converge"]])
    return References(benchmark, entries, submission_runs)


def _entry_problem(entry, benchmark: str):
    if not isinstance(entry, dict):
        return "not an object"
    if entry.get("Benchmark") != benchmark:
        return f"its Benchmark is {entry.get('Benchmark')!r}, not {benchmark!r}"
    if not isinstance(entry.get("BS"), int) or isinstance(entry["BS"], bool) or entry["BS"] < 1:
        return f"BS must be a positive integer, not {entry.get('BS')!r}"
    epochs = entry.get("Epochs to converge")
    if (not isinstance(epochs, list) or len(epochs) < 3
            or not all(_positive_number(e) for e in epochs)):
        return "'Epochs to converge' must list at least 3 positive numbers (an olympic mean drops two)"
    return None


def _positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# ---------------------------------------------------------------- building


def rcp_definition(benchmark: str, rules_version: str) -> Benchmark:
    """The definition whose RCPs are written; refused (BadInput) unless it is timed and `rules_version` current."""
    definition = get_benchmark(benchmark)
    if definition.target is None:
        raise BadInput(f"the {benchmark} benchmark is not scored by time to train: it has no RCPs")
    if rules_version != definition.rules_version:
        raise BadInput(f"rules version {rules_version} is not the {benchmark} benchmark's current one "
                       f"({definition.rules_version}): only runs under the current rules can be checked as compliant")
    return definition


def build(benchmark: str, rules_version: str, logs: Sequence[str]) -> Dict[str, dict]:
    """The RCP entries from reference runs' logs, one per global batch size, in batch size order.

    Refused (BenchmarkError, every reason listed, nothing built) unless each log is a compliant, converged run of
    this benchmark under `rules_version`, the current one, and each batch size has at least 2N runs (N: the
    benchmark's runs per submission, as MLPerf asks of references) that logged the same hyperparameters."""
    definition = rcp_definition(benchmark, rules_version)
    if not logs:
        raise BadInput("no logs given")
    refused: List[str] = []
    records = []
    for path in logs:
        try:
            records.append(parse_log(path))
        except BenchmarkError as exc:
            refused.append(str(exc))
    for item in examine_records([(r, benchmark, r.implementation) for r in records]):
        reason = item.reason or _not_reference(item.record)
        if reason:
            refused.append(f"{item.record.path}: {reason}")
    if refused:
        raise BenchmarkError(f"{len(refused)} of {len(logs)} logs are no reference run of the {benchmark} benchmark "
                             f"(rules {rules_version}); nothing written:\n  " + "\n  ".join(refused))
    groups: Dict[int, List[RunRecord]] = {}
    for record in records:
        groups.setdefault(record.global_batch_size, []).append(record)
    needed = 2 * definition.runs
    problems = [_group_problem(size, group, needed, definition.runs) for size, group in sorted(groups.items())]
    problems = [p for p in problems if p]
    if problems:
        raise BenchmarkError("; ".join(problems) + "; nothing written")
    return {f"{benchmark}_ref_{size}": _entry(benchmark, size, group) for size, group in sorted(groups.items())}


def _not_reference(record: RunRecord):
    if not record.converged:
        return f"it did not converge (status {record.status}): every reference run must reach the target"
    if record.epochs_to_converge is None:
        return "it logs no eval_accuracy with an epoch_num before its run_stop"
    if not isinstance(record.global_batch_size, int):
        return "it logs no global_batch_size"
    return None


def _group_problem(batch_size: int, group: Sequence[RunRecord], needed: int, runs: int):
    if len(group) < needed:
        return (f"batch size {batch_size} has {len(group)} reference runs; an RCP needs at least {needed} "
                f"(twice the {runs} runs of a submission)")
    first = group[0]
    for record in group[1:]:
        for key in sorted(set(first.hyperparameters) | set(record.hyperparameters)):
            if first.hyperparameters.get(key) != record.hyperparameters.get(key):
                return (f"batch size {batch_size}: its runs differ in {key} ({first.hyperparameters.get(key)!r} in "
                        f"{first.path}, {record.hyperparameters.get(key)!r} in {record.path}): an RCP is one set of "
                        "hyperparameters")
    return None


def _entry(benchmark: str, batch_size: int, group: Sequence[RunRecord]) -> dict:
    days = sorted({datetime.datetime.fromtimestamp(r.start_ms / 1000, datetime.timezone.utc).date().isoformat()
                   for r in group})
    return {
        "Benchmark": benchmark,
        "BS": batch_size,
        "Hyperparams": dict(sorted(group[0].hyperparameters.items())),
        "Epochs to converge": [r.epochs_to_converge for r in group],
        "Platform": ", ".join(sorted({str(r.system or "not logged") for r in group})),
        "Precision": ", ".join(sorted({str(r.precision or "not logged") for r in group})),
        "When": days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}",
        "Logs": [shown(r.path) for r in group],
    }


# ---------------------------------------------------------------- writing


def write(path: str, entries: Dict[str, dict], force: bool = False) -> bool:
    """Write the entries to `path`, atomically; an existing file is replaced only with `force` (returns whether
    one was)."""
    existed = os.path.exists(path)
    if existed and not force:
        raise BenchmarkError(f"{shown(path)} exists; nothing written (give --force to replace it)")
    text = json.dumps(entries, indent=4) + "\n"
    # A list of numbers on one line, as MLPerf's RCP files have them.
    text = re.sub(r"\[\s+([-+0-9.eE,\s]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with published(path) as temporary, open(temporary, "w") as handle:
            handle.write(text)
    except OSError as exc:
        raise BenchmarkError(f"cannot write {path}: {exc.strerror}") from None
    return existed
