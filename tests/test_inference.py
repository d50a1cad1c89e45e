"""Test-time augmentation: every flip's prediction is flipped back before averaging (skinexp.evaluation.inference)."""
from __future__ import annotations

import numpy as np

from skinexp.evaluation.inference import flip_averaged, predict_probabilities


def _batch(count: int = 2, height: int = 2, width: int = 3) -> np.ndarray:
    """(N, H, W, 3) float32 with every pixel different, so any flip changes it."""
    return np.arange(count * height * width * 3, dtype=np.float32).reshape(count, height, width, 3)


def _top_left_pixel(batch: np.ndarray) -> np.ndarray:
    """Ignores the image: 1 at pixel (0, 0) of every (N, H, W, 1) output, a prediction no flip agrees with."""
    out = np.zeros((*batch.shape[:3], 1), np.float32)
    out[:, 0, 0] = 1
    return out


def test_a_prediction_that_follows_the_image_comes_back_unchanged():
    batch = _batch()
    averaged = flip_averaged(lambda images: images[..., :1] / 100, batch)
    assert averaged.dtype == np.float32
    np.testing.assert_allclose(averaged, batch[..., :1] / 100, rtol=1e-6)


def test_each_flip_is_undone_before_averaging():
    averaged = flip_averaged(_top_left_pixel, _batch(height=2, width=3))
    # identity, horizontal, vertical and both flips put the pixel back at each of the four corners
    expected = np.array([[0.25, 0, 0.25], [0.25, 0, 0.25]], np.float32)
    for image in averaged:
        np.testing.assert_array_equal(image[..., 0], expected)


def test_the_model_sees_the_batch_and_its_three_flips():
    batch, seen = _batch(), []
    flip_averaged(lambda images: seen.append(images.copy()) or images[..., :1], batch)
    expected = [batch, batch[:, :, ::-1], batch[:, ::-1], batch[:, ::-1, ::-1]]
    assert len(seen) == 4 and all(np.array_equal(got, want) for got, want in zip(seen, expected))


class _Model:
    """What predict_probabilities needs of a Keras model: predict_on_batch, here the red channel / 255."""

    def __init__(self):
        self.batches = []

    def predict_on_batch(self, batch):
        self.batches.append(batch)
        return batch[..., :1] / 255


def test_predict_probabilities_batches_float_pixels_and_keeps_the_order():
    images = np.random.default_rng(0).integers(0, 256, (5, 2, 3, 3), dtype=np.uint8)
    model = _Model()
    probabilities = predict_probabilities(model, images, batch_size=2)
    assert [len(b) for b in model.batches] == [2, 2, 1]
    assert all(b.dtype == np.float32 for b in model.batches)
    assert probabilities.shape == (5, 2, 3, 1) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, images[..., :1] / 255, rtol=1e-6)  # pixels 0..255, not rescaled


def test_predict_probabilities_with_tta_averages_four_predictions_per_batch():
    images = np.zeros((3, 2, 3, 3), np.uint8)
    model = _Model()
    model.predict_on_batch = lambda batch: model.batches.append(batch) or _top_left_pixel(batch)
    probabilities = predict_probabilities(model, images, batch_size=2, tta=True)
    assert [len(b) for b in model.batches] == [2, 2, 2, 2, 1, 1, 1, 1]
    assert probabilities.shape == (3, 2, 3, 1)
    np.testing.assert_array_equal(probabilities[..., 0], np.tile([[0.25, 0, 0.25]], (3, 2, 1)))
