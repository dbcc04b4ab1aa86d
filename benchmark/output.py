"""Output folders: created and checked in one place; the run's folder with its saved configurations, numbered
output files and metric CSV files."""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Sequence

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


def numbered_paths(folder: str, names: Sequence[str], index: int) -> List[str]:
    """`names` in `folder` with number `index` before the first period (0: the names themselves)."""
    if index == 0:
        return [os.path.join(folder, name) for name in names]
    return [os.path.join(folder, f"{stem}.{index}.{rest}" if rest else f"{stem}.{index}")
            for stem, _, rest in (name.partition(".") for name in names)]


def unused_paths(folder: str, names: Sequence[str]) -> List[str]:
    """Paths in `folder` for files that go together, none of which exists: the names themselves, else all
    numbered with the first number that is free for every one (mlperf.log, mlperf.1.log, ...; predictions.h5
    and inference_report.json, then predictions.1.h5 and inference_report.1.json, ...). Earlier runs' files
    are never overwritten."""
    index = 0
    while any(os.path.exists(path) for path in numbered_paths(folder, names, index)):
        index += 1
    return numbered_paths(folder, names, index)


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

    def unused(self, *names: str) -> List[str]:
        """Paths for `names` in the run folder, none of which exists yet (see `unused_paths`)."""
        return unused_paths(self.path, names)

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
    """Rows of metrics, appended, never rewritten: what was written stays as it was.

    A resumed run appends to the interrupted run's file. Its rows past the
    checkpoint the run resumes from stay too (those steps ran; the resumed
    run runs them again), so a step can have several rows. Callers add a
    column that tells them apart (training: `mlperf_log`, the name of the
    invocation's MLPerf log, mlperf.log then mlperf.1.log, ...); a reader that
    wants one row per step keeps, for each step, the row of the latest log.
    A file with other columns (an older version's) is left alone and the rows
    go to the next free numbered name (train_metrics.1.csv).

    `enabled=False` (ranks other than an instance's rank 0) writes nothing.
    """

    def __init__(self, path: str, columns: Sequence[str], enabled: bool = True):
        self.path = path
        self.columns = list(columns)
        self.enabled = enabled

    def start(self) -> None:
        """Continue the file (its header must be ours) or begin it with the header."""
        if not self.enabled:
            return
        folder, name = os.path.split(self.path)
        index = 0
        while self._header() not in (None, self.columns):  # another layout's file: the next numbered one
            index += 1
            self.path = numbered_paths(folder, [name], index)[0]
        if index:
            print(f"{os.path.join(folder, name)} has other columns (an older version's): it is kept, "
                  f"this run's rows go to {self.path}", flush=True)
        if self._header() is None:
            with open(self.path, "w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self.columns).writeheader()
        else:
            self._end_last_line()

    def _header(self) -> Optional[List[str]]:
        """The file's column names; None when it is missing or empty."""
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return None
        with open(self.path, newline="") as handle:
            return next(csv.reader(handle), [])

    def _end_last_line(self) -> None:
        """A row cut short by a crash stays on its own line instead of running into the next one."""
        with open(self.path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\r\n")  # the csv module's line ending

    def append(self, row: Dict[str, object]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _format(v) for k, v in row.items()}
            )


def _format(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value
