"""Losses chosen by `loss.name`: bce (the notebook's), dice, bce_dice."""
from __future__ import annotations

import keras

from skinexp.config.schema import DiceOver, LossName
from skinexp.errors import ConfigError

# Keras' Dice over these axes of (B, H, W, 1) masks is one Dice per image; None is one over the whole batch.
DICE_AXES = {DiceOver.batch: None, DiceOver.image: (1, 2, 3)}


@keras.saving.register_keras_serializable(package="skinexp")
class BCEDice(keras.losses.Loss):
    """Binary cross-entropy plus `dice_weight` times Keras' Dice loss, taken over the batch or per image
    (`per_image`: each image's Dice, averaged, so a small lesion weighs as much as a large one)."""

    def __init__(self, dice_weight: float = 1.0, per_image: bool = False, name: str = "bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.dice_weight = dice_weight
        self.per_image = per_image
        self._bce = keras.losses.BinaryCrossentropy()
        self._dice = keras.losses.Dice(axis=DICE_AXES[DiceOver.image if per_image else DiceOver.batch])

    def call(self, y_true, y_pred):
        return self._bce(y_true, y_pred) + self.dice_weight * self._dice(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "dice_weight": self.dice_weight, "per_image": self.per_image}


LOSSES = {
    LossName.bce: lambda loss_cfg: keras.losses.BinaryCrossentropy(name="bce"),
    LossName.dice: lambda loss_cfg: keras.losses.Dice(name="dice_loss", axis=DICE_AXES[loss_cfg.dice_over]),
    LossName.bce_dice: lambda loss_cfg: BCEDice(dice_weight=loss_cfg.dice_weight,
                                                per_image=loss_cfg.dice_over == DiceOver.image),
}


def build_loss(loss_cfg) -> keras.losses.Loss:
    """The loss `loss.name` names, its Dice taken over `loss.dice_over`; ConfigError for a value outside `LossName`
    or `DiceOver`."""
    if loss_cfg.name not in LOSSES:
        raise ConfigError(f"loss.name must be one of {LossName.names()}. Received: loss.name={loss_cfg.name}")
    if loss_cfg.dice_over not in DICE_AXES:
        raise ConfigError(f"loss.dice_over must be one of {DiceOver.names()}. "
                          f"Received: loss.dice_over={loss_cfg.dice_over}")
    return LOSSES[loss_cfg.name](loss_cfg)
