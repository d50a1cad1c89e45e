"""Losses chosen by `loss.name`: bce (the notebook's), dice, bce_dice, bce_lovasz."""
from __future__ import annotations

import keras
from keras import ops

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


def lovasz_per_image(y_true, y_pred):
    """(B,): each image's Lovász extension of its Jaccard loss 1 - IoU, on the foreground probabilities (Berman et
    al., "The Lovász-Softmax loss", CVPR 2018, per image, binary). Pixels are sorted by their error |truth - p|,
    largest first, and each error weighs what it adds to 1 - IoU there, so the loss is exactly 1 - IoU for a
    binary prediction (0 for an empty mask predicted empty) and a convex, piecewise-linear surrogate between.

    Args:
        y_true: `(B, H, W, 1)` masks {0, 1}. y_pred: `(B, H, W, 1)` probabilities 0..1.
    """
    batch = ops.shape(y_true)[0]
    truth = ops.reshape(ops.cast(y_true, "float32"), (batch, -1))
    errors = ops.abs(truth - ops.reshape(ops.cast(y_pred, "float32"), (batch, -1)))
    sorted_errors, order = ops.top_k(errors, k=ops.shape(errors)[1])
    sorted_truth = ops.take_along_axis(truth, order, axis=1)
    lesion = ops.sum(sorted_truth, axis=1, keepdims=True)
    intersection = lesion - ops.cumsum(sorted_truth, axis=1)
    union = lesion + ops.cumsum(1.0 - sorted_truth, axis=1)
    jaccard = 1.0 - intersection / union  # 1 - IoU with the first k sorted pixels flipped to wrong
    weights = ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1)
    return ops.sum(sorted_errors * ops.stop_gradient(weights), axis=1)


@keras.saving.register_keras_serializable(package="skinexp")
class BCELovasz(keras.losses.Loss):
    """Binary cross-entropy plus `lovasz_weight` times the mean over images of `lovasz_per_image`: a surrogate of
    the mean per-image IoU that runs are ranked by, beside BCE's per-pixel gradient."""

    def __init__(self, lovasz_weight: float = 1.0, name: str = "bce_lovasz", **kwargs):
        super().__init__(name=name, **kwargs)
        self.lovasz_weight = lovasz_weight
        self._bce = keras.losses.BinaryCrossentropy()

    def call(self, y_true, y_pred):
        return self._bce(y_true, y_pred) + self.lovasz_weight * ops.mean(lovasz_per_image(y_true, y_pred))

    def get_config(self):
        return {**super().get_config(), "lovasz_weight": self.lovasz_weight}


LOSSES = {
    LossName.bce: lambda loss_cfg: keras.losses.BinaryCrossentropy(name="bce"),
    LossName.dice: lambda loss_cfg: keras.losses.Dice(name="dice_loss", axis=DICE_AXES[loss_cfg.dice_over]),
    LossName.bce_dice: lambda loss_cfg: BCEDice(dice_weight=loss_cfg.dice_weight,
                                                per_image=loss_cfg.dice_over == DiceOver.image),
    LossName.bce_lovasz: lambda loss_cfg: BCELovasz(lovasz_weight=loss_cfg.lovasz_weight),
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
