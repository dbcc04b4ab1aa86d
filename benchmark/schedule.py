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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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
    epoch = step * images_per_step / train_events
    return _reference_rate(epoch, peak, constants)
