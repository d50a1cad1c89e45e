"""Budgeted training: `train.budget.minutes` (training time), `train.budget.gflop` (images seen x the model's
training FLOPs per image) or `train.budget.steps`, resolved once, before training, into the run's total
optimizer steps. The learning-rate schedule spans exactly those steps and training ends at the last of them,
the last epoch possibly partial (Li et al., "Budgeted Training", ICLR 2020: decaying to zero over the budget beats
truncating a longer schedule).

A minutes budget is measured, not guessed: a probe copy of the compiled model trains a few short epochs on its
own copy of the training pipeline; what the budget leaves after compiling, divided by the step time (the mean
step plus the epoch start-up spread over an epoch's steps), gives the steps. The mean, not the median: the budget
is the sum of the steps, and the occasional slow step (the input pipeline falling behind on two cores) is part of
it; with the median, 20-minute runs of `+experiment=isic_cpu` trained 25 minutes. It is
resolved once and not stretched or cut later: a schedule cut short by the clock ends at a high learning rate,
the truncation the paper warns against, and a run whose steps change with the clock cannot be rerun exactly.
`rerun` and `resume` train the steps the run recorded (param `train.steps`).
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from skinexp.errors import ConfigError

PROBE_STEPS = 16
KINDS = ("minutes", "gflop", "steps")


@dataclass(frozen=True)
class Plan:
    """How a run trains: `steps` optimizer steps over `epochs` epochs of `steps_per_epoch` (the last partial)."""

    steps: int
    steps_per_epoch: int
    kind: str  # epochs | minutes | gflop | steps
    probe_step_seconds: Optional[float] = None
    probe_compile_seconds: Optional[float] = None

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)


def check_budget(budget) -> Optional[str]:
    """The kind of budget set (None: train.epochs rules); ConfigError for two kinds or a value <= 0."""
    chosen = [kind for kind in KINDS if budget.get(kind) is not None]
    if len(chosen) > 1:
        raise ConfigError(f"train.budget takes one of {', '.join(KINDS)}. Received: "
                          + ", ".join(f"train.budget.{kind}={budget[kind]}" for kind in chosen))
    for kind in chosen:
        if not budget[kind] > 0:
            raise ConfigError(f"train.budget.{kind} must be positive. Received: train.budget.{kind}={budget[kind]}")
    return chosen[0] if chosen else None


def images_after(steps: int, images: int, batch_size: int, steps_per_epoch: int) -> int:
    """Images seen after `steps` steps, epochs of `images` images in `steps_per_epoch` batches (the last one of an
    epoch holds the remainder)."""
    epochs, rest = divmod(steps, steps_per_epoch)
    return epochs * images + min(rest * batch_size, images)


def steps_for_images(needed: int, images: int, batch_size: int, steps_per_epoch: int) -> int:
    """The fewest steps after which at least `needed` images have been seen."""
    epochs, rest = divmod(needed, images)
    return epochs * steps_per_epoch + min(math.ceil(rest / batch_size), steps_per_epoch)


def plan(train_cfg, *, images: int, steps_per_epoch: int, flops_per_image: int,
         probe: Callable[[], tuple[float, float]]) -> Plan:
    """The run's Plan from `train.budget` (else `train.epochs`). `probe` returns (one training step's seconds, the
    seconds compiling costs the first epoch); it is called for a minutes budget only, whose steps are what is
    left of the minutes after compiling, at that step time."""
    kind = check_budget(train_cfg.budget)
    if kind is None:
        return Plan(train_cfg.epochs * steps_per_epoch, steps_per_epoch, "epochs")
    if kind == "steps":
        return Plan(int(train_cfg.budget.steps), steps_per_epoch, kind)
    if kind == "gflop":
        needed = math.ceil(float(train_cfg.budget.gflop) * 1e9 / flops_per_image)
        return Plan(max(1, steps_for_images(needed, images, train_cfg.batch_size, steps_per_epoch)),
                    steps_per_epoch, kind)
    step_seconds, compiling = probe()
    steps = int((float(train_cfg.budget.minutes) * 60 - compiling) / step_seconds)
    return Plan(max(1, steps), steps_per_epoch, kind, step_seconds, compiling)


def probe_step_seconds(model, data, steps_per_epoch: int, steps_per_execution: int = 1,
                       steps: int = PROBE_STEPS) -> tuple[float, float]:
    """The seconds one training step costs `model` (a compiled copy of the run's, discarded afterwards) on `data`
    (its own copy of the run's training pipeline, augmentation included): the mean step inside an epoch, plus
    an epoch's start-up (its first batch's extra time: the pipeline's iterator) spread over `steps_per_epoch`;
    and the seconds the first epoch spent compiling, which the run's own first epoch spends too. Measured over
    three short epochs after the first."""
    import keras

    starts: list[float] = []
    ends: list[list[float]] = []

    class Times(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            starts.append(time.perf_counter())
            ends.append([])

        def on_train_batch_end(self, batch, logs=None):
            ends[-1].append(time.perf_counter())

    probe_steps = min(steps_per_epoch, max(2, steps) * steps_per_execution)
    model.fit(data, epochs=4, steps_per_epoch=probe_steps, verbose=0, callbacks=[Times()], shuffle=False)
    timed = list(zip(starts, ends))[1:]
    inside = [interval for _, batch_ends in timed for interval in np.diff(batch_ends)]
    step = statistics.fmean(inside) if inside else statistics.fmean(b[0] - s for s, b in timed)
    start_up = statistics.fmean(max(0.0, batch_ends[0] - start - step) for start, batch_ends in timed)
    compiling = max(0.0, ends[0][-1] - starts[0] - statistics.median(b[-1] - s for s, b in timed))
    return (step + start_up * steps_per_execution / steps_per_epoch) / steps_per_execution, compiling
