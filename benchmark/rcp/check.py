"""A submission's RCP check: its runs' epochs to converge held to its benchmark's reference points.

The first N runs (N from the benchmark definition, as `benchmark.results` scores them) are checked; each
converged run's epochs to converge is the `epoch_num` of its last `eval_accuracy` before run_stop, and a run
that missed the target counts as not converged. A benchmark whose RCP file does not exist fails.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from benchmark.errors import BenchmarkError
from benchmark.rcp import BadInput
from benchmark.rcp.files import load, rcp_path, shown
from benchmark.rcp.points import PRUNED, References, Verdict, evaluate
from benchmark.results import RunRecord, examine_records, parse_log, result_files, time_to_train
from benchmark.rules import get_benchmark

PASS, FAIL, NO_RCP = "pass", "fail", "no RCP"


@dataclass
class Outcome:
    """The RCP check of one submission, with everything its report shows."""

    status: str  # pass, fail, or no RCP (which fails too)
    reason: str
    rcp_file: str
    rcp_pass: str = PRUNED
    runs: Sequence[RunRecord] = ()  # the scored runs
    required: int = 0  # runs a submission needs
    references: Optional[References] = None
    batch_size: Optional[int] = None
    epochs: List[float] = field(default_factory=list)  # per scored run; math.inf: not converged
    verdict: Optional[Verdict] = None
    time_to_train_min: Optional[float] = None  # olympic mean
    normalised_min: Optional[float] = None  # the score: time to train x the verdict's norm factor, when it passes
    set_aside: Sequence[str] = ()  # logs of the folder that ran under other rules versions (not part of it)

    @property
    def passed(self) -> bool:
        return self.status == PASS

    @property
    def incomplete(self) -> bool:
        """Fewer runs than a submission needs (so far)."""
        return len(self.runs) < self.required


def check_runs(benchmark: str, rules_version: str, runs: Sequence[RunRecord], rcps: Optional[str] = None,
               rcp_pass: str = PRUNED) -> Outcome:
    """Hold compliant runs of a benchmark (in run order) to its RCP file, or to `rcps` when given (which must
    exist)."""
    definition = get_benchmark(benchmark)
    if definition.target is None:
        raise BadInput(f"the {benchmark} benchmark is not scored by time to train: it has no RCPs to check")
    path = rcps or rcp_path(benchmark, rules_version)
    scored = list(runs[:definition.runs])
    outcome = Outcome(FAIL, "", shown(path), rcp_pass, scored, definition.runs)
    if rcps is None and not os.path.exists(path):
        outcome.status = NO_RCP
        outcome.reason = (f"no RCP file {shown(path)}: the {benchmark} benchmark (rules {rules_version}) has no "
                          f"reference convergence points yet; they are built from reference runs' logs by "
                          f"`python -m benchmark.rcp write --benchmark {benchmark} LOG_OR_DIR ...`")
        return outcome
    outcome.references = load(path, benchmark, definition.runs)
    if len(scored) < definition.runs:
        outcome.reason = f"incomplete: {len(scored)} of {definition.runs} runs"
        return outcome
    sizes = sorted({r.global_batch_size for r in scored}, key=str)
    if len(sizes) != 1 or not isinstance(sizes[0], int):
        outcome.reason = ("the runs must log one global_batch_size to be held to an RCP, not "
                          f"{', '.join(map(str, sizes))}")
        return outcome
    outcome.batch_size = sizes[0]
    outcome.epochs = epochs_to_converge(scored)
    outcome.verdict = evaluate(outcome.references, outcome.batch_size, outcome.epochs, rcp_pass)
    outcome.status = PASS if outcome.verdict.passed else FAIL
    outcome.reason = outcome.verdict.reason
    outcome.time_to_train_min = time_to_train(scored)
    if outcome.passed and outcome.time_to_train_min is not None:
        outcome.normalised_min = outcome.time_to_train_min * outcome.verdict.norm_factor
    return outcome


def epochs_to_converge(runs: Sequence[RunRecord]) -> List[float]:
    """Each run's epochs to converge as MLPerf reads it; math.inf for a run that did not converge."""
    return [r.epochs_to_converge if r.converged and r.epochs_to_converge is not None else math.inf for r in runs]


def check_folder(folder: str, rcps: Optional[str] = None, rcp_pass: str = PRUNED) -> Outcome:
    """The RCP check of a stored submission: the result_<i>.txt logs of one folder that ran under the
    benchmark's current rules version, which must all be compliant runs of one benchmark and implementation
    (else it fails, saying which and why). Logs of other rules versions belong to no submission under the
    current rules (results are scored per version): they are set aside and named in the report."""
    if not os.path.isdir(folder):
        raise BadInput(f"no such folder {folder}")
    paths = [path for _, path in result_files(folder)]
    if not paths:
        raise BadInput(f"no result_<i>.txt logs in {folder}")
    try:
        records = [parse_log(path) for path in paths]
    except BenchmarkError as exc:
        raise BadInput(str(exc)) from None
    first = records[0]
    if any(r.benchmark != first.benchmark for r in records):
        raise BadInput(f"the logs in {folder} are runs of different benchmarks "
                       f"({', '.join(sorted({str(r.benchmark) for r in records}))})")
    if first.benchmark in (None, "none"):
        raise BadInput(f"{first.path} is no benchmark run (cosmictagger_benchmark {first.benchmark!r})")
    current = get_benchmark(first.benchmark).rules_version
    set_aside = [r.path for r in records if r.rules_version != current]
    records = [r for r in records if r.rules_version == current]
    if not records:
        raise BadInput(f"no run in {folder} ran under the {first.benchmark} benchmark's current rules (version "
                       f"{current}): its {len(set_aside)} logs belong to older ones")
    rejected = [item for item in examine_records([(r, first.benchmark, first.implementation) for r in records])
                if item.reason]
    if rejected:
        outcome = Outcome(FAIL, f"{len(rejected)} of {len(records)} logs are no compliant result: "
                                + "; ".join(f"{item.record.path}: {item.reason}" for item in rejected),
                          shown(rcps or rcp_path(first.benchmark, current)), rcp_pass)
    else:
        outcome = check_runs(first.benchmark, current, records, rcps, rcp_pass)
    outcome.set_aside = set_aside
    return outcome


# ---------------------------------------------------------------- report


def _epochs_text(value: float) -> str:
    return "not converged" if math.isinf(value) else f"{value:g}"


def report(outcome: Outcome, title: str) -> str:
    """What the check found, line by line, ending with the verdict."""
    lines = [title]
    if outcome.set_aside:
        lines.append(f"set aside: {len(outcome.set_aside)} logs of other rules versions "
                     f"({', '.join(os.path.basename(path) for path in outcome.set_aside)})")
    if outcome.references is not None:
        points = outcome.references.points(outcome.rcp_pass)
        dropped = [p.batch_size for p in outcome.references.full if p not in points]
        lines.append(f"RCP file {outcome.rcp_file}, {outcome.rcp_pass} pass: batch sizes "
                     f"{', '.join(str(p.batch_size) for p in points)}"
                     + (f" (pruned: {', '.join(map(str, dropped))})" if dropped else ""))
    if outcome.epochs:
        lines.append(f"{len(outcome.epochs)} runs at global batch size {outcome.batch_size}, epochs to converge: "
                     f"{', '.join(_epochs_text(e) for e in outcome.epochs)}")
    verdict = outcome.verdict
    if verdict is not None and verdict.point is not None:
        point = verdict.point
        runs = f"{point.runs} reference runs" if point.runs else "interpolated"
        lines.append(f"{point.name} ({runs}): mean {point.mean:.4f} epochs, stdev {point.stdev:.4f}; largest allowed "
                     f"speedup {point.max_speedup:.4f}, so a submission's olympic mean must be at least "
                     f"{point.min_epochs:.4f} epochs")
        scaling = ""
        if verdict.passed:
            scaling = (f"; normalisation factor {verdict.norm_factor:.4f}"
                       + (" (faster than the RCP mean: its time is scaled by RCP mean / submission mean)"
                          if verdict.norm_factor > 1 else " (not faster than the RCP mean)"))
        lines.append(f"submission: olympic mean {verdict.submission_mean:.4f} epochs{scaling}")
    if outcome.time_to_train_min is not None:
        normalised = ""
        if outcome.normalised_min is not None:
            normalised = f", normalised score {outcome.normalised_min:.2f} min"
        lines.append(f"time to train: {outcome.time_to_train_min:.2f} min (olympic mean){normalised}")
    lines.append(f"RCP check {'PASSED' if outcome.passed else 'FAILED'}: {outcome.reason}")
    return "\n".join(lines) + "\n"


def points_table(references: References) -> str:
    """Each reference point's numbers, and whether the pruned pass keeps it."""
    lines = ["batch size  runs  mean epochs  stdev   at least  largest speedup  pruned pass"]
    for point in references.full:
        kept = "kept" if point in references.pruned else "pruned"
        lines.append(f"{point.batch_size:>10}  {point.runs:>4}  {point.mean:>11.4f}  {point.stdev:>6.4f}  "
                     f"{point.min_epochs:>8.4f}  {point.max_speedup:>15.4f}  {kept}")
    return "\n".join(lines) + "\n"
