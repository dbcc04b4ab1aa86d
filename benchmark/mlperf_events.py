"""What a training run tells its MLPerf log before the clock starts.

Submission identity comes from the system description (`run.system`), the
hyperparameters from the resolved configuration: each key a builder applies
is logged, so the compliance ruleset can check it. A benchmark run logs the
rules version of its definition; a run outside a benchmark follows no
definition and logs `none` for both the benchmark and its rules version.
"""
from __future__ import annotations

import os
from typing import Dict

from omegaconf import DictConfig

from benchmark.mlperf_log import C, MLPerfLog
from benchmark.rules import BENCHMARK_NAME, get_benchmark
from benchmark.schedule import REFERENCE
from benchmark.parallel.context import Parallel


def load_system_fields(cfg: DictConfig) -> Dict[str, str]:
    """The fields of `run.system` that MLPerf logs name (all "unknown" without one)."""
    fields = {"submitter": "unknown", "division": "open", "status": "research", "system_name": "unknown",
              "number_of_nodes": "1", "accelerators_per_node": "0"}
    if cfg.run.system:
        from benchmark.systems import load_system

        path = cfg.run.system
        if not os.path.exists(path) and os.path.exists(os.path.join("systems", f"{path}.json")):
            path = os.path.join("systems", f"{path}.json")
        fields.update({k: str(v) for k, v in load_system(path).items() if k in fields})
    return fields


def log_submission(mlog: MLPerfLog, cfg: DictConfig, system: Dict[str, str], implementation: str) -> None:
    mlog.event(C.SUBMISSION_BENCHMARK, BENCHMARK_NAME)
    mlog.event(C.SUBMISSION_ORG, system["submitter"])
    mlog.event(C.SUBMISSION_DIVISION, "closed" if cfg.run.benchmark == "closed" else "open")
    mlog.event(C.SUBMISSION_STATUS, system["status"])
    mlog.event(C.SUBMISSION_PLATFORM, system["system_name"])
    mlog.event("cosmictagger_benchmark", cfg.run.benchmark or "none")
    version = get_benchmark(cfg.run.benchmark).rules_version if cfg.run.benchmark else "none"
    mlog.event("cosmictagger_rules_version", version)
    mlog.event("implementation", implementation)


def log_hyperparameters(mlog: MLPerfLog, cfg: DictConfig, parallel: Parallel, accelerators: int, train_events: int,
                        eval_events: int) -> None:
    optimizer = cfg.mode.optimizer
    accumulation = optimizer.gradient_accumulation
    mlog.event(C.SEED, int(cfg.run.seed))
    mlog.event("data_seed", int(cfg.data.seed))
    mlog.event("number_of_ranks", parallel.size)
    mlog.event("number_of_nodes", parallel.nodes)
    mlog.event("accelerators_per_node", accelerators)
    mlog.event(C.GLOBAL_BATCH_SIZE, cfg.run.minibatch_size * accumulation)
    mlog.event("gradient_accumulation_frequency", accumulation)
    mlog.event(C.OPT_NAME, optimizer.name.value)
    mlog.event(C.OPT_BASE_LR, float(optimizer.learning_rate))
    schedule = optimizer.lr_schedule.value
    reference, cosine = schedule == "reference", schedule == "warmup_cosine"
    mlog.event("opt_learning_rate_schedule", schedule)
    if reference:
        warmup, initial = REFERENCE.warmup_epochs, REFERENCE.floor
    elif cosine:
        warmup, initial = float(optimizer.warmup_epochs), 0.0
    else:
        warmup, initial = 0.0, float(optimizer.learning_rate)
    mlog.event(C.OPT_LR_WARMUP_EPOCHS, warmup)
    mlog.event("opt_learning_rate_warmup_initial", initial)
    if cosine:
        mlog.event("opt_learning_rate_decay_end_epoch", float(optimizer.decay_end_epoch))
        mlog.event("opt_learning_rate_end", float(optimizer.learning_rate) * float(optimizer.final_lr_fraction))
    if reference:
        mlog.event(C.OPT_LR_DECAY_BOUNDARY_EPOCHS, [REFERENCE.decay_start_epoch])
        mlog.event("opt_learning_rate_decay_rate", REFERENCE.decay_rate)
        mlog.event("opt_learning_rate_floor", REFERENCE.floor)
    mlog.event(C.OPT_WEIGHT_DECAY, float(cfg.network.weight_decay))
    mlog.event("loss_balance_scheme", optimizer.loss_balance_scheme.value)
    mlog.event("precision", cfg.run.precision.value)
    mlog.event("image_downsample", cfg.data.downsample)
    mlog.event(C.TRAIN_SAMPLES, train_events)
    mlog.event(C.EVAL_SAMPLES, eval_events)
