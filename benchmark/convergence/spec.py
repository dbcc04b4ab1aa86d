"""What a study runs: a benchmark definition, the user's settings, and each seed's command line.

A study runs seeds of one benchmark definition. Its settings are checked
in-process exactly as `bin/exec.py` checks them (`benchmark.config.load`), so a
setting the definition fixes, an unknown key or a bad value is refused in the
harness's own one line before any folder is made or any run started.

* benchmark runs: `bin/exec.py mode=train benchmark=NAME ...`, the harness applies
  the definition (its fixed settings, cadence, target and epoch limit);
* explore runs (`--explore`): the definition's settings (`Benchmark.overrides()`)
  as a plain run, so fixed settings may be overridden, evaluating the whole
  validation set every `eval_every` epochs for `epochs` epochs, never stopping
  at a target: the whole curve is recorded.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from omegaconf import DictConfig

from benchmark import config
from benchmark.errors import ConfigError
from benchmark.rules import Benchmark, Target, get_benchmark

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXEC = os.path.join(REPOSITORY, "bin", "exec.py")

# Set by the study for each run; a --set of these would make seeds indistinguishable or mix their folders.
OWNED = ("mode", "benchmark", "run.id", "run.seed", "data.seed", "run.output_dir")
# One process per seed: a launcher and its logs per instance are not part of a study.
SINGLE_PROCESS = ("run.distributed", "run.instances")
THREADS = ("framework.intra_op_parallelism_threads", "framework.inter_op_parallelism_threads")


@dataclass(frozen=True)
class StudySpec:
    """Everything that makes two runs of a study comparable; stored as the study's study.json."""

    benchmark: str
    rules_version: str
    target: Tuple[float, float, float]  # cosmic IoU, neutrino IoU, non-background accuracy
    sets: Tuple[str, ...] = ()  # the user's key=value settings, in order
    explore: bool = False
    epochs: float = 0.0  # explore: epochs to run
    eval_every: float = 0.0  # explore: epochs between evaluations
    data_directory: str = ""  # chosen by the study when the user gave none

    def to_json(self) -> Dict[str, object]:
        return {**asdict(self), "target": list(self.target), "sets": list(self.sets)}

    @classmethod
    def from_json(cls, values: Dict[str, object]) -> "StudySpec":
        return cls(**{**values, "target": tuple(values["target"]), "sets": tuple(values["sets"])})

    def describe(self) -> str:
        settings = " ".join(self.sets) or "none"
        if self.explore:
            what = (f"explore runs of {self.benchmark} (rules {self.rules_version}): the whole validation set every "
                    f"{self.eval_every:g} epochs for {self.epochs:g} epochs, no stop at the target")
        else:
            what = f"benchmark={self.benchmark} runs (rules {self.rules_version})"
        return f"{what}; settings: {settings}"


def target_of(values: Sequence[float]) -> Target:
    cosmic, neutrino, accuracy = values
    return Target(cosmic_iou=cosmic, neutrino_iou=neutrino, non_bkg_accuracy=accuracy)


def _split(setting: str) -> Tuple[str, str]:
    key, equals, value = setting.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"--set '{setting}' is not a setting: write key=value, e.g. run.minibatch_size=8")
    return key.strip(), value


def plan(benchmark: str, sets: Sequence[str], explore: bool = False, epochs: Optional[float] = None,
         eval_every: Optional[float] = None) -> "StudyPlan":
    """The study's spec and run commands, checked as the harness checks them; raises ConfigError in one line."""
    definition = get_benchmark(benchmark)
    if definition.target is None:
        raise ConfigError(f"the {benchmark} benchmark has no target: there is no convergence to study")
    keys = [_split(setting)[0] for setting in sets]
    for key in keys:
        if key in OWNED:
            raise ConfigError(f"--set {key}: the study sets {', '.join(OWNED)} for each run itself")
        if key in SINGLE_PROCESS:
            raise ConfigError(f"--set {key}: a study runs each seed as one process ({', '.join(SINGLE_PROCESS)} "
                              f"are not supported)")
    if not explore and (epochs is not None or eval_every is not None):
        raise ConfigError("--epochs and --eval-every apply to --explore runs; benchmark runs follow the definition")
    epochs = definition.max_epochs if epochs is None else epochs
    eval_every = definition.eval_interval_epochs if eval_every is None else eval_every
    if explore and not (epochs > 0 and 0 < eval_every <= epochs):
        raise ConfigError(f"--epochs {epochs:g} --eval-every {eval_every:g}: need 0 < eval-every <= epochs")
    target = definition.target
    spec = StudySpec(benchmark=definition.name, rules_version=definition.rules_version,
                     target=(target.cosmic_iou, target.neutrino_iou, target.non_bkg_accuracy), sets=tuple(sets),
                     explore=explore, epochs=epochs if explore else 0.0, eval_every=eval_every if explore else 0.0)
    study = StudyPlan(spec, definition)
    cfg = study.check()  # the user's settings alone, before the study picks a data folder
    if not cfg.data.synthetic and "data.data_directory" not in keys and _generated(definition):
        from benchmark.datasets import generated_dataset_folder

        study = StudyPlan(StudySpec(**{**asdict(spec), "data_directory": generated_dataset_folder(definition.name)}),
                          definition)
    return study


def _generated(definition: Benchmark) -> bool:
    return definition.dataset is not None and definition.dataset.generated is not None


@dataclass
class StudyPlan:
    spec: StudySpec
    definition: Benchmark
    _steps: Dict[str, int] = field(default_factory=dict)  # explore: run.iterations and run.aux_iterations, once known

    def tokens(self, seed: int, output_dir: str, threads: Optional[Tuple[int, int]] = None) -> List[str]:
        """The run's bin/exec.py settings; `threads` (intra, inter) unless the user set them."""
        spec = self.spec
        user = {_split(setting)[0] for setting in spec.sets}
        tokens = ["mode=train"]
        if spec.explore:
            # The definition's settings (fixed ones and tunable defaults), minus those the user replaces.
            tokens += [token for token in self.definition.overrides() if _split(token)[0] not in user]
            tokens += ["run.validation=full", *(f"{key}={value}" for key, value in self._steps.items())]
        else:
            tokens.append(f"benchmark={spec.benchmark}")
        if spec.data_directory:
            tokens.append(f"data.data_directory={spec.data_directory}")
        if threads is not None:
            tokens += [f"{key}={value}" for key, value in zip(THREADS, threads) if key not in user]
        return tokens + list(spec.sets) + [f"run.id=seed{seed}", f"run.seed={seed}", f"data.seed={seed}",
                                           f"run.output_dir={output_dir}"]

    def check(self) -> DictConfig:
        """The settings as bin/exec.py resolves them (for a stand-in seed and folder); ConfigError in one line."""
        return config.load(self.tokens(1, "unused"))

    def prepare(self) -> None:
        """Make what every run needs and check it: the generated dataset, the data files, an explore run's steps."""
        cfg = self.check()
        if self.spec.data_directory and not os.path.isfile(os.path.join(self.spec.data_directory, "manifest.json")):
            from benchmark.datasets import generate_benchmark_dataset

            print(f"generating the {self.spec.benchmark} dataset in {self.spec.data_directory} (once) ...", flush=True)
            generate_benchmark_dataset(self.spec.benchmark, self.spec.data_directory)
        if not cfg.data.synthetic:
            for which in ("file", "aux_file"):
                path = os.path.join(cfg.data.data_directory, cfg.data[which])
                if not os.path.isfile(path):
                    raise ConfigError(f"data.{which}: {path} does not exist (give --set data.data_directory=DIR)")
        if self.spec.explore:
            self._steps = explore_steps(cfg, self.spec.epochs, self.spec.eval_every)
            self.check()

    def command(self, seed: int, output_dir: str, program: Sequence[str],
                threads: Optional[Tuple[int, int]] = None) -> List[str]:
        return [*program, *self.tokens(seed, output_dir, threads)]


def explore_steps(cfg: DictConfig, epochs: float, eval_every: float) -> Dict[str, int]:
    """run.iterations and run.aux_iterations for `epochs` epochs with an evaluation every `eval_every` epochs,
    rounded as a benchmark run rounds its cadence."""
    from benchmark.data.sampler import EpochSampler
    from benchmark.schedule import cadence

    accumulation = cfg.mode.optimizer.gradient_accumulation
    batches = EpochSampler(training_events(cfg), cfg.run.minibatch_size, seed=1).batches_per_epoch
    steps, every = cadence(epochs, eval_every, max(batches // accumulation, 1))
    return {"run.iterations": steps, "run.aux_iterations": every}


def training_events(cfg: DictConfig) -> int:
    """Events in the training split, as the run will count them (without generating a synthetic pool)."""
    if cfg.data.synthetic:
        from benchmark.datasets import REAL_TRAIN_EVENTS

        return cfg.data.synthetic_events or REAL_TRAIN_EVENTS
    from benchmark.data.larcv import LarcvSource

    source = LarcvSource(os.path.join(cfg.data.data_directory, cfg.data.file))
    try:
        return len(source)
    finally:
        source.close()
