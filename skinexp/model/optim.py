"""Optimizers and learning-rate schedules chosen by the `optim` config section."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import keras
import numpy as np

from skinexp.config.schema import OptimName, Schedule
from skinexp.errors import ConfigError


@keras.saving.register_keras_serializable(package="skinexp")
class RevisedCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `lr / 100` to `lr` over `warmup_steps`, then cosine decay to `alpha * lr` over a plan
    of steps that a minutes budget revises as it goes (`skinexp.training.budget`).

    Args:
        lr: the peak learning rate. warmup_steps: fixed by the first plan, whatever the revisions do.
        plan: `[[0, planned total], [at_step, revised total], ...]`, at_step ascending. A revision keeps the
            decay's progress where it stands at `at_step` and spreads the rest of it over the steps up to its
            total, so the rate never jumps, and the steps before `at_step` keep the rates they trained with: a
            schedule built with all of a run's revisions gives every step the rate the run gave it.
        alpha: the final rate as a fraction of `lr`.

    The last piece of the plan is read from an optimizer variable once `bind` made one (a `planned` optimizer does
    at build): the training step, traced once, follows a revision without being traced again (that costs 12-20 s
    on the 128 px recipe), and the variable is saved with the optimizer and is part of JAX's optimizer state.
    """

    def __init__(self, lr: float, warmup_steps: int, plan: Sequence[Sequence[int]], alpha: float = 0.01):
        if not plan or plan[0][0] != 0 or any(later[0] < earlier[0] for earlier, later in zip(plan, plan[1:])):
            raise ValueError(f"plan must start at step 0 with its steps ascending. Received: plan={plan}")
        self.lr, self.warmup_steps, self.alpha = float(lr), int(warmup_steps), float(alpha)
        self.plan = [[int(at_step), int(total)] for at_step, total in plan]
        self.piece = None  # (first step, decay progress there, steps to the total) of the last piece, once bound

    def segments(self) -> list[tuple[int, float, int]]:
        """(first step, decay progress there, steps from there to its total) of each piece of the decay."""
        (_, total), *revisions = self.plan
        pieces = [(self.warmup_steps, 0.0, max(1, total - self.warmup_steps))]
        for at_step, total in revisions:
            start, progress, length = pieces[-1]
            at_step = max(at_step, self.warmup_steps)
            reached = min(1.0, progress + (1 - progress) * (at_step - start) / length)
            pieces.append((at_step, reached, max(1, total - at_step)))
        return pieces

    def bind(self, optimizer: keras.optimizers.Optimizer) -> None:
        if self.piece is None:
            self.piece = optimizer.add_variable((3,), keras.initializers.Constant(self.segments()[-1]),
                                                dtype="float32", name="budget_plan_piece")

    def revise(self, at_step: int, total: int) -> None:
        """From `at_step` on, the decay ends at `total` steps."""
        if at_step < self.plan[-1][0]:
            raise ValueError(f"a revision cannot go back before the last one, at step {self.plan[-1][0]}. "
                             f"Received: at_step={at_step}")
        self.plan.append([int(at_step), int(total)])
        if self.piece is not None:
            self.piece.assign(np.array(self.segments()[-1], dtype="float32"))

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        pieces: list = list(self.segments())
        if self.piece is not None:
            pieces[-1] = tuple(self.piece[index] for index in range(3))
        progress = keras.ops.zeros_like(step)
        for piece in pieces:
            # float32 first, constants and variable alike: the same arithmetic gives a replayed plan the same rates
            start, reached, length = (keras.ops.cast(value, "float32") for value in piece)
            along = reached + (1 - reached) * (step - start) / length
            progress = keras.ops.where(step >= start, keras.ops.clip(along, 0.0, 1.0), progress)
        decayed = self.lr * (self.alpha + (1 - self.alpha) * 0.5 * (1 + keras.ops.cos(math.pi * progress)))
        if not self.warmup_steps:
            return decayed
        warming = self.lr / 100 + (self.lr - self.lr / 100) * step / self.warmup_steps
        return keras.ops.where(step < self.warmup_steps, warming, decayed)

    def get_config(self):
        return {"lr": self.lr, "warmup_steps": self.warmup_steps, "plan": self.plan, "alpha": self.alpha}


def _planned(base: type) -> type:
    """`base` whose RevisedCosine reads its last piece from a variable this optimizer owns (`RevisedCosine.bind`),
    made at build, so a loaded optimizer has it too before its saved variables are read back."""

    @keras.saving.register_keras_serializable(package="skinexp", name=f"Planned{base.__name__}")
    class Planned(base):
        def build(self, variables):
            super().build(variables)
            if isinstance(self._learning_rate, RevisedCosine):
                self._learning_rate.bind(self)

    Planned.__name__ = Planned.__qualname__ = f"Planned{base.__name__}"
    return Planned


PLANNED = {base: _planned(base) for base in (keras.optimizers.Adam, keras.optimizers.AdamW, keras.optimizers.SGD)}


def learning_rate(optim_cfg, steps_per_epoch: int, total_steps: int,
                  plan: Optional[Sequence[Sequence[int]]] = None):
    """A float, or a cosine schedule over the run's `total_steps` (whatever decided them: epochs or a budget):
    linear warm-up over `optim.warmup_epochs` (at most half the run), then decay to 1 % of `optim.lr`. With a
    `plan` (a minutes budget's, `[[0, planned], [at_step, revised], ...]`), a RevisedCosine over it, whose warm-up
    the first planned total bounds."""
    if optim_cfg.schedule not in tuple(Schedule):
        raise ConfigError(f"optim.schedule must be one of {Schedule.names()}. "
                          f"Received: optim.schedule={optim_cfg.schedule}")
    if optim_cfg.schedule != Schedule.cosine:  # plateau: a callback lowers the constant rate
        return optim_cfg.lr
    if plan:
        return RevisedCosine(optim_cfg.lr, min(optim_cfg.warmup_epochs * steps_per_epoch, plan[0][1] // 2), plan)
    warmup_steps = min(optim_cfg.warmup_epochs * steps_per_epoch, total_steps // 2)
    decay_steps = max(1, total_steps - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=optim_cfg.lr / 100, decay_steps=decay_steps, alpha=0.01,
            warmup_target=optim_cfg.lr, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(optim_cfg.lr, decay_steps=decay_steps, alpha=0.01)


OPTIMIZERS = {  # name: (class, its arguments besides the learning rate)
    OptimName.adam: (keras.optimizers.Adam, lambda optim_cfg: dict(
        weight_decay=optim_cfg.weight_decay or None, clipnorm=optim_cfg.clipnorm)),
    OptimName.adamw: (keras.optimizers.AdamW, lambda optim_cfg: dict(
        weight_decay=optim_cfg.weight_decay, clipnorm=optim_cfg.clipnorm)),
    OptimName.sgd: (keras.optimizers.SGD, lambda optim_cfg: dict(
        momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay or None, clipnorm=optim_cfg.clipnorm)),
}


def build_optimizer(optim_cfg, steps_per_epoch: int, total_steps: int,
                    plan: Optional[Sequence[Sequence[int]]] = None) -> keras.optimizers.Optimizer:
    """The optimizer `optim.name` names, with its learning rate or schedule over `total_steps` (or `plan`, see
    `learning_rate`: then the optimizer is its `Planned` subclass, which owns the schedule's variable);
    ConfigError for an unknown name. With `optim.ema`, the optimizer also keeps the weights' moving average (Keras'
    `use_ema`), which `skinexp.training.callbacks.AveragedWeights` puts in the model to validate and keep."""
    if optim_cfg.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {OptimName.names()}. Received: optim.name={optim_cfg.name}")
    optimizer_class, arguments = OPTIMIZERS[optim_cfg.name]
    rate = learning_rate(optim_cfg, steps_per_epoch, total_steps, plan)
    if isinstance(rate, RevisedCosine):
        optimizer_class = PLANNED[optimizer_class]
    averaging = dict(use_ema=True, ema_momentum=optim_cfg.ema) if optim_cfg.ema is not None else {}
    return optimizer_class(learning_rate=rate, **arguments(optim_cfg), **averaging)
