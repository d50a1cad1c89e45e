"""scores.best_threshold: the grid threshold that maximises dataset-level IoU, on hand-checked pixel sets.

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


def test_ties_go_to_the_lowest_threshold():
    # 0.05-0.10: 4 of 8 predicted right (0.5); 0.15-0.20: fp 0.47, 0.22 (4/6); 0.25-0.40: fp 0.47 only (4/5);
    # 0.45: the 0.42 truth pixel lost (3/5); 0.50-0.85: 3/4; 0.90-0.95: nothing (0)
    probabilities, masks = _pixels([0.88, 0.88, 0.88, 0.42], [0.12, 0.12, 0.47, 0.22])
    threshold, iou = best_threshold(probabilities, masks)
    assert threshold == 0.25
    assert iou == pytest.approx(0.8)


def test_the_iou_is_pooled_over_images_not_averaged_per_image():
    # image 1 all truth, image 2 all background: a per-image mean would pick 0.50 (mean of 3/4 and 1 = 0.875)
    probabilities, masks = _pixels([0.88, 0.88, 0.88, 0.42], [0.12, 0.12, 0.47, 0.22])
    assert best_threshold(probabilities.reshape(2, 2, 2, 1), masks.reshape(2, 2, 2, 1)) == pytest.approx((0.25, 0.8))


def test_a_perfectly_separated_set_scores_one_at_the_lowest_separating_threshold():
    probabilities, masks = _pixels([0.9, 0.9], [0.12, 0.12, 0.12])
    assert best_threshold(probabilities, masks) == (0.15, 1.0)


def test_empty_truth_and_empty_prediction_score_one_at_the_lowest_threshold():
    probabilities, masks = _pixels([], [0.01] * 6)
    assert best_threshold(probabilities, masks) == (0.05, 1.0)


def test_empty_truth_is_perfect_only_above_every_probability():
    probabilities, masks = _pixels([], [0.32, 0.01])  # 0.05-0.30 predict a lesion that is not there: IoU 0
    assert best_threshold(probabilities, masks) == (0.35, 1.0)


def test_masks_of_0_255_count_as_foreground():
    probabilities, masks = _pixels([0.7, 0.7], [0.3, 0.62])
    assert best_threshold(probabilities, masks * 255) == (0.65, 1.0)
