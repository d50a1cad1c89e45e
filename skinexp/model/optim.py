"""Optimizers and learning-rate schedules chosen by the `optim` config section."""
from __future__ import annotations

import keras

from skinexp.config.schema import OptimName, Schedule
from skinexp.errors import ConfigError


def learning_rate(optim_cfg, steps_per_epoch: int, total_steps: int):
    """A float, or a cosine schedule over the run's `total_steps` (whatever decided them: epochs or a budget):
    linear warm-up over `optim.warmup_epochs` (at most half the run), then decay to 1 % of `optim.lr`."""
    if optim_cfg.schedule not in tuple(Schedule):
        raise ConfigError(f"optim.schedule must be one of {Schedule.names()}. "
                          f"Received: optim.schedule={optim_cfg.schedule}")
    if optim_cfg.schedule != Schedule.cosine:  # plateau: a callback lowers the constant rate
        return optim_cfg.lr
    warmup_steps = min(optim_cfg.warmup_epochs * steps_per_epoch, total_steps // 2)
    decay_steps = max(1, total_steps - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=optim_cfg.lr / 100, decay_steps=decay_steps, alpha=0.01,
            warmup_target=optim_cfg.lr, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(optim_cfg.lr, decay_steps=decay_steps, alpha=0.01)


OPTIMIZERS = {
    OptimName.adam: lambda optim_cfg, lr: keras.optimizers.Adam(
        learning_rate=lr, weight_decay=optim_cfg.weight_decay or None, clipnorm=optim_cfg.clipnorm),
    OptimName.adamw: lambda optim_cfg, lr: keras.optimizers.AdamW(
        learning_rate=lr, weight_decay=optim_cfg.weight_decay, clipnorm=optim_cfg.clipnorm),
    OptimName.sgd: lambda optim_cfg, lr: keras.optimizers.SGD(
        learning_rate=lr, momentum=optim_cfg.momentum, weight_decay=optim_cfg.weight_decay or None,
        clipnorm=optim_cfg.clipnorm),
}


def build_optimizer(optim_cfg, steps_per_epoch: int, total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer `optim.name` names, with its learning rate or schedule over `total_steps`; ConfigError for an
    unknown name."""
    if optim_cfg.name not in OPTIMIZERS:
        raise ConfigError(f"optim.name must be one of {OptimName.names()}. Received: optim.name={optim_cfg.name}")
    return OPTIMIZERS[optim_cfg.name](optim_cfg, learning_rate(optim_cfg, steps_per_epoch, total_steps))
