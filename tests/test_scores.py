"""Hand-checked cases for the NumPy reference scores."""

import math
import re

import numpy as np
import pytest

from skinexp.evaluation.postprocess import largest_component
from skinexp.evaluation.scores import (
    confusion,
    hd95,
    image_scores,
    summarize,
)


def _square(shape=(16, 16), top=4, left=4, size=6):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top : top + size, left : left + size] = 1
    return mask


def test_confusion_thresholds_values_above_one_half():
    truth = np.array([[0.0, 0.4], [0.6, 1.0]])
    prediction = np.array([[True, False], [False, True]])
    # foreground truth: (1,0), (1,1); foreground prediction: (0,0), (1,1)
    assert confusion(truth, prediction) == (1, 1, 1, 1)


def test_perfect_prediction():
    mask = _square()
    scores = image_scores(mask, mask * 255)
    for name in ("iou", "dice", "precision", "sensitivity", "specificity", "accuracy"):
        assert scores[name] == 1.0, name
    assert scores["hd95"] == 0.0


def test_both_empty_is_a_perfect_prediction():
    empty = np.zeros((8, 8), dtype=bool)
    scores = image_scores(empty, empty)
    for name in ("iou", "dice", "precision", "sensitivity", "specificity", "accuracy"):
        assert scores[name] == 1.0, name
    assert scores["hd95"] == 0.0


def test_truth_empty_prediction_not():
    truth = np.zeros((3, 4), dtype=np.uint8)
    prediction = truth.copy()
    prediction[1, 1] = 1
    scores = image_scores(truth, prediction)
    assert scores["iou"] == scores["dice"] == 0.0
    assert scores["sensitivity"] == 0.0  # documented: false detection scores 0
    assert scores["precision"] == 0.0
    assert scores["specificity"] == pytest.approx(11 / 12)
    assert scores["hd95"] == 5.0  # diagonal of a 3x4 image
    assert not any(math.isnan(value) for value in scores.values())


def test_prediction_empty_truth_not():
    truth = _square()
    scores = image_scores(truth, np.zeros_like(truth))
    assert scores["iou"] == scores["dice"] == 0.0
    assert scores["precision"] == scores["sensitivity"] == 0.0
    assert scores["specificity"] == 1.0
    assert scores["hd95"] == pytest.approx(math.hypot(16, 16))


def test_truth_without_background_has_specificity_one():
    truth = np.ones((4, 4))
    prediction = _square((4, 4), 0, 0, 2)
    assert image_scores(truth, prediction)["specificity"] == 1.0


def test_disjoint_masks():
    truth = _square(top=0, left=0, size=4)
    prediction = _square(top=10, left=10, size=4)
    scores = image_scores(truth, prediction)
    assert scores["iou"] == scores["dice"] == 0.0
    assert scores["precision"] == scores["sensitivity"] == 0.0
    assert scores["hd95"] > 0.0


def test_partial_overlap_matches_hand_counts():
    # 4x6 image; truth = columns 0-1, prediction = columns 1-3, so
    # tp = column 1 = 4, fp = columns 2-3 = 8, fn = column 0 = 4,
    # tn = columns 4-5 = 8.
    truth = np.zeros((4, 6), dtype=np.uint8)
    truth[:, 0:2] = 1
    prediction = np.zeros((4, 6), dtype=np.uint8)
    prediction[:, 1:4] = 1
    assert confusion(truth, prediction) == (4, 8, 4, 8)
    scores = image_scores(truth, prediction)
    assert scores["iou"] == pytest.approx(4 / 16)  # tp / (tp + fp + fn)
    assert scores["dice"] == pytest.approx(8 / 20)  # 2tp / (2tp + fp + fn)
    assert scores["precision"] == pytest.approx(4 / 12)  # tp / (tp + fp)
    assert scores["sensitivity"] == pytest.approx(4 / 8)  # tp / (tp + fn)
    assert scores["specificity"] == pytest.approx(8 / 16)  # tn / (tn + fp)
    assert scores["accuracy"] == pytest.approx(12 / 24)  # (tp + tn) / all
    assert scores["background_iou"] == pytest.approx(8 / 20)  # tn / (tn + fp + fn)


@pytest.mark.parametrize("offset", [1, 3, 7])
def test_hd95_parallel_lines_offset_by_k(offset):
    # One-pixel-wide lines are all surface, and every pixel of one line is
    # exactly `offset` rows from its twin in the other.
    truth = np.zeros((20, 20), dtype=bool)
    truth[5, 2:18] = True
    prediction = np.roll(truth, offset, axis=0)
    assert hd95(truth, prediction) == pytest.approx(offset)


def test_hd95_single_pixels_three_four_five():
    truth = np.zeros((8, 8, 1))
    prediction = np.zeros((8, 8, 1))
    truth[0, 0, 0] = 1
    prediction[3, 4, 0] = 1
    assert hd95(truth, prediction) == pytest.approx(5.0)


def test_hd95_ignores_a_five_percent_outlier():
    # 20 line pixels match exactly; one stray predicted pixel is 10 rows away.
    # Pooled distances: 40 zeros and one 10; the 95th percentile sits at
    # sorted index 0.95 * 40 = 38, which is 0, while the plain Hausdorff is 10.
    truth = np.zeros((12, 20), dtype=bool)
    truth[0, :] = True
    prediction = truth.copy()
    prediction[10, 5] = True
    assert hd95(truth, prediction) == 0.0


def test_thresholded_jaccard_zeroes_iou_below_0_65():
    truth = np.zeros((2, 10), dtype=np.uint8)
    truth[0, :] = 1
    weak, strong = np.zeros_like(truth), np.zeros_like(truth)
    weak[0, :6] = 1  # iou 6/10; background: tn 10, fn 4 -> 10/14
    strong[0, :9] = 1  # iou 9/10; background: tn 10, fn 1 -> 10/11
    summary = summarize([image_scores(truth, weak), image_scores(truth, strong)])
    assert summary["mean_iou"] == pytest.approx((0.6 + 0.9) / 2)
    assert summary["thresholded_jaccard"] == pytest.approx((0.0 + 0.9) / 2)
    assert summary["miou"] == pytest.approx(((0.6 + 10 / 14) / 2 + (0.9 + 10 / 11) / 2) / 2)
    assert summary["mean_dice"] == pytest.approx((12 / 16 + 18 / 19) / 2)
    assert summary["accuracy"] == pytest.approx((16 / 20 + 19 / 20) / 2)


def test_summarize_rejects_empty_list():
    with pytest.raises(ValueError, match=r"Received: per_image=\[\]$"):
        summarize([])


def test_largest_component_keeps_the_bigger_blob():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[0:2, 0:2] = 255  # 4 pixels
    mask[5:8, 5:8] = 255  # 9 pixels
    kept = largest_component(mask)
    expected = np.zeros_like(mask)
    expected[5:8, 5:8] = 255
    assert kept.dtype == mask.dtype and kept.shape == mask.shape
    np.testing.assert_array_equal(kept, expected)


def test_largest_component_is_eight_connected():
    # A diagonal staircase (3 pixels) touching only at corners is one blob
    # and beats the 2-pixel bar.
    mask = np.zeros((6, 6, 1), dtype=bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True
    mask[5, 0:2] = True
    kept = largest_component(mask)
    assert kept.shape == (6, 6, 1) and kept.dtype == bool
    assert kept.sum() == 3 and not kept[5].any()


def test_largest_component_of_empty_mask_is_empty():
    empty = np.zeros((5, 5), dtype=np.float32)
    kept = largest_component(empty)
    assert kept.dtype == np.float32 and not kept.any()


def test_shape_mismatch_raises_with_received_shapes():
    message = (
        "truth and prediction must have the same shape. "
        "Received: truth.shape=(4, 4), prediction.shape=(4, 5)"
    )
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        image_scores(np.zeros((4, 4)), np.zeros((4, 5)))


def test_rejects_non_mask_shapes():
    with pytest.raises(ValueError, match=re.escape("Received: truth.shape=(2, 4, 4, 1)")):
        confusion(np.zeros((2, 4, 4, 1)), np.zeros((2, 4, 4, 1)))


def test_mean_image_iou_averages_each_images_iou_as_image_scores_does():
    from skinexp.evaluation.scores import mean_image_iou

    truth = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8).reshape(3, 2, 2, 1)
    prediction = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], np.uint8).reshape(3, 2, 2, 1)
    # 1/3 (one shared pixel of three), 1 (both empty), 0 (a lesion that is not there)
    assert mean_image_iou(truth, prediction) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert mean_image_iou(truth, prediction) == pytest.approx(
        np.mean([image_scores(t, p)["iou"] for t, p in zip(truth, prediction)]))
