"""One finished run of a study, as its MLPerf log tells it, and its record.json.

A record holds the validation curve (one point per `eval_accuracy` event:
epoch, step, cosmic IoU, neutrino IoU, non-background accuracy, mIoU and the
seconds since run_start), the status of `run_stop`, the time-to-train
(run_start to run_stop) and the epochs to target as MLPerf reads them: the
`epoch_num` of the last `eval_accuracy` before a successful `run_stop` (none
for an aborted run, nor for an explore run, which has no target; the report
finds any target on the curve).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from benchmark.durable import published
from benchmark.errors import BenchmarkError
from benchmark.results import read_events
from benchmark.rules import TARGET_METRICS

RECORD = "record.json"
LOG = "mlperf.log"


@dataclass(frozen=True)
class Evaluation:
    epoch: float
    step: int
    cosmic_iou: float
    neutrino_iou: float
    non_bkg_accuracy: float
    miou: float
    seconds: float  # since run_start, when the evaluation's accuracy was logged

    def metrics(self) -> Dict[str, float]:
        return {name: getattr(self, name) for name in TARGET_METRICS}


@dataclass
class RunRecord:
    seed: int
    status: str  # run_stop's: success or aborted
    time_to_train_s: float
    epochs_to_target: Optional[float]  # MLPerf's reading; None unless the run stopped successfully at a target
    evaluations: List[Evaluation]
    benchmark: str  # the log's cosmictagger_benchmark ("none" for an explore run)
    rules_version: str
    implementation: str
    global_batch_size: Optional[int]
    parallel: int = 1  # runs the study ran at once: time-to-train is comparable only at 1
    command: List[str] = field(default_factory=list)

    @property
    def reached_own_target(self) -> bool:
        return self.epochs_to_target is not None

    def to_json(self) -> Dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, values: Dict[str, object]) -> "RunRecord":
        evaluations = [Evaluation(**item) for item in values["evaluations"]]
        return cls(**{**values, "evaluations": evaluations})


def from_log(path: str, seed: int) -> Optional[RunRecord]:
    """The run's record; None when the log has no run_start and run_stop (the run did not end)."""
    start_ms = stop_ms = status = None
    plain: Dict[str, object] = {}
    accuracies = []
    for event in read_events(path):
        key, metadata = event["key"], event.get("metadata") or {}
        if key in ("cosmictagger_benchmark", "cosmictagger_rules_version", "implementation", "global_batch_size"):
            plain.setdefault(key, event.get("value"))
        elif key == "run_start" and start_ms is None:
            start_ms = event["time_ms"]
        elif key == "run_stop" and start_ms is not None and stop_ms is None:
            stop_ms, status = event["time_ms"], str(metadata.get("status", "aborted")).lower()
        elif key == "eval_accuracy" and start_ms is not None and stop_ms is None:
            accuracies.append(event)
    if stop_ms is None:
        return None
    evaluations = [_evaluation(path, event, start_ms) for event in accuracies]
    epochs = evaluations[-1].epoch if status == "success" and evaluations and plain.get(
        "cosmictagger_benchmark", "none") != "none" else None
    return RunRecord(seed=seed, status=status, time_to_train_s=(stop_ms - start_ms) / 1000.0, epochs_to_target=epochs,
                     evaluations=evaluations, benchmark=str(plain.get("cosmictagger_benchmark", "none")),
                     rules_version=str(plain.get("cosmictagger_rules_version", "none")),
                     implementation=str(plain.get("implementation", "unknown")),
                     global_batch_size=plain.get("global_batch_size"))


def _evaluation(path: str, event: dict, start_ms: float) -> Evaluation:
    metadata = event["metadata"]
    try:
        return Evaluation(epoch=float(metadata["epoch_num"]), step=int(metadata["step_num"]),
                          cosmic_iou=float(metadata["cosmic_iou"]), neutrino_iou=float(metadata["neutrino_iou"]),
                          non_bkg_accuracy=float(metadata["non_bkg_accuracy"]), miou=float(event["value"]),
                          seconds=(event["time_ms"] - start_ms) / 1000.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkError(f"{path}: an eval_accuracy event lacks the target's metrics ({exc})") from None


def save(record: RunRecord, path: str) -> None:
    with published(path) as temporary:
        with open(temporary, "w") as handle:
            json.dump(record.to_json(), handle, indent=1)
            handle.write("\n")


def load(path: str) -> RunRecord:
    try:
        with open(path) as handle:
            return RunRecord.from_json(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchmarkError(f"{path}: not a readable run record ({exc})") from None
