"""Keras training metrics against hand-computed cases: perfect, empty, half overlap; and the losses."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="module")
def metrics():
    from skinexp.model.metrics import training_metrics

    return training_metrics


def _scores(metrics, truth, probabilities):
    results = {}
    for metric in metrics():
        metric.update_state(truth.astype("float32"), probabilities.astype("float32"))
        results[metric.name] = float(metric.result())
    return results


def test_names_are_the_logged_ones(metrics):
    assert [m.name for m in metrics()] == ["accuracy", "iou", "miou", "dice"]


def test_perfect_prediction(metrics):
    truth = np.zeros((1, 4, 4, 1))
    truth[0, :2] = 1
    scores = _scores(metrics, truth, truth * 0.9 + 0.05)
    assert scores == pytest.approx({"accuracy": 1.0, "iou": 1.0, "miou": 1.0, "dice": 1.0})


def test_half_overlap(metrics):
    # Truth: left half of a 4x4 image (8 px). Prediction: top half (8 px). Overlap 4 px.
    truth = np.zeros((1, 4, 4, 1))
    truth[0, :, :2] = 1
    prediction = np.zeros((1, 4, 4, 1))
    prediction[0, :2, :] = 1
    scores = _scores(metrics, truth, prediction)
    # TP=4, FP=4, FN=4, TN=4: IoU 4/12, background IoU 4/12, Dice 8/16, accuracy 8/16.
    assert scores == pytest.approx({"accuracy": 0.5, "iou": 1 / 3, "miou": 1 / 3, "dice": 0.5})


def test_empty_truth_and_prediction_background_only(metrics):
    truth = np.zeros((1, 4, 4, 1))
    scores = _scores(metrics, truth, np.full_like(truth, 0.1))
    # No foreground anywhere: Keras' BinaryIoU gives 0 for the absent class; background IoU is 1.
    assert scores["accuracy"] == pytest.approx(1.0)
    assert scores["miou"] == pytest.approx(1.0)  # classes absent from truth and prediction are skipped
    assert scores["iou"] == pytest.approx(0.0)


def test_metrics_accumulate_over_batches_like_one_confusion_matrix(metrics):
    rng = np.random.default_rng(0)
    truth = (rng.random((6, 8, 8, 1)) > 0.6).astype("float32")
    probabilities = rng.random((6, 8, 8, 1)).astype("float32")
    whole = _scores(metrics, truth, probabilities)
    batched = {}
    for metric in metrics():
        for start in range(0, 6, 2):
            metric.update_state(truth[start:start + 2], probabilities[start:start + 2])
        batched[metric.name] = float(metric.result())
    assert batched == pytest.approx(whole)
    predicted = probabilities > 0.5
    tp = np.sum(predicted & (truth > 0.5))
    fp = np.sum(predicted & (truth <= 0.5))
    fn = np.sum(~predicted & (truth > 0.5))
    assert whole["iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-6)
    assert whole["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "bce_lovasz"])
def test_losses_are_small_for_a_good_prediction_and_large_for_a_bad_one(compose, name):
    from skinexp.model.losses import build_loss

    loss = build_loss(compose("train", [f"loss={name}"]).loss)
    truth = np.zeros((2, 8, 8, 1), "float32")
    truth[:, 2:6, 2:6] = 1
    good = float(loss(truth, np.clip(truth, 0.02, 0.98)))
    bad = float(loss(truth, np.clip(1 - truth, 0.02, 0.98)))
    assert 0 <= good < 0.2 < bad


@pytest.mark.parametrize("name", ["dice", "bce_dice"])
def test_dice_over_image_weighs_each_image_alike_and_over_batch_pools_the_pixels(compose, name):
    """Two images: a 16-pixel lesion predicted exactly and a 4-pixel lesion missed (predicted empty). Over the
    batch Dice = 2 x 16 / (20 + 16) = 8/9, loss 1/9; per image the Dice are 1 and 0, loss 1/2."""
    from skinexp.model.losses import build_loss

    truth = np.zeros((2, 8, 8, 1), "float32")
    truth[0, 2:6, 2:6] = 1
    truth[1, 3:5, 3:5] = 1
    prediction = truth.copy()
    prediction[1] = 0
    overrides = [f"loss={name}", "loss.dice_weight=1.0"] if name == "bce_dice" else [f"loss={name}"]
    losses = {over: float(build_loss(compose("train", [*overrides, f"loss.dice_over={over}"]).loss)(truth, prediction))
              for over in ("batch", "image")}
    bce = 0.0
    if name == "bce_dice":  # Keras clips probabilities to [1e-7, 1 - 1e-7]: 4 missed pixels of 128 cost -log(1e-7)
        bce = 4 / 128 * -np.log(1e-7)
    assert losses["batch"] == pytest.approx(bce + 1 / 9, abs=1e-4)
    assert losses["image"] == pytest.approx(bce + 1 / 2, abs=1e-4)


def test_the_lovasz_term_is_one_minus_each_images_iou_for_binary_predictions():
    """Hand-checked: a 16-pixel lesion half covered by a 16-pixel prediction (IoU 8/24), a perfect one, an empty
    mask with 4 pixels predicted (IoU 0), an empty mask predicted empty; then soft predictions 0.1 off everywhere,
    where the surrogate is that error (its weights sum to the full Jaccard loss, 1)."""
    from skinexp.model.losses import build_loss, lovasz_per_image

    truth = np.zeros((4, 8, 8, 1), "float32")
    prediction = np.zeros_like(truth)
    truth[0, 2:6, 2:6] = 1
    prediction[0, 2:6, 4:8] = 1
    truth[1, 2:6, 2:6] = 1
    prediction[1] = truth[1]
    prediction[2, 0:2, 0:2] = 1
    assert np.asarray(lovasz_per_image(truth, prediction)) == pytest.approx([2 / 3, 0, 1, 0], abs=1e-6)
    assert np.asarray(lovasz_per_image(truth, np.clip(truth, 0.1, 0.9))) == pytest.approx([0.1] * 4, abs=1e-6)
    loss = build_loss(SimpleNamespace(name="bce_lovasz", lovasz_weight=2.0, dice_over="batch"))
    import keras

    bce = float(keras.losses.BinaryCrossentropy()(truth, prediction))
    assert float(loss(truth, prediction)) == pytest.approx(bce + 2.0 * (2 / 3 + 1) / 4, rel=1e-4)


@pytest.mark.parametrize("key", ["dice_weight", "lovasz_weight"])
def test_a_negative_loss_weight_fails_in_one_line(main, tmp_path, key):
    from conftest import TINY, error_line

    line = error_line(main("train", *TINY, f"loss.{key}=-0.5", cwd=tmp_path))
    assert line.endswith(f"loss.{key} must be non-negative. Received: loss.{key}=-0.5")
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # refused before any run or store
