"""A study's report: per seed the epochs and time to the target, their spread, and the curves with their knees.

For benchmark runs and the target they ran under, the epochs to target are
MLPerf's reading of each log (the epoch of the last evaluation before a
successful run_stop) and the time-to-train is run_start to run_stop. For any
other target, and for explore runs, both come from the curve: the first
evaluation at which all three metrics meet the target, and the seconds from
run_start to that evaluation's result. Runs that never reach the target are
listed and left out of every statistic, the CV included.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from benchmark.convergence import records, stats
from benchmark.convergence.records import RunRecord
from benchmark.convergence.spec import StudySpec, target_of
from benchmark.convergence.study import StudyFolder
from benchmark.durable import published
from benchmark.errors import ConfigError
from benchmark.plots import pyplot
from benchmark.rules import TARGET_METRICS, Target

REPORT, CURVES = "report.md", "curves.png"


@dataclass(frozen=True)
class SeedRow:
    seed: int
    status: str
    epochs: Optional[float]  # None: the target was never met
    minutes: Optional[float]
    evaluations: Optional[int]  # the evaluation that first met the target, counted from 1 (the 10th: 10)
    last_epoch: Optional[float]  # of the run's last evaluation

    @property
    def reached(self) -> bool:
        return self.epochs is not None


@dataclass(frozen=True)
class Knee:
    epoch: float
    value: float  # of the mean curve there
    final: float  # the mean curve's last value


@dataclass
class Report:
    spec: StudySpec
    target: Target
    own_target: bool  # benchmark runs, judged by the target they ran under
    rows: List[SeedRow]
    epochs: Optional[stats.Spread]
    minutes: Optional[stats.Spread]
    evaluations: Optional[stats.Spread]
    knees: Dict[str, Optional[Knee]]
    means: Dict[str, List[Tuple[float, float, int]]]  # metric -> mean curve
    parallel: List[int]  # seeds run beside others (--parallel > 1)
    implementations: List[str]
    batch_sizes: List[int]
    runs: List[RunRecord]


def parse_target(text: str) -> Target:
    parts = text.split(",")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= value <= 1 for value in values):
        raise ConfigError(f"--target '{text}': give cosmic IoU, neutrino IoU and non-background accuracy, three "
                          f"numbers between 0 and 1 separated by commas (e.g. 0.65,0.35,0.75)")
    return target_of(values)


def load_study(path: str) -> Tuple[StudySpec, List[RunRecord]]:
    folder = StudyFolder(path)
    if not os.path.isdir(folder.path):
        raise ConfigError(f"{path}: no such study folder")
    spec = folder.stored_spec()
    if spec is None:
        raise ConfigError(f"{path}: not a study folder (no study.json)")
    found = [records.load(os.path.join(run, records.RECORD)) for _, run in sorted(folder.finished().items())]
    if not found:
        raise ConfigError(f"{path}: no finished runs yet")
    return spec, found


def build(path: str, target: Optional[Target] = None) -> Report:
    spec, runs = load_study(path)
    target = target or target_of(spec.target)
    own = not spec.explore and target == target_of(spec.target)
    rows = [_row(run, target, own) for run in runs]
    reached = [row for row in rows if row.reached]
    means = {metric: stats.mean_curve([[(e.epoch, getattr(e, metric)) for e in run.evaluations] for run in runs])
             for metric in TARGET_METRICS}
    return Report(spec=spec, target=target, own_target=own, rows=rows,
                  epochs=stats.spread([row.epochs for row in reached]),
                  minutes=stats.spread([row.minutes for row in reached]),
                  evaluations=stats.spread([row.evaluations for row in reached]),
                  knees={metric: _knee(curve) for metric, curve in means.items()}, means=means,
                  parallel=[run.seed for run in runs if run.parallel > 1],
                  implementations=sorted({run.implementation for run in runs}),
                  batch_sizes=sorted({run.global_batch_size for run in runs if run.global_batch_size is not None}),
                  runs=runs)


def _row(run: RunRecord, target: Target, own: bool) -> SeedRow:
    last = run.evaluations[-1].epoch if run.evaluations else None
    if own:  # MLPerf's reading of the log and its clock
        if run.epochs_to_target is None:
            return SeedRow(run.seed, run.status, None, None, None, last)
        return SeedRow(run.seed, run.status, run.epochs_to_target, run.time_to_train_s / 60.0,
                       len(run.evaluations), last)
    index = stats.first_reaching(run.evaluations, target)
    if index is None:
        return SeedRow(run.seed, run.status, None, None, None, last)
    hit = run.evaluations[index]
    return SeedRow(run.seed, run.status, hit.epoch, hit.seconds / 60.0, index + 1, last)


def _knee(curve: Sequence[Tuple[float, float, int]]) -> Optional[Knee]:
    index = stats.knee([epoch for epoch, _, _ in curve], [value for _, value, _ in curve])
    return None if index is None else Knee(epoch=curve[index][0], value=curve[index][1], final=curve[-1][1])


# ---------------------------------------------------------------- Markdown


def markdown(report: Report) -> str:
    spec, target = report.spec, report.target
    time_column = ("time-to-train (min)" if report.own_target
                   else "minutes to that evaluation")
    lines = [f"# Convergence study: {spec.benchmark}", "",
             f"- runs: {spec.describe()}",
             f"- implementation: {', '.join(report.implementations)}; global batch size: "
             f"{', '.join(map(str, report.batch_sizes)) or 'not logged'}",
             f"- target: {target.describe()}" + ("" if report.own_target else
                                                  " (found on each run's curve; not a benchmark time-to-train)"),
             "", f"| seed | status | epochs to target | {time_column} | evaluations to target |",
             "|---:|---|---:|---:|---:|"]
    for row in report.rows:
        # an explore run logs success when it ran all its epochs, which says nothing of the target
        status = "completed" if spec.explore and row.status == "success" else row.status
        if row.reached:
            lines.append(f"| {row.seed} | {status} | {row.epochs:.2f} | {row.minutes:.2f} | {row.evaluations} |")
        else:
            lines.append(f"| {row.seed} | {status} | not reached | - | - |")
    lines += ["", _statistics_table(report, time_column), ""]
    missed = [row for row in report.rows if not row.reached]
    if missed:
        # an explore run's status only says it ran all its epochs
        listing = ", ".join(f"seed {row.seed} ({'' if spec.explore else row.status + ', '}last evaluation at epoch "
                            f"{_number(row.last_epoch)})" for row in missed)
        lines += [f"Never reached the target: {listing}. They are left out of every statistic above, the CV "
                  f"included.", ""]
    lines += ["'evaluations to target' counts the evaluations up to the one that met the target (the 10th: 10). "
              "CV = stdev / mean (sample stdev); the olympic mean drops the fastest and the slowest run.", ""]
    if report.parallel:
        lines += [f"Seeds {', '.join(map(str, report.parallel))} ran beside other seeds (--parallel > 1): their "
                  f"time-to-train shares the cores and is not comparable; their epochs are.", ""]
    lines += [_knee_table(report), ""]
    return "\n".join(lines)


def _statistics_table(report: Report, time_column: str) -> str:
    reached = sum(row.reached for row in report.rows)
    lines = [f"Runs that reached the target: {reached} of {len(report.rows)}.", "",
             f"| | epochs to target | {time_column} | evaluations to target |", "|---|---:|---:|---:|"]
    columns = (report.epochs, report.minutes, report.evaluations)
    for name, field, percent in (("mean", "mean", False), ("stdev", "stdev", False), ("CV", "cv", True),
                                 ("olympic mean", "olympic", False), ("median", "median", False),
                                 ("min", "low", False), ("max", "high", False)):
        cells = [_cell(None if spread is None else getattr(spread, field), percent) for spread in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _knee_table(report: Report) -> str:
    lines = ["Knee of the mean curve (over the runs evaluated at each epoch): the point farthest above the chord "
             "from its first to its last point, both axes scaled so that the chord runs from (0, 0) to (1, 1) "
             "(Kneedle without smoothing)." + ("" if report.spec.explore else
                                               " Benchmark runs stop at the target, so its later points average the "
                                               "slower runs only: --explore runs give the whole curve."), "",
             "| metric | target | knee at epoch | mean there | mean at the last epoch |", "|---|---:|---:|---:|---:|"]
    thresholds = _thresholds(report.target)
    for metric in TARGET_METRICS:
        knee = report.knees[metric]
        cells = ["none", "-", "-"] if knee is None else [f"{knee.epoch:.2f}", f"{knee.value:.3f}", f"{knee.final:.3f}"]
        lines.append(f"| {TARGET_METRICS[metric]} | {thresholds[metric]:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _thresholds(target: Target) -> Dict[str, float]:
    return {"cosmic_iou": target.cosmic_iou, "neutrino_iou": target.neutrino_iou,
            "non_bkg_accuracy": target.non_bkg_accuracy}


def _cell(value: Optional[float], percent: bool) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f} %" if percent else f"{value:.2f}"


def _number(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------- the figure


def plot(report: Report, path: str) -> None:
    """One panel per target metric: every run's curve, the mean curve, the threshold and the knee."""
    plt = pyplot()
    thresholds, runs = _thresholds(report.target), report.runs
    fig, axes = plt.subplots(1, len(TARGET_METRICS), figsize=(15, 4.6), sharex=True)
    for ax, metric in zip(axes, TARGET_METRICS):
        for run in runs:
            ax.plot([e.epoch for e in run.evaluations], [getattr(e, metric) for e in run.evaluations],
                    linewidth=0.8, alpha=0.45, marker=".", markersize=3)
        mean = report.means[metric]
        ax.plot([p[0] for p in mean], [p[1] for p in mean], color="black", linewidth=2, label="mean of the runs")
        ax.axhline(thresholds[metric], color="red", linestyle="--", linewidth=1.2,
                   label=f"target {thresholds[metric]:g}")
        knee = report.knees[metric]
        if knee is not None:
            ax.axvline(knee.epoch, color="tab:blue", linestyle=":", linewidth=1.2)
            ax.plot([knee.epoch], [knee.value], marker="o", color="tab:blue", markersize=7,
                    label=f"knee: epoch {knee.epoch:.2f}")
        ax.set_title(TARGET_METRICS[metric], fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    reached = sum(row.reached for row in report.rows)
    fig.suptitle(f"{report.spec.benchmark} (rules {report.spec.rules_version}), "
                 f"{'explore' if report.spec.explore else 'benchmark'} runs: {len(runs)} seeds, "
                 f"{reached} reached the target", fontsize=11)
    fig.tight_layout()
    with published(path) as temporary:
        fig.savefig(temporary, dpi=100, format="png")
    plt.close(fig)


def write(path: str, target: Optional[Target] = None) -> Tuple[str, List[str]]:
    """The report's Markdown, written to DIR/report.md, and DIR/curves.png; returns (text, paths written)."""
    report = build(path, target)
    text = markdown(report)
    written = [os.path.join(path, REPORT), os.path.join(path, CURVES)]
    with published(written[0]) as temporary, open(temporary, "w") as handle:
        handle.write(text)
    plot(report, written[1])
    return text, written
