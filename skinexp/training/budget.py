"""Budgeted training: `train.budget.minutes` (training time), `train.budget.gflop` (images seen x the model's
training FLOPs per image) or `train.budget.steps`, resolved into the run's total optimizer steps. The learning-rate
schedule spans exactly those steps and training ends at the last of them, the last epoch possibly partial (Li et
al., "Budgeted Training", ICLR 2020: decaying to zero over the budget beats truncating a longer schedule).

A minutes budget is measured, then corrected as it goes. Before training, a probe copy of the compiled model trains
a few short epochs on its own copy of the training pipeline; what the budget leaves after compiling, divided by the
step time (the mean step plus the epoch start-up spread over an epoch's steps), gives the planned steps. The probe's
16-step epochs can misjudge a long run (runs of 5 minutes trained -2 % to +24 % of their budget on it alone), so
after every epoch from the second the run measures its own training time and, when the steps planned would miss
the budget by more than REVISE_TOLERANCE of it, revises them (`revised_steps`): the schedule keeps its progress
and stretches or shortens what is left (`skinexp.model.optim.RevisedCosine`), never a cut at a high rate. An epoch's
end can come too late for that (a 5-minute run of 50-step epochs trained 13 % over its budget when the machine
slowed in its last one), so a run whose training time passes the budget by more than REVISE_TOLERANCE stops at the
step it has reached (`Plan.overrun`; after the epochs' revisions, late in its decay), and the stop is recorded as
a revision to that step.

A clock cannot be rerun, so the revisions are recorded: param `train.budget_plan` (`[[0, planned], [at_step,
total], ...]`) and `train.steps` (the last total). `rerun` trains `train.budget.steps` with `train.budget.plan` set
to them, and replays each revision at the step it was made: the same steps, each at the rate the run gave it, by
the same arithmetic (a schedule built with the whole plan up front computes the earlier pieces from constants,
whose rounding differs, and 50 epochs later the weights do). A resumed run keeps the plan it had when it stopped
(`state.json`), and is not revised again.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from skinexp.data.types import Split
from skinexp.errors import ConfigError

PROBE_STEPS = 16
KINDS = ("minutes", "gflop", "steps")
REVISE_TOLERANCE = 0.02  # of the budget: a smaller miss is left alone
MAX_REVISIONS = 64  # keeps param train.budget_plan short (MLflow holds 6,000 characters)
MAX_GROWTH = 4  # a revision plans at most this many times the probe's steps (fit is given room for them)


@dataclass
class Plan:
    """How a run trains: `steps` optimizer steps over `epochs` epochs of `steps_per_epoch` (the last partial).

    `revisions` is a minutes budget's plan so far, `[[0, planned], [at_step, total], ...]` (empty for other
    kinds); `pending` the recorded revisions a rerun still has to replay, as the run made them (`KeepToBudget`):
    each at the end of the epoch whose last step is its `at_step`, a stop (its total `at_step`) at that step;
    `seconds` the training seconds a minutes budget allows, set only while the run may still revise its steps;
    `steps_per_execution` the steps of one Keras batch (`train.steps_per_execution`), which a run can only stop after.
    """

    steps: int
    steps_per_epoch: int
    kind: str  # epochs | minutes | gflop | steps
    probe_step_seconds: Optional[float] = None
    probe_compile_seconds: Optional[float] = None
    revisions: list[list[int]] = field(default_factory=list)
    pending: list[list[int]] = field(default_factory=list)
    seconds: Optional[float] = None
    steps_per_execution: int = 1

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.steps_per_epoch)

    @property
    def final_steps(self) -> int:
        """The steps the run ends at, once its recorded revisions are replayed."""
        return self.pending[-1][1] if self.pending else self.steps

    @property
    def most_epochs(self) -> int:
        """The epochs `fit` is given: room for every revision recorded, or that the budget may still make."""
        if self.seconds is not None:
            return math.ceil(MAX_GROWTH * self.revisions[0][1] / self.steps_per_epoch)
        return math.ceil(max([self.steps] + [total for _, total in self.pending]) / self.steps_per_epoch)

    def steps_at(self, epoch: int, end_step: int) -> int:
        """The optimizer steps done when Keras ends a batch of epoch `epoch` (0-based). `end_step` is what Keras 3
        passes `on_train_batch_end`: the index within the epoch of the batch's last step, so with
        `train.steps_per_execution=k` the batches end at k - 1, 2k - 1, ... An epoch's last batch may hold fewer steps
        than k: the count stops at the epoch's end."""
        return epoch * self.steps_per_epoch + min(end_step + 1, self.steps_per_epoch)

    def batch_end(self, steps: int) -> int:
        """The fewest steps, at least `steps`, that end a Keras batch: the end of the batch that holds step `steps`
        (with `train.steps_per_execution=k`, k, 2k, ... into its epoch, or the epoch's end). A plan of these steps is
        what the run trains, so its schedule, `train.steps` and `images_seen` count the steps trained."""
        epoch = (steps - 1) // self.steps_per_epoch
        batches = math.ceil((steps - epoch * self.steps_per_epoch) / self.steps_per_execution)
        return self.steps_at(epoch, batches * self.steps_per_execution - 1)

    def revise(self, at_step: int, total: int) -> None:
        self.revisions.append([at_step, total])
        self.steps = total

    def params(self) -> dict[str, object]:
        """What a minutes run logs once its steps are known (at its end, or when interrupted): `train.steps` and
        the plan its revisions made, `train.budget_plan` (a resumed run logs the plan it kept, the same values)."""
        return {"train.steps": self.steps, "train.budget_plan": json.dumps(self.revisions)}

    def overrun(self, training_seconds: float) -> bool:
        """Whether a minutes run's training time has passed its budget by more than REVISE_TOLERANCE (never for
        a run whose steps are fixed): its last epoch's end comes too late to correct, so it stops at once."""
        return self.seconds is not None and training_seconds > (1 + REVISE_TOLERANCE) * self.seconds

    def replay_until(self, step: int) -> list[list[int]]:
        """Moves the pending revisions made at or before `step` into the plan; returns them."""
        replayed = [pair for pair in self.pending if pair[0] <= step]
        for at_step, total in replayed:
            self.revise(at_step, total)
        self.pending = self.pending[len(replayed):]
        return replayed


def revised_steps(plan: Plan, steps_done: int, training_seconds: float, seconds_per_step: float) -> Optional[int]:
    """The total steps that spend what is left of a minutes budget at the measured `seconds_per_step`, after
    `steps_done` steps took `training_seconds`; None when the plan would land within REVISE_TOLERANCE of the
    budget, or may not be revised (not a minutes run, or MAX_REVISIONS reached)."""
    if plan.seconds is None or len(plan.revisions) > MAX_REVISIONS or seconds_per_step <= 0:
        return None
    projected = training_seconds + (plan.steps - steps_done) * seconds_per_step
    if abs(projected - plan.seconds) <= REVISE_TOLERANCE * plan.seconds:
        return None
    affordable = steps_done + max(0, int((plan.seconds - training_seconds) / seconds_per_step))
    total = plan.batch_end(min(affordable, MAX_GROWTH * plan.revisions[0][1]))
    return total if total != plan.steps else None


def check_budget(budget) -> Optional[str]:
    """The kind of budget set (None: train.epochs rules); ConfigError for two kinds, a value <= 0, or a
    `train.budget.plan` that does not fit `train.budget.steps`."""
    chosen = [kind for kind in KINDS if budget.get(kind) is not None]
    if len(chosen) > 1:
        raise ConfigError(f"train.budget takes one of {', '.join(KINDS)}. Received: "
                          + ", ".join(f"train.budget.{kind}={budget[kind]}" for kind in chosen))
    for kind in chosen:
        if not budget[kind] > 0:
            raise ConfigError(f"train.budget.{kind} must be positive. Received: train.budget.{kind}={budget[kind]}")
    revisions = budget.get("plan")
    if revisions:
        pairs = [list(pair) for pair in revisions]
        if (chosen != ["steps"] or any(len(pair) != 2 for pair in pairs) or pairs[0][0] != 0
                or any(later[0] < earlier[0] for earlier, later in zip(pairs, pairs[1:]))
                or pairs[-1][1] != budget.steps):
            raise ConfigError("train.budget.plan is [[0, planned steps], [at step, total], ...] with its steps "
                              "ascending and its last total train.budget.steps (rerun sets it). Received: "
                              f"train.budget.plan={pairs} with train.budget.steps={budget.get('steps')}")
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
    left of the minutes after compiling, at that step time. The steps resolved end a Keras batch
    (`Plan.batch_end`: with `train.steps_per_execution=k` a run stops only at the end of a batch of k)."""
    kind = check_budget(train_cfg.budget)
    per_execution = int(train_cfg.steps_per_execution)
    if kind is None:
        return Plan(train_cfg.epochs * steps_per_epoch, steps_per_epoch, "epochs", steps_per_execution=per_execution)
    if kind == "steps":
        recorded = [list(pair) for pair in train_cfg.budget.get("plan") or []]
        if recorded:  # a rerun replays what its run trained
            return Plan(recorded[0][1], steps_per_epoch, kind, revisions=recorded[:1], pending=recorded[1:],
                        steps_per_execution=per_execution)
        resolved = Plan(int(train_cfg.budget.steps), steps_per_epoch, kind, steps_per_execution=per_execution)
    elif kind == "gflop":
        needed = math.ceil(float(train_cfg.budget.gflop) * 1e9 / flops_per_image)
        resolved = Plan(max(1, steps_for_images(needed, images, train_cfg.batch_size, steps_per_epoch)),
                        steps_per_epoch, kind, steps_per_execution=per_execution)
    else:
        step_seconds, compiling = probe()
        seconds = float(train_cfg.budget.minutes) * 60
        resolved = Plan(max(1, int((seconds - compiling) / step_seconds)), steps_per_epoch, kind, step_seconds,
                        compiling, seconds=seconds, steps_per_execution=per_execution)
    resolved.steps = resolved.batch_end(resolved.steps)
    if resolved.seconds is not None:
        resolved.revisions = [[0, resolved.steps]]
    return resolved


def probe_split(train: Split, batch_size: int, steps_per_execution: int = 1) -> Split:
    """The training images the probe trains on: the first PROBE_STEPS executions' worth, or all of them when an
    epoch is shorter. The probe's epochs each run through them once, from a fresh iterator of the pipeline as the
    run's epochs do (a longer dataset cut by `steps_per_epoch` would carry one iterator across the probe's epochs:
    its start-up went unmeasured, and Keras warned that the input ran out of data)."""
    return train.first(min(len(train), PROBE_STEPS * steps_per_execution * batch_size))


def probe_step_seconds(model, data, steps_per_epoch: int, steps_per_execution: int = 1) -> tuple[float, float]:
    """The seconds one training step costs `model` (a compiled copy of the run's, discarded afterwards) on `data`
    (its own copy of the run's training pipeline, augmentation included, over `probe_split`'s training
    images): the mean step inside an epoch, plus an epoch's start-up (its first batch's extra time: the pipeline's
    iterator) spread over the run's `steps_per_epoch`; and the seconds the first epoch spent compiling, which the
    run's own first epoch spends too. Measured over three short epochs after the first."""
    import keras

    starts: list[float] = []
    ends: list[list[float]] = []

    class Times(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            starts.append(time.perf_counter())
            ends.append([])

        def on_train_batch_end(self, batch, logs=None):
            ends[-1].append(time.perf_counter())

    model.fit(data, epochs=4, verbose=0, callbacks=[Times()], shuffle=False)
    timed = list(zip(starts, ends))[1:]
    inside = [interval for _, batch_ends in timed for interval in np.diff(batch_ends)]
    step = statistics.fmean(inside) if inside else statistics.fmean(b[0] - s for s, b in timed)
    start_up = statistics.fmean(max(0.0, batch_ends[0] - start - step) for start, batch_ends in timed)
    compiling = max(0.0, ends[0][-1] - starts[0] - statistics.median(b[-1] - s for s, b in timed))
    return (step + start_up * steps_per_execution / steps_per_epoch) / steps_per_execution, compiling
