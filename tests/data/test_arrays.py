"""skinexp.data.arrays on hand-made arrays: the notebook's mask rule, pixel scales, and the errors naming the array."""
from __future__ import annotations

import numpy as np
import pytest

from skinexp.data.arrays import binarise, images_to_uint8, masks_to_binary, pixel_scale, scaled_uint8
from skinexp.errors import DataError


def test_binarise_0_255_masks_to_0_1_without_a_flag():
    masks = np.array([[[0, 255], [255, 0]]], np.uint8)
    binary, other_values = binarise(masks, 255)
    assert binary.dtype == np.uint8 and binary.tolist() == [[[0, 1], [1, 0]]]
    assert other_values.tolist() == [False]


def test_binarise_bool_masks_by_their_maximum_true():
    masks = np.array([[[False, True], [True, True]]])
    binary, other_values = binarise(masks, 1)
    assert binary.dtype == np.uint8 and binary.tolist() == [[[0, 1], [1, 1]]]
    assert other_values.tolist() == [False]


def test_binarise_flags_masks_with_in_between_values_and_thresholds_strictly_above_half_the_max():
    masks = np.array([[[0, 100], [101, 200]],  # 100 is exactly half of 200: background
                      [[0, 200], [200, 0]]], np.uint8)
    binary, other_values = binarise(masks, 200)
    assert binary.tolist() == [[[0, 0], [1, 1]], [[0, 1], [1, 0]]]
    assert other_values.tolist() == [True, False]  # per mask: only the first had values besides 0 and 200


def test_masks_to_binary_divides_by_the_arrays_maximum_and_counts_soft_masks():
    masks = np.zeros((3, 2, 2), np.float32)
    masks[0] = [[1000, 0], [0, 0]]
    masks[1] = [[1000, 1000], [400, 600]]  # 400 -> 0, 600 -> 1, and a soft mask
    binary, foreground, other_values = masks_to_binary(masks, 2, "mask_train.npy")
    assert binary.shape == (3, 2, 2, 1) and binary.dtype == np.uint8
    assert binary[..., 0].tolist() == [[[1, 0], [0, 0]], [[1, 1], [0, 1]], [[0, 0], [0, 0]]]
    assert foreground.tolist() == [0.25, 0.75, 0.0]
    assert other_values == 1


def test_masks_to_binary_keeps_a_0_1_uint8_array_at_size_as_it_is():
    masks = np.array([[[[0], [1]], [[1], [1]]]], np.uint8)
    binary, foreground, _ = masks_to_binary(masks, 2, "m")
    assert binary is masks and foreground.tolist() == [0.75]


def test_masks_to_binary_resizes_nearest_to_the_image_size():
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, :2, :2] = 255  # the top-left quadrant
    binary, foreground, _ = masks_to_binary(masks, 2, "m")
    assert binary[0, ..., 0].tolist() == [[1, 0], [0, 0]]
    assert foreground.tolist() == [0.25]  # measured at the stored 4x4


def test_masks_to_binary_names_the_array_holding_nan():
    masks = np.zeros((3, 2, 2), np.float32)
    masks[2, 1, 1] = np.nan
    with pytest.raises(DataError, match=r"^mask_val\.npy must hold finite values\. Received: NaN or inf at index 2$"):
        masks_to_binary(masks, 2, "mask_val.npy")


@pytest.mark.parametrize("array, scale", [
    (np.array([0, 17, 255], np.uint8), 1.0),
    (np.array([0.0, 0.5, 1.0], np.float32), 255.0),  # 0..1 floats
    (np.array([0.0, 0.5, 0.75], np.float64), 255.0),  # a maximum below 1 is 0..1 too
    (np.array([0.0, 1.5, 200.0], np.float32), 1.0),  # 0..255 floats
    (np.array([0, 1, 1], np.int64), 1.0),  # integers are never 0..1
])
def test_pixel_scale_tells_0_1_floats_from_0_255(array, scale):
    assert pixel_scale(array, "data_train.npy") == scale


@pytest.mark.parametrize("array, received", [(np.array([-1.0, 3.0], np.float32), "values from -1 to 3 (float32)"),
                                             (np.array([0, 256], np.int64), "values from 0 to 256 (int64)")])
def test_pixel_scale_outside_0_255_names_the_array(array, received):
    with pytest.raises(DataError, match=r"^data_train\.npy must hold pixel values in 0\.\.255 or 0\.\.1\. "
                                        rf"Received: {received.replace('(', '[(]').replace(')', '[)]')}$"):
        pixel_scale(array, "data_train.npy")


def test_scaled_uint8_rounds_and_clips():
    assert scaled_uint8(np.array([0.0, 0.5, 1.0, 0.002], np.float32), 255.0).tolist() == [0, 128, 255, 1]
    assert scaled_uint8(np.array([0.4, 254.6, 255.2], np.float64), 1.0).tolist() == [0, 255, 255]
    as_is = np.array([3, 4], np.uint8)
    assert scaled_uint8(as_is, 255.0) is as_is  # uint8 is already pixels


def test_images_to_uint8_scales_0_1_floats_and_passes_uint8_at_size_through():
    floats = np.zeros((1, 2, 2, 3), np.float32)
    floats[0, 0, 0] = [1.0, 0.5, 0.0]
    images = images_to_uint8(floats, 2, "data_train.npy")
    assert images.dtype == np.uint8 and images[0, 0, 0].tolist() == [255, 128, 0]
    assert images[0, 1, 1].tolist() == [0, 0, 0]
    already = np.zeros((1, 2, 2, 3), np.uint8)
    assert images_to_uint8(already, 2, "data_train.npy") is already
