"""Learning-rate schedules, a pure function of the step.

The rate depends only on (step, configuration, images per step, training-set
size), never on state, so a run resumed from a checkpoint at step n continues
with exactly the rates of an uninterrupted run. The epoch is fractional:
epoch = step * images_per_step / train_events.

* `flat`: the configured learning_rate at every step.
* `reference` (the original CosmicTagger master): linear warm-up from 1e-4 to
  learning_rate over epoch [0, 1), flat over [1, 21), then from epoch 21
  (learning_rate - 1e-4) * exp(-0.999 * (epoch - 21)) + 1e-4, a decay towards
  the 1e-4 floor. The three pieces join continuously.
* `warmup_cosine` (as MLPerf HPC's references schedule): a linear warm-up
  from 0 to learning_rate over `warmup_epochs` (step s trains at the rate of
  the epoch where it ends, so no step trains at 0), then a half cosine from
  learning_rate down to `final_lr_fraction` x learning_rate at
  `decay_end_epoch`, constant after. Decaying to a fixed epoch is meant to
  bring every seed to its final quality at the same time and so narrow the
  spread of epochs to a target; results/studies/ holds what was measured
  (a decay that ends too early also lowers that quality).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

from benchmark.config.schema import LRSchedule


@dataclass(frozen=True)
class ReferenceSchedule:
    """Constants of the `reference` schedule."""

    floor: float = 1e-4  # start of the warm-up and limit of the decay
    warmup_epochs: float = 1.0
    decay_start_epoch: float = 21.0
    decay_rate: float = 0.999  # per epoch, in the exponent


REFERENCE = ReferenceSchedule()


def _reference_rate(epoch: float, peak: float, constants: ReferenceSchedule) -> float:
    if epoch < constants.warmup_epochs:
        return constants.floor + (peak - constants.floor) * epoch / constants.warmup_epochs
    if epoch < constants.decay_start_epoch:
        return peak
    decay = math.exp(-constants.decay_rate * (epoch - constants.decay_start_epoch))
    return (peak - constants.floor) * decay + constants.floor


def learning_rate(step: int, optimizer_cfg, images_per_step: int, train_events: int,
                  constants: ReferenceSchedule = REFERENCE) -> float:
    """Learning rate of optimizer step `step` (0-based).

    `optimizer_cfg` is an OptimizerConfig (dataclass or OmegaConf node) giving
    `learning_rate` and `lr_schedule`; `images_per_step` counts every image of
    one weight update (all micro-batches and ranks).
    """
    if step < 0 or images_per_step <= 0 or train_events <= 0:
        raise ValueError(f"need step >= 0, images_per_step > 0, train_events > 0; got {step}, {images_per_step}, {train_events}")
    peak = float(optimizer_cfg.learning_rate)
    schedule = LRSchedule(optimizer_cfg.lr_schedule)
    if schedule is LRSchedule.flat:
        return peak
    if schedule is LRSchedule.warmup_cosine:
        return _warmup_cosine_rate((step + 1) * images_per_step / train_events, peak, optimizer_cfg)
    epoch = step * images_per_step / train_events
    return _reference_rate(epoch, peak, constants)


def _warmup_cosine_rate(epoch: float, peak: float, optimizer_cfg) -> float:
    warmup, end = float(optimizer_cfg.warmup_epochs), float(optimizer_cfg.decay_end_epoch)
    final = peak * float(optimizer_cfg.final_lr_fraction)
    if epoch < warmup:
        return peak * epoch / warmup
    if epoch >= end:
        return final
    progress = (epoch - warmup) / (end - warmup)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cadence(epochs: float, eval_interval_epochs: float, steps_per_epoch: int) -> Tuple[int, int]:
    """(steps to run, steps between evaluations) for `epochs` epochs evaluated every `eval_interval_epochs`:
    the steps rounded up, the interval to the nearest step (at least one)."""
    every = max(int(round(eval_interval_epochs * steps_per_epoch)), 1)
    return int(math.ceil(epochs * steps_per_epoch)), every
