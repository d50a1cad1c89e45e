"""scores.best_threshold: the grid threshold that maximises the mean per-image IoU, on hand-checked pixel sets.

Probabilities stay off the grid's values (0.05, 0.10, ...) so "strictly above" never hinges on rounding.
"""
from __future__ import annotations

import numpy as np
import pytest

from skinexp.evaluation.scores import THRESHOLDS, best_threshold


def _pixels(truth: list[float], background: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, masks) as one (1, H, W, 1) image: the truth pixels first, then the background."""
    probabilities = np.array(truth + background, np.float64).reshape(1, 1, -1, 1)
    masks = np.array([1] * len(truth) + [0] * len(background), np.uint8).reshape(1, 1, -1, 1)
    return probabilities, masks


def test_the_grid_is_0_05_to_0_95_in_steps_of_0_05():
    assert THRESHOLDS.tolist() == pytest.approx([round(0.05 * i, 2) for i in range(1, 20)])


def test_the_threshold_between_the_last_false_positive_and_the_truth_wins():
    # truth at 0.7; background at 0.3 and 0.62: 0.60 still predicts the 0.62 pixels (IoU 2/4), 0.65 only the truth
    probabilities, masks = _pixels([0.7, 0.7], [0.3, 0.3, 0.62, 0.62])
    assert best_threshold(probabilities, masks) == (0.65, 1.0)


def test_ties_go_to_the_threshold_nearest_0_5():
    # 0.05-0.10: 4 of 8 predicted right (0.5); 0.15-0.20: fp 0.47, 0.22 (4/6); 0.25-0.40: fp 0.47 only (4/5);
    # 0.45: the 0.42 truth pixel lost (3/5); 0.50-0.85: 3/4; 0.90-0.95: nothing (0)
    probabilities, masks = _pixels([0.88, 0.88, 0.88, 0.42], [0.12, 0.12, 0.47, 0.22])
    threshold, iou = best_threshold(probabilities, masks)
    assert threshold == 0.4
    assert iou == pytest.approx(0.8)


def test_an_equal_tie_either_side_of_0_5_goes_to_the_lower():
    # image 1 (truth 0.47, 0.57; background 0.42): 1 at 0.45, 1/2 at 0.50-0.55
    # image 2 (truth 0.57; background 0.52, 0.01): 1/2 at 0.45-0.50, 1 at 0.55
    # means: 0.45 and 0.55 tie at 0.75, 0.50 scores 0.5
    first, first_masks = _pixels([0.47, 0.57], [0.42])
    second, second_masks = _pixels([0.57], [0.52, 0.01])
    probabilities, masks = np.concatenate([first, second]), np.concatenate([first_masks, second_masks])
    assert best_threshold(probabilities, masks) == pytest.approx((0.45, 0.75))


def test_the_iou_is_averaged_per_image_not_pooled_over_images():
    # image 1 all truth, image 2 all background: pooled IoU would pick 0.25-0.40 (4/5); the per-image mean is
    # (1 + 0) / 2 there, and (3/4 + 1) / 2 = 0.875 at 0.50-0.85, where the 0.47 false lesion is gone
    probabilities, masks = _pixels([0.88, 0.88, 0.88, 0.42], [0.12, 0.12, 0.47, 0.22])
    assert best_threshold(probabilities.reshape(2, 2, 2, 1), masks.reshape(2, 2, 2, 1)) == pytest.approx((0.5, 0.875))


def test_a_perfectly_separated_set_keeps_0_5():
    probabilities, masks = _pixels([0.9, 0.9], [0.12, 0.12, 0.12])
    assert best_threshold(probabilities, masks) == (0.5, 1.0)


def test_empty_truth_and_empty_prediction_score_one_and_keep_0_5():
    probabilities, masks = _pixels([], [0.01] * 6)
    assert best_threshold(probabilities, masks) == (0.5, 1.0)


def test_empty_truth_is_perfect_only_above_every_probability():
    probabilities, masks = _pixels([], [0.62, 0.01])  # 0.05-0.60 predict a lesion that is not there: IoU 0
    assert best_threshold(probabilities, masks) == (0.65, 1.0)


def test_masks_of_0_255_count_as_foreground():
    probabilities, masks = _pixels([0.7, 0.7], [0.3, 0.62])
    assert best_threshold(probabilities, masks * 255) == (0.65, 1.0)
