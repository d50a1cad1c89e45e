"""Keras training metrics, named as they appear in MLflow: accuracy, iou, miou, dice (val_ prefixed on validation).

All accumulate a confusion matrix over the epoch (dataset-level, as Keras' BinaryIoU does) and
threshold sigmoid probabilities at 0.5. Per-image evaluation metrics live in `skinexp.evaluation.scores`.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="skinexp")
class BinaryDice(keras.metrics.BinaryIoU):
    """Foreground Dice from the epoch's confusion matrix: 2 TP / (2 TP + FP + FN) = 2 IoU / (1 + IoU)."""

    def __init__(self, threshold: float = 0.5, name: str = "dice", dtype=None):
        super().__init__(target_class_ids=[1], threshold=threshold, name=name, dtype=dtype)

    def result(self):
        iou = super().result()
        return 2.0 * iou / (1.0 + iou)

    def get_config(self):
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


def training_metrics(threshold: float = 0.5) -> list[keras.metrics.Metric]:
    return [
        keras.metrics.BinaryAccuracy(threshold=threshold, name="accuracy"),
        keras.metrics.BinaryIoU(target_class_ids=[1], threshold=threshold, name="iou"),
        keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=threshold, name="miou"),
        BinaryDice(threshold=threshold, name="dice"),
    ]
