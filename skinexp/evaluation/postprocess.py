"""Post-processing of predicted masks: keep each mask's largest connected component, but only where that
raises mean IoU on the validation split (nnU-Net's rule). Deciding, recording the decision on the training
run, reading it back and applying it all live here."""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from skinexp.evaluation.scores import as_mask, mean_image_iou

TAG = "postprocess.largest_component"  # on the training run: helps | does_not_help
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keeps only the largest 8-connected foreground component of ``mask``.

    ``mask`` is ``(H, W)`` or ``(H, W, 1)``, foreground ``> 0.5``. The result
    has the same shape and dtype: the kept pixels keep their values, the rest
    become 0 (False), sub-threshold values included. An empty mask comes back
    all zeros. On a tie the component met first in row-major order wins.
    """
    foreground = as_mask(mask, "mask")
    labels, count = ndimage.label(foreground, structure=_EIGHT_CONNECTED)
    kept = np.array(mask, copy=True)
    # Label 0 is background, so an empty mask keeps nothing.
    largest_label = 1 + int(np.argmax(np.bincount(labels.ravel())[1:])) if count else -1
    kept[(labels != largest_label).reshape(kept.shape)] = 0
    return kept


def to_masks(probabilities: np.ndarray, threshold: float, keep_largest: bool) -> np.ndarray:
    """Binary masks (N, S, S, 1) uint8 {0, 1}; optionally only the largest connected component of each."""
    masks = (probabilities > threshold).astype(np.uint8)
    if keep_largest:
        masks = np.stack([largest_component(mask) for mask in masks])
    return masks


def mean_iou(probabilities: np.ndarray, masks: np.ndarray, threshold: float, keep_largest: bool) -> float:
    return mean_image_iou(masks, to_masks(probabilities, threshold, keep_largest))


def largest_component_gain(val_probabilities: np.ndarray, val_masks: np.ndarray, threshold: float) -> float:
    """How much keeping the largest component changes mean validation IoU; apply it only when positive."""
    return (mean_iou(val_probabilities, val_masks, threshold, True)
            - mean_iou(val_probabilities, val_masks, threshold, False))


def verdict(helps: bool) -> str:
    return "helps" if helps else "does_not_help"


def recorded_helps(run) -> Optional[bool]:
    """What evaluate recorded on a training run: True, False, or None when it never decided."""
    value = run.data.tags.get(TAG) if run is not None else None
    return None if value is None else value == "helps"
