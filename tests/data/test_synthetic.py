"""Contract tests for the procedural dermoscopy generator."""

import re

import numpy as np
import pytest
from scipy import ndimage

from skinexp.data.synthetic import make_synthetic

NUM_SAMPLES = 64
IMAGE_SIZE = 64
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def batch():
    return make_synthetic(NUM_SAMPLES, IMAGE_SIZE, seed=0)


def test_shapes_dtypes_and_value_ranges(batch):
    images, masks = batch
    assert images.shape == (NUM_SAMPLES, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert masks.shape == (NUM_SAMPLES, IMAGE_SIZE, IMAGE_SIZE, 1)
    assert images.dtype == np.uint8
    assert masks.dtype == np.uint8
    assert set(np.unique(masks).tolist()) == {0, 1}
    # Real photographs use much of the 0..255 range; a washed-out or constant image means a blending bug.
    assert images.max() > 200
    assert images.min() < 60
    assert all(image.std() > 5 for image in images)


@pytest.mark.parametrize("image_size", [16, 37, 128])
def test_any_image_size_from_16(image_size):
    images, masks = make_synthetic(2, image_size, seed=1)
    assert images.shape == (2, image_size, image_size, 3)
    assert masks.shape == (2, image_size, image_size, 1)


def test_numpy_integers_are_accepted():
    images, masks = make_synthetic(np.int64(2), np.int32(32), seed=np.uint8(3))
    assert images.shape == (2, 32, 32, 3)
    assert masks.shape == (2, 32, 32, 1)


def test_same_seed_gives_identical_samples():
    first = make_synthetic(4, 48, seed=11)
    second = make_synthetic(4, 48, seed=11)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_different_seed_gives_different_samples():
    images_a, masks_a = make_synthetic(4, 48, seed=11)
    images_b, masks_b = make_synthetic(4, 48, seed=12)
    assert not np.array_equal(images_a, images_b)
    assert not np.array_equal(masks_a, masks_b)


def test_samples_within_a_batch_differ(batch):
    images, masks = batch
    assert not np.array_equal(images[0], images[1])
    assert not np.array_equal(masks[0], masks[1])


def test_asking_for_more_samples_keeps_earlier_ones():
    few_images, few_masks = make_synthetic(5, 48, seed=3)
    many_images, many_masks = make_synthetic(12, 48, seed=3)
    np.testing.assert_array_equal(few_images, many_images[:5])
    np.testing.assert_array_equal(few_masks, many_masks[:5])


def test_every_mask_covers_a_sensible_fraction(batch):
    _, masks = batch
    fractions = masks.mean(axis=(1, 2, 3))
    assert fractions.min() > 0.01, fractions
    assert fractions.max() < 0.70, fractions


@pytest.mark.parametrize("image_size", [16, IMAGE_SIZE])
def test_every_mask_is_one_connected_lesion(image_size):
    _, masks = make_synthetic(NUM_SAMPLES, image_size, seed=5)
    components = [ndimage.label(mask[..., 0])[1] for mask in masks]
    assert components == [1] * NUM_SAMPLES


def test_lesions_are_darker_than_background(batch):
    images, masks = batch
    luma = images @ LUMA
    lesion = masks[..., 0].astype(bool)
    lesion_median = np.array([np.median(y[m]) for y, m in zip(luma, lesion)])
    background_median = np.array([np.median(y[~m]) for y, m in zip(luma, lesion)])
    # Faint lesions are a deliberate minority, so demand darkness for most images, not all.
    assert np.mean(lesion_median < background_median) >= 0.9
    assert luma[lesion].mean() < 0.85 * luma[~lesion].mean()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_samples": 0}, "num_samples must be positive. Received: num_samples=0"),
        ({"num_samples": -3}, "num_samples must be positive. Received: num_samples=-3"),
        ({"num_samples": 2.0}, "num_samples must be an integer. Received: num_samples=2.0"),
        ({"image_size": 15}, "image_size must be at least 16. Received: image_size=15"),
        ({"image_size": True}, "image_size must be an integer. Received: image_size=True"),
        ({"seed": -1}, "seed must be non-negative. Received: seed=-1"),
        ({"seed": "0"}, "seed must be an integer. Received: seed='0'"),
    ],
)
def test_invalid_arguments_are_rejected(overrides, message):
    arguments = {"num_samples": 2, "image_size": 32, "seed": 0, **overrides}
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        make_synthetic(**arguments)
