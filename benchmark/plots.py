"""The results summary's plots: what decides each run, and the throughput of every entry.

`plot_metrics`: for one entry, each of the target's three metrics (cosmic IoU, neutrino IoU, non-background
accuracy, logged as eval_accuracy metadata) against the epoch, one line per run, with the target's threshold
and, where the entry was held to an RCP, its band: from the smallest olympic mean epochs a submission may have
to the RCP mean (converging inside it passes, normalised). `plot_throughput`: median images/s on a log scale, so
that a 2-core CPU and an accelerator both show.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

from benchmark.rules import TARGET_METRICS, get_benchmark

if TYPE_CHECKING:  # benchmark.results draws these plots: importing it here would be circular
    from benchmark.rcp.points import Point
    from benchmark.results import Examined, SummaryRow

def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a compute node
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(key: Tuple[str, str, Optional[str], str], runs: Sequence[Examined], point: Optional[Point],
                 path: str) -> None:
    _save(metrics_figure(key, runs, point), path)


def plot_throughput(rows: Sequence[SummaryRow], path: str) -> None:
    _save(throughput_figure(rows), path)


def _save(fig, path: str) -> None:
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def metrics_figure(key: Tuple[str, str, Optional[str], str], runs: Sequence[Examined], point: Optional[Point]):
    """The target's metrics against epochs for every run of one entry (runs not compliant say so)."""
    plt = pyplot()
    system, benchmark, version, implementation = key
    target = get_benchmark(benchmark).target
    fig, axes = plt.subplots(1, len(TARGET_METRICS), figsize=(15, 4.5), sharex=True)
    for ax, (metric, label) in zip(axes, TARGET_METRICS.items()):
        for item in runs:
            record = item.record
            pairs = [(epoch, values.get(metric)) for (_, _, epoch), values in zip(record.evals, record.eval_metrics)
                     if epoch is not None and values.get(metric) is not None]
            notes = ([] if record.converged else [record.status]) + (["not compliant"] if item.reason else [])
            name = os.path.basename(record.path) + (f" ({', '.join(notes)})" if notes else "")
            ax.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o", markersize=3, label=name)
        if target is not None:
            threshold = getattr(target, metric)
            ax.axhline(threshold, color="black", linestyle="--", linewidth=1, label="the target's threshold")
            label = f"{label} (target >= {threshold})"
        if point is not None:
            ax.axvspan(point.min_epochs, point.mean, color="tab:green", alpha=0.15,
                       label=f"RCP at batch size {point.batch_size}: olympic mean >= {point.min_epochs:.2f} epochs "
                             f"(RCP mean {point.mean:.2f})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    rules = f"rules {version}" if version is not None else "no rules version"
    fig.suptitle(f"{system} / {benchmark} ({rules}) / {implementation}: the target's metrics per validation"
                 + ("" if point is not None else " (no RCP band)"), fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * (len(labels) // 4), 1, 1))
    return fig


def throughput_figure(rows: Sequence[SummaryRow]):
    """Median images/s of compliant runs on a log scale: one group per benchmark and rules version, one bar per
    system and implementation, each labelled with its value."""
    plt = pyplot()
    rows = [r for r in rows if r.images_per_second is not None]
    version = lambda r: "-" if r.rules_version is None else r.rules_version  # noqa: E731
    groups = sorted({(r.benchmark, version(r)) for r in rows})
    series = sorted({(r.system, r.implementation) for r in rows})
    rates = {(r.benchmark, version(r), r.system, r.implementation): r.images_per_second for r in rows}
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(min(16, max(6, 1.5 * len(groups) * len(series))), 4.5))
    for i, (system, implementation) in enumerate(series):
        positions = [g + i * width for g in range(len(groups))]
        heights = [rates.get((*group, system, implementation), float("nan")) for group in groups]  # nan: no bar
        bars = ax.bar(positions, heights, width, label=f"{system} / {implementation}")
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))], [f"{b} (rules {v})" for b, v in groups])
    ax.set_ylabel("images/s (median over runs, log scale)")
    ax.set_title("Training throughput")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
