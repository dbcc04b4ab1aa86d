"""Output folders: created and checked in one place; the run's folder with its saved configurations and metric CSV files."""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Sequence

from benchmark.errors import BenchmarkError

CHECKPOINTS = "checkpoints"  # the run folder's subfolder for them


def make_writable_directory(path: str, name: str, inside: Sequence[str] = ()) -> None:
    """Create `path` and its subfolders `inside` where missing, refusing in one line (naming the setting
    `name`) a folder that cannot be made or written to."""
    try:
        os.makedirs(path, exist_ok=True)
        for folder in inside:
            os.makedirs(os.path.join(path, folder), exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(f"{name}: cannot create it ({exc.strerror})") from exc
    if not os.access(path, os.W_OK):
        raise BenchmarkError(f"{name}: not writable")


class RunDirectory:
    """`run.output_dir`, created on first use; nothing in it is overwritten silently."""

    def __init__(self, path: str):
        self.path = path

    def create(self) -> "RunDirectory":
        make_writable_directory(self.path, f"run.output_dir={self.path}", inside=[CHECKPOINTS])
        return self

    @property
    def checkpoints(self) -> str:
        return os.path.join(self.path, CHECKPOINTS)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def save_config(self, text: str, mode: str) -> str:
        """Keep every invocation's configuration: config.yaml, then config.<mode>.1.yaml, ..."""
        path = self.file("config.yaml")
        if os.path.exists(path):
            with open(path) as handle:
                if handle.read() == text:
                    return path
            index = 1
            while os.path.exists(path := self.file(f"config.{mode}.{index}.yaml")):
                index += 1
        with open(path, "w") as handle:
            handle.write(text)
        return path


class MetricsCSV:
    """Rows of metrics keyed by step; a resumed run drops rows past its checkpoint.

    `enabled=False` (ranks other than an instance's rank 0) writes nothing.
    """

    def __init__(self, path: str, columns: Sequence[str], enabled: bool = True):
        self.path = path
        self.columns = list(columns)
        self.enabled = enabled

    def start(self, resume_step: int) -> None:
        """Begin a run that continues after `resume_step` completed steps (0: fresh)."""
        if not self.enabled:
            return
        kept: List[Dict[str, str]] = []
        if resume_step > 0 and os.path.exists(self.path):
            with open(self.path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, row: Dict[str, object]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _format(v) for k, v in row.items()}
            )


def _format(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value
