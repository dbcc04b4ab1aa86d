"""Where checkpoints go, which is the latest, and how many are kept.

The implementation writes its own file (model, optimizer, loss scaler, RNG);
the harness records beside it what it needs to continue exactly: the number
of completed steps and the seeds. Both are published with
`benchmark.durable.published` (written aside, flushed to disk, renamed), the
model file before `latest.json`, so a crash, power loss included, never
leaves the index pointing at a partial checkpoint.
"""
from __future__ import annotations

import json
import os
import zipfile
import zlib
from dataclasses import asdict, dataclass
from typing import List, Optional

from benchmark.durable import published
from benchmark.errors import DataError

KEEP = 5  # as upstream: the last five


@dataclass
class CheckpointRecord:
    step: int  # completed training steps
    file: str  # name inside the checkpoint directory
    run_seed: int
    data_seed: int


class CheckpointStore:
    def __init__(self, directory: str, suffix: str):
        self.directory = directory
        self.suffix = suffix
        self.index = os.path.join(directory, "latest.json")

    def path_for(self, step: int) -> str:
        return os.path.join(self.directory, f"model-{step}{self.suffix}")

    def latest(self) -> Optional[CheckpointRecord]:
        if not os.path.exists(self.index):
            return None
        try:
            with open(self.index) as handle:
                record = CheckpointRecord(**json.load(handle)["latest"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{self.index}: unreadable checkpoint index ({exc})") from exc
        if not os.path.exists(os.path.join(self.directory, record.file)):
            raise DataError(f"{self.index}: names {record.file}, which is missing")
        return record

    def latest_path(self) -> Optional[str]:
        record = self.latest()
        return None if record is None else os.path.join(self.directory, record.file)

    def commit(self, record: CheckpointRecord) -> None:
        """Record a checkpoint whose file is already written, then prune old ones."""
        history = self._history()
        history = [r for r in history if r.step != record.step] + [record]
        with published(self.index) as temporary, open(temporary, "w") as handle:
            json.dump({"latest": asdict(record), "history": [asdict(r) for r in history[-KEEP:]]}, handle, indent=1)
        for old in history[:-KEEP]:
            path = os.path.join(self.directory, old.file)
            if os.path.exists(path):
                os.remove(path)

    def _history(self) -> List[CheckpointRecord]:
        if not os.path.exists(self.index):
            return []
        with open(self.index) as handle:
            return [CheckpointRecord(**r) for r in json.load(handle).get("history", [])]


def require_checkpoint(path: str) -> str:
    """`path`, refused in one line when it is missing or damaged (checked before a run writes anything).

    Every implementation's checkpoint is a zip archive (torch.save's format,
    numpy's .npz), so a truncated or damaged file is found here by the
    archive's own structure and CRCs, without the framework: reading it
    once costs about as much as copying it.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable checkpoint (truncated, or not one: {exc})") from exc
    if damaged is not None:
        raise DataError(f"{path}: damaged checkpoint (its member {damaged} fails its CRC check)")
    return path
