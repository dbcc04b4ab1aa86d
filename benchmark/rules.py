"""The benchmark definitions: what is fixed, what a submitter may tune, and what counts.

Three benchmarks share one harness:

* `closed`: the real CosmicTagger dataset at 640 x 1024 (data.downsample=1),
  the `uresnet` network, trained until the validation set reaches the target
  (cosmic IoU >= 0.90, neutrino IoU >= 0.70, non-background accuracy
  >= 0.95, the CosmicTagger documentation's goals), evaluated over the whole
  validation set at a fixed cadence. Score: the olympic mean of the
  time-to-train of 5 runs (the fastest and slowest dropped; at most one run
  may miss the target, counted as the slowest).
* `mini`: the same rules on a generated dataset at 160 x 256 with a small
  network, so that a 2-core CPU reaches its target in 10-20 minutes.
* `throughput`: synthetic events, images/s only, a fixed number of steps.

Hyperparameters a submitter may change are listed with their bounds; every
other setting is fixed by the definition, so runs on different systems do
the same work.

Each definition has a rules version (`rules_version`, logged by every run as
`cosmictagger_rules_version`). Bump it whenever a change makes a run under
the new definition incomparable with one under the old: the data (files,
event counts, checksums, generator), the network or loss, the target, the
schedule or its bounds (what may be tuned, max_epochs), the evaluation
cadence, the number of runs or steps. The compliance ruleset accepts only
the current version, and results are scored per version, never mixed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple

from benchmark.errors import ConfigError

BENCHMARK_NAME = "cosmictagger"  # submission_benchmark in MLPerf logs


# The target's metrics, in its order: each is a Target field and an eval_accuracy metadata key; with its label.
TARGET_METRICS: Dict[str, str] = {"cosmic_iou": "cosmic IoU", "neutrino_iou": "neutrino IoU",
                                  "non_bkg_accuracy": "non-background accuracy"}


@dataclass(frozen=True)
class Target:
    """Quality to reach on the whole validation set (all must hold at one evaluation)."""

    cosmic_iou: float
    neutrino_iou: float
    non_bkg_accuracy: float

    def reached(self, metrics: Mapping[str, float]) -> bool:
        return (
            metrics["Average/Cosmic_IoU"] >= self.cosmic_iou
            and metrics["Average/Neutrino_IoU"] >= self.neutrino_iou
            and metrics["Average/Non_Bkg_Accuracy"] >= self.non_bkg_accuracy
        )

    def describe(self) -> str:
        return (
            f"cosmic IoU >= {self.cosmic_iou}, neutrino IoU >= {self.neutrino_iou}, "
            f"non-background accuracy >= {self.non_bkg_accuracy}"
        )


@dataclass(frozen=True)
class DatasetFile:
    name: str
    events: int
    sha256: Optional[str] = None  # None: verified by event count and format only


@dataclass(frozen=True)
class Dataset:
    """The files a benchmark reads and how they are verified before the clock starts."""

    train: DatasetFile
    validation: DatasetFile
    test: DatasetFile
    generated: Optional[Dict[str, object]] = None  # generator arguments, when it is generated


@dataclass(frozen=True)
class Tunable:
    """A setting a submitter may change, with the rule it must satisfy."""

    key: str
    rule: str
    allowed: Callable[[object], bool]


def _positive(value) -> bool:
    return value > 0


def _at_least_one(value) -> bool:
    return value >= 1


def _any(value) -> bool:
    return True


# Settings that only change how the work is done, never what is computed.
EXECUTION_TUNABLES: Tuple[Tunable, ...] = (
    Tunable("run.precision", "any of float32, tf32, mixed, bfloat16", _any),
    Tunable("run.compute_mode", "any", _any),
    Tunable("data.data_format", "any", _any),
    Tunable("data.workers", ">= 1", _at_least_one),
    Tunable("data.worker_processes", "any", _any),
    Tunable("data.data_directory", "where the dataset is", _any),
    Tunable("framework.inter_op_parallelism_threads", "any", _any),
    Tunable("framework.intra_op_parallelism_threads", "any", _any),
    Tunable("framework.environment_variables", "any", _any),
    Tunable("framework.name", "any implementation of the benchmark", _any),
    Tunable("network.conv_mode", "any implementation of the benchmark", _any),
    Tunable("framework.optimized", "any implementation of the benchmark (logged as the implementation)", _any),
    Tunable("framework.xla", "any implementation of the benchmark", _any),
    Tunable("framework.compile_mode", "any", _any),
    # scale-out: how the ranks share the work, not what they compute
    Tunable("run.distributed", "any", _any),
    Tunable("framework.distributed_mode", "any", _any),
    Tunable("run.instances", ">= 1 (weak scaling)", _at_least_one),
    Tunable("run.distributed_port", "any", _any),
    Tunable("run.distributed_timeout", "any", _any),
    Tunable("mode.checkpoint_iteration", "any", _any),
    Tunable("mode.logging_iteration", "any", _any),
    Tunable("run.id", "any", _any),
    Tunable("run.output_dir", "any", _any),
    Tunable("run.seed", "any (drawn from the clock when 0)", _any),
    Tunable("data.seed", "any (drawn from the clock when 0)", _any),
    Tunable("run.profile", "any", _any),
    Tunable("run.system", "the system description of the machine", _any),
    Tunable("data.max_voxels", "any", _any),
)

# Hyperparameters a converging submission may choose (MLPerf HPC "closed" style).
TRAINING_TUNABLES: Tuple[Tunable, ...] = (
    Tunable("run.minibatch_size", ">= 1 (global batch per forward pass)", _at_least_one),
    Tunable("mode.optimizer.gradient_accumulation", ">= 1", _at_least_one),
    Tunable("mode.optimizer.learning_rate", "> 0", _positive),
    Tunable("mode.optimizer.name", "adam or rmsprop", _any),
    Tunable("mode.optimizer.lr_schedule", "reference or flat", _any),
)


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str
    settings: Mapping[str, object]  # fixed key=value settings
    tunables: Tuple[Tunable, ...]
    defaults: Mapping[str, object] = field(default_factory=dict)  # tunables' defaults
    dataset: Optional[Dataset] = None
    target: Optional[Target] = None
    eval_interval_epochs: float = 1.0  # whole validation set every this many epochs
    max_epochs: float = 0.0  # a run that has not reached the target by then is aborted
    runs: int = 1  # runs per submission
    steps: int = 0  # throughput: fixed number of steps
    rules_version: str = "1.0"  # bumped whenever the definition changes what a run does or how it counts (see above)

    def overrides(self) -> Tuple[str, ...]:
        """Command-line settings: the fixed ones, then tunable defaults."""
        items = {**self.defaults, **self.settings}
        return tuple(f"{k}={_text(v)}" for k, v in items.items())

    def check_tunables(self, given: Mapping[str, object]) -> None:
        """Refuse a user setting that the definition fixes or bounds."""
        tunable = {t.key: t for t in self.tunables}
        for key, value in given.items():
            top = _tunable_key(key, tunable)
            if top is None:
                raise ConfigError(f"{key} is fixed by the {self.name} benchmark (tunable: {', '.join(sorted(tunable))})")
            if not tunable[top].allowed(value):
                raise ConfigError(f"{key}={value} breaks the {self.name} benchmark's rule: {tunable[top].rule}")


def _tunable_key(key: str, tunables: Mapping[str, Tunable]) -> Optional[str]:
    for candidate in tunables:
        if key == candidate or key.startswith(candidate + "."):
            return candidate
    return None


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


CLOSED = Benchmark(
    name="closed",
    summary="real dataset, 640x1024, uresnet, time to the documented accuracy",
    settings={
        "data.synthetic": False,
        "data.file": "cosmic_tagging_train.h5",
        "data.aux_file": "cosmic_tagging_val.h5",
        "data.downsample": 1,
        "network": "uresnet",
        "mode.optimizer.loss_balance_scheme": "focal",
        "network.weight_decay": 0.0,
    },
    tunables=EXECUTION_TUNABLES + TRAINING_TUNABLES,
    # a metric line every 10 steps: the host waits for the device only there (and at validations, epoch ends)
    defaults={"run.minibatch_size": 32, "mode.optimizer.learning_rate": 0.0003, "mode.optimizer.lr_schedule": "reference",
              "mode.logging_iteration": 10},
    dataset=Dataset(
        train=DatasetFile("cosmic_tagging_train.h5", 43_075),
        validation=DatasetFile("cosmic_tagging_val.h5", 7_362),
        test=DatasetFile("cosmic_tagging_test.h5", 7_449),
    ),
    target=Target(cosmic_iou=0.90, neutrino_iou=0.70, non_bkg_accuracy=0.95),
    eval_interval_epochs=1.0,
    max_epochs=40.0,
    runs=5,
    rules_version="1.0",
)

MINI = Benchmark(
    name="mini",
    summary="generated dataset, 160x256, a small UResNet: a time-to-accuracy run on a 2-core CPU",
    settings={
        "data.synthetic": False,
        "data.file": "cosmic_tagging_train.h5",
        "data.aux_file": "cosmic_tagging_val.h5",
        "data.downsample": 3,
        "network": "a21",
        "network.network_depth": 4,
        "mode.optimizer.loss_balance_scheme": "light",
        "network.weight_decay": 0.0,
    },
    tunables=EXECUTION_TUNABLES + TRAINING_TUNABLES,
    defaults={"run.minibatch_size": 4, "mode.optimizer.learning_rate": 0.001, "mode.optimizer.lr_schedule": "flat"},
    dataset=Dataset(
        # python -m benchmark.data generate --train 1024 --val 128 --test 128 --seed 7 --compression gzip
        train=DatasetFile("cosmic_tagging_train.h5", 1024, "f0ea7179d67219dcba7e9c6eddb612a789acb383ee1eca8bc7dbdcae733d8125"),
        validation=DatasetFile("cosmic_tagging_val.h5", 128, "459b3265e39a842f92e3b1d642483784ffc3c605508e3eb9346685c617705bba"),
        test=DatasetFile("cosmic_tagging_test.h5", 128, "62a1b6393ea092a2e258882d611eea34b822cb6cb27c8a316e4893f4286e1373"),
        generated={"seed": 7, "compression": "gzip", "generator_version": "1"},
    ),
    # Reached in about 2-3 epochs (10 minutes on 2 cores); a freshly initialised network scores ~0.02.
    target=Target(cosmic_iou=0.65, neutrino_iou=0.35, non_bkg_accuracy=0.75),
    eval_interval_epochs=0.5,
    max_epochs=12.0,
    runs=5,
    rules_version="1.0",
)

THROUGHPUT = Benchmark(
    name="throughput",
    summary="synthetic events at 640x1024, the a21 network, images/s over a fixed number of steps",
    settings={
        "data.synthetic": True,
        "data.downsample": 1,
        "network": "a21",
        "mode.optimizer.loss_balance_scheme": "light",
        "run.aux_iterations": 0,
        "mode.checkpoint_iteration": 0,
    },
    tunables=EXECUTION_TUNABLES + (Tunable("run.minibatch_size", ">= 1", _at_least_one),),
    # The synthetic events come from a pool made before run_start (data.synthetic_pool, fixed at its default:
    # 512 events) by data.workers processes, and loader threads gather batches from it: 7,450-9,390 images/s at
    # 640x1024 on 2 quiet cores (mode.iotest, batch 2), where events generated on the fly gave 236-292 with 2
    # worker processes (the optimized a21 trained at 119 images/s on an H200). data.worker_processes, the
    # default of those days, changes nothing here now.
    defaults={"run.minibatch_size": 2, "mode.logging_iteration": 10, "data.worker_processes": True},
    steps=52,
    runs=1,
    rules_version="1.0",
)

BENCHMARKS: Dict[str, Benchmark] = {b.name: b for b in (CLOSED, MINI, THROUGHPUT)}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark '{name}'; the benchmarks are {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]
