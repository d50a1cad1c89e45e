"""The kept checkpoint's validation images, scored once training ends: which epoch was kept, and the per-image
tables and masks every run logs (what `compare` ranks and pictures)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from skinexp import tracking
from skinexp.evaluation.scores import DECLARED_THRESHOLD

VAL_COLUMNS = ("id", "iou", "dice", "precision", "sensitivity", "specificity", "hd95")


def kept_epoch(monitored: list[float], best: Optional[float]) -> int:
    """The 1-based epoch whose checkpoint ModelCheckpoint kept: the first epoch that reached its `best` value of
    the monitored metric; 0 when no epoch did (nothing was kept)."""
    if best is None:
        return 0
    matches = [epoch for epoch, value in enumerate(monitored, 1) if value == best]
    return matches[0] if matches else 0


def log_validation_images(val, probabilities: np.ndarray, tuned: float) -> dict[str, float]:
    """The kept checkpoint's validation images, scored as evaluate scores them: `val_per_image.csv` and
    `data/val_masks.npz` at DECLARED_THRESHOLD, `val_per_image_tuned.csv` and `data/val_masks_tuned.npz` at the
    run's tuned threshold (masks bit-packed, for the images of comparisons). Returns the mean of each score at
    DECLARED_THRESHOLD."""
    import io

    from skinexp.evaluation.postprocess import to_masks
    from skinexp.evaluation.scores import image_scores, per_image_table

    means = {}
    for threshold, suffix in ((DECLARED_THRESHOLD, ""), (tuned, "_tuned")):
        masks = to_masks(probabilities, threshold, keep_largest=False)
        per_image = [image_scores(truth, predicted) for truth, predicted in zip(val.masks, masks)]
        tracking.log_text(per_image_table(val.ids, per_image, VAL_COLUMNS), f"val_per_image{suffix}.csv")
        packed = io.BytesIO()
        np.savez_compressed(packed, ids=np.array(val.ids), shape=np.array(masks.shape), masks=np.packbits(masks),
                            threshold=np.array(threshold))
        tracking.log_bytes(packed.getvalue(), f"data/val_masks{suffix}.npz")
        if not suffix:
            means = {name: float(np.mean([scores[name] for scores in per_image])) for name in VAL_COLUMNS[1:]}
    return means
