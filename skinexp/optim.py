"""Optimizers and learning-rate schedules chosen by the `optim` config section."""
from __future__ import annotations

import keras


def learning_rate(optim_cfg, steps_per_epoch: int, epochs: int):
    """A float, or a cosine schedule (with linear warm-up over `optim.warmup_epochs`) over the whole run."""
    if optim_cfg.schedule != "cosine":
        return optim_cfg.lr
    warmup_steps = optim_cfg.warmup_epochs * steps_per_epoch
    decay_steps = max(1, epochs * steps_per_epoch - warmup_steps)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=optim_cfg.lr / 100, decay_steps=decay_steps, alpha=0.01,
            warmup_target=optim_cfg.lr, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(optim_cfg.lr, decay_steps=decay_steps, alpha=0.01)


def build_optimizer(optim_cfg, steps_per_epoch: int, epochs: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(optim_cfg, steps_per_epoch, epochs)
    decay = optim_cfg.weight_decay or None
    if optim_cfg.name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=optim_cfg.weight_decay,
                                      clipnorm=optim_cfg.clipnorm)
    if optim_cfg.name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=optim_cfg.momentum, weight_decay=decay,
                                    clipnorm=optim_cfg.clipnorm)
    return keras.optimizers.Adam(learning_rate=lr, weight_decay=decay, clipnorm=optim_cfg.clipnorm)
