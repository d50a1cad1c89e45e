"""Keras callbacks that feed MLflow and keep a run to its plan: per-epoch metrics and throughput, the budget's
steps, sample masks, epoch state (interrupts: `skinexp.training.interrupts`)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from skinexp import tracking
from skinexp.evaluation import figures
from skinexp.training.resume import LAST_MODEL, write_state


class TrainingClock(keras.callbacks.Callback):
    """Times each epoch from its start (`_epoch_start`): `train_seconds(now)` is its train steps only, up to
    validation's start; for the callbacks that log or spend training time."""

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._train_end = None

    def on_test_begin(self, logs=None):
        if getattr(self, "_train_end", 0) is None:
            self._train_end = time.perf_counter()

    def train_seconds(self, now: float) -> float:
        return (self._train_end or now) - self._epoch_start


class EpochLogger(TrainingClock):
    """Logs every epoch's Keras metrics plus `images_per_sec`, `epoch_seconds`, and the run's cumulative
    `training_seconds` (train steps only, validation excluded), `images_seen` and `training_gflop` (images seen x
    training FLOPs per image), with step = epoch (1-based).

    Args:
        images_seen: finished epochs -> images seen by then (the last epoch of a budget may be partial).
        planned_steps: a minutes budget's current plan, logged as `planned_steps` (its revisions, as they go).
    """

    def __init__(self, images_seen: Callable[[int], int], flops_per_image: int,
                 planned_steps: Callable[[], int] | None = None):
        super().__init__()
        self.images_seen, self.flops_per_image, self.planned_steps = images_seen, flops_per_image, planned_steps
        self.history: dict[str, list[float]] = {}

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        train_seconds = self.train_seconds(now)
        metrics = {key: float(value) for key, value in (logs or {}).items() if np.ndim(value) == 0}
        metrics.pop("learning_rate", None)
        images = self.images_seen(epoch + 1)
        metrics["images_per_sec"] = (images - self.images_seen(epoch)) / max(train_seconds, 1e-9)
        metrics["epoch_seconds"] = now - self._epoch_start
        metrics["training_seconds"] = self.history.get("training_seconds", [0.0])[-1] + train_seconds
        metrics["images_seen"] = float(images)
        metrics["training_gflop"] = images * self.flops_per_image / 1e9
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.planned_steps is not None:
            metrics["planned_steps"] = float(self.planned_steps())
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        tracking.log_metrics(metrics, step=epoch + 1)


class StopAtStep(keras.callbacks.Callback):
    """Ends training after the plan's optimizer steps (`skinexp.training.budget.Plan`, which a minutes budget
    revises as it goes): the last epoch stops part-way, after its validation and epoch-end callbacks run as for any
    other epoch (Keras checks `stop_training` after every batch; with `train.steps_per_execution=k` a batch is k
    steps, so a plan that is not a multiple of k trains to the end of the batch it ends in)."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.plan.steps_at(self._epoch, batch) >= self.plan.steps:
            self.model.stop_training = True


class KeepToBudget(TrainingClock):
    """A minutes budget corrected as it goes: after each epoch from the second, the steps the plan has left are
    priced at the run's own mean step time (over the later half of the epochs after the first: the first compiles,
    and the early ones may too, e.g. JAX for a partial batch) and, when they would miss the budget by more than
    `budget.REVISE_TOLERANCE`, the plan and its RevisedCosine schedule are revised from the next step on (the
    schedule reads them from an optimizer variable: no new trace). A rerun's plan replays its recorded revisions
    instead, at the same epochs' ends. Between epoch ends, a run whose training time passes the budget by more than
    the tolerance stops at that step (the last epoch's end would come too late: a 5-minute run trained 13 % over
    when the machine slowed in its last epoch), recorded as a revision whose total is its step. It runs before the
    epoch's state is kept, so `last.keras` and `state.json` hold the revised plan."""

    def __init__(self, plan, print_line: Callable[[str], None] = print):
        super().__init__()
        self.plan, self.print_line = plan, print_line
        self.seconds: list[float] = []  # training seconds of each epoch (validation excluded)
        self.steps: list[int] = []

    def on_train_begin(self, logs=None):
        from skinexp.model.optim import RevisedCosine

        # A budget needs optim.schedule=cosine, which a minutes plan makes a RevisedCosine; Keras keeps the schedule
        # object only as the optimizer's `_learning_rate`.
        self.schedule = self.model.optimizer._learning_rate
        if not isinstance(self.schedule, RevisedCosine):
            raise TypeError(f"a minutes budget trains on a RevisedCosine schedule. "
                            f"Received: {type(self.schedule).__name__}")

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        """The clock's last word, between epoch ends: when the training time passes the budget by more than its
        tolerance (`Plan.overrun`), the run stops at this step, a revision recorded like the others (its total is
        its step), so that a rerun replays the stop at the same step."""
        done = self.plan.steps_at(self._epoch, batch)
        if self.plan.pending:
            if self.plan.pending[0][0] == done and self.plan.pending[0][1] <= done:
                for at_step, total in self.plan.replay_until(done):
                    self._revise(at_step, total)
            return
        if done < self.plan.steps and self.plan.overrun(sum(self.seconds) + self.train_seconds(time.perf_counter())):
            was = self.plan.steps
            self.plan.revise(done, done)
            self._revise(done, done)
            self.print_line(f"skinexp: budget: the {self.plan.seconds / 60:g} training minutes are spent after "
                            f"{done} steps; the run stops there (the plan was {was})")

    def on_epoch_end(self, epoch, logs=None):
        from skinexp.training.budget import revised_steps

        self.seconds.append(self.train_seconds(time.perf_counter()))
        done = min((epoch + 1) * self.plan.steps_per_epoch, self.plan.steps)
        self.steps.append(done - epoch * self.plan.steps_per_epoch)
        if self.plan.pending:
            for at_step, total in self.plan.replay_until(done):
                self._revise(at_step, total)
            return
        if len(self.steps) < 2 or done >= self.plan.steps:
            return
        recent = slice(1 + (len(self.steps) - 1) // 2, None)  # the later half of the epochs after the first
        total = revised_steps(self.plan, done, sum(self.seconds),
                              sum(self.seconds[recent]) / max(1, sum(self.steps[recent])))
        if total is None:
            return
        was = self.plan.steps
        self.plan.revise(done, total)
        self._revise(done, total)
        self.print_line(f"skinexp: budget: {sum(self.seconds) / 60:.2f} of {self.plan.seconds / 60:g} training "
                        f"minutes after {done} steps; the plan is now {total} steps (was {was})")

    def _revise(self, at_step: int, total: int) -> None:
        self.schedule.revise(at_step, total)
        if total <= at_step:
            self.model.stop_training = True


class PlanProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting the epochs of a plan that a minutes budget revises (`fit` is given room for
    its largest revision, `Plan.most_epochs`)."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs = self.plan.epochs
        super().on_epoch_begin(epoch, logs)


class SampleMasks(keras.callbacks.Callback):
    """Logs image | truth | prediction | overlay for fixed validation images every `every` epochs and after the
    last one, and at step 0 (the untrained model) when `from_start`: the UI's step slider opens on step 0."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, every: int, threshold: float = 0.5,
                 from_start: bool = True, epochs: Callable[[], int] | None = None):
        super().__init__()
        self.images, self.masks, self.every, self.threshold = images, masks, every, threshold
        self.from_start = from_start
        self.epochs = epochs or (lambda: self.params.get("epochs"))  # a revised plan's, else fit's

    def _log(self, step: int) -> None:
        probabilities = self.model.predict(self.images.astype(np.float32), verbose=0)
        panel = figures.sample_panel(self.images, self.masks, probabilities > self.threshold)
        tracking.log_image(panel, key="samples", step=step)

    def on_train_begin(self, logs=None):
        if len(self.images) and self.from_start:
            self._log(0)

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 == self.epochs()
        if len(self.images) and ((epoch + 1) % self.every == 0 or last):
            self._log(epoch + 1)


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """With `optim.ema`: validation scores the weights' moving average (Keras' SwapEMAWeights, the optimizer's
    `use_ema`), and at an epoch's end the callbacks between two `swap_at_epoch_end()` (ModelCheckpoint) see it in
    the model too, so the kept checkpoint is the one validation scored. Training, the callbacks after (`last.keras`
    for resuming, sample masks) and the next epoch have the trained weights, with the average in the optimizer's
    state; at the end of training Keras leaves the average in the model.
    """

    def swap_at_epoch_end(self) -> keras.callbacks.Callback:
        """Exchanges the weights and their average at an epoch's end: the first puts the average in, the second takes
        it out."""
        return keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self._swap_variables())


class EpochState(keras.callbacks.Callback):
    """After every epoch, keeps what resuming needs: the model with its optimizer state, and the epoch.

    Files (replaced atomically, so an interrupt mid-write leaves the previous epoch intact): `last.keras`
    and `state.json` (`skinexp.training.resume.write_state`). It runs before the MLflow logger, so a process killed
    in between leaves metrics that resuming can log from the state, never a logged epoch without state.
    """

    def __init__(self, directory: Path, checkpoint: keras.callbacks.ModelCheckpoint, plan=None):
        super().__init__()
        self.directory, self.checkpoint, self.plan = directory, checkpoint, plan

    def on_epoch_end(self, epoch, logs=None):
        partial = self.directory / "last.partial.keras"
        self.model.save(partial)
        os.replace(partial, self.directory / LAST_MODEL)
        scalars = {key: float(value) for key, value in (logs or {}).items() if np.ndim(value) == 0}
        write_state(self.directory, epoch + 1, float(self.checkpoint.best), scalars,
                    self.plan.revisions if self.plan is not None else None)


class ReportToTrial(keras.callbacks.Callback):
    """An Optuna search's trial: reports the epoch's `val_iou` to the study and, when the pruner says so, stops
    training after this epoch (its checkpoint kept) and tags the run `pruned=true`, `pruned_at_epoch`."""

    def __init__(self, trial):  # a skinexp.search.study.TrialLink
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch, logs=None):
        from skinexp.search.study import PRUNED_AT_TAG, PRUNED_TAG, REPORTED_METRIC

        value = (logs or {}).get(REPORTED_METRIC)
        if value is not None and self.trial.report(epoch + 1, float(value)):
            self.model.stop_training = True
            tracking.set_tags({PRUNED_TAG: "true", PRUNED_AT_TAG: epoch + 1})
