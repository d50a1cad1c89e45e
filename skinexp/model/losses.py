"""Losses chosen by `loss.name`: bce (the notebook's), dice, bce_dice."""
from __future__ import annotations

import keras

from skinexp.config.schema import LossName
from skinexp.errors import ConfigError


@keras.saving.register_keras_serializable(package="skinexp")
class BCEDice(keras.losses.Loss):
    """Binary cross-entropy plus `dice_weight` times Keras' Dice loss."""

    def __init__(self, dice_weight: float = 1.0, name: str = "bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self._bce = keras.losses.BinaryCrossentropy()
        self._dice = keras.losses.Dice()

    def call(self, y_true, y_pred):
        return self._bce(y_true, y_pred) + self.dice_weight * self._dice(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight}


LOSSES = {
    LossName.bce: lambda loss_cfg: keras.losses.BinaryCrossentropy(name="bce"),
    LossName.dice: lambda loss_cfg: keras.losses.Dice(name="dice_loss"),
    LossName.bce_dice: lambda loss_cfg: BCEDice(dice_weight=loss_cfg.dice_weight),
}


def build_loss(loss_cfg) -> keras.losses.Loss:
    """The loss `loss.name` names; ConfigError for a name outside `LossName`."""
    if loss_cfg.name not in LOSSES:
        raise ConfigError(f"loss.name must be one of {LossName.names()}. Received: loss.name={loss_cfg.name}")
    return LOSSES[loss_cfg.name](loss_cfg)
