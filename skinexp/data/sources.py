"""Sources: synthetic (generated), npy (the notebook's files), folder (images/ + masks/)."""
from __future__ import annotations

import numpy as np

from skinexp.data import DataSplits, Split, split_indices


def _subset(split: Split, index: np.ndarray) -> Split:
    return Split(split.images[index], split.masks[index], [split.ids[i] for i in index])


def holdout(whole: Split, dataset_cfg) -> DataSplits:
    """Seeded train/val(/test) partition of one pool of images."""
    test = None
    if dataset_cfg.test_split > 0:
        keep, test_index = split_indices(len(whole), dataset_cfg.test_split, dataset_cfg.seed + 1)
        test, whole = _subset(whole, test_index), _subset(whole, keep)
    train_index, val_index = split_indices(len(whole), dataset_cfg.val_split, dataset_cfg.seed)
    return DataSplits(train=_subset(whole, train_index), val=_subset(whole, val_index), test=test)


def load_synthetic(dataset_cfg) -> DataSplits:
    from skinexp.data.synthetic import make_synthetic

    images, masks = make_synthetic(dataset_cfg.num_samples, dataset_cfg.image_size, dataset_cfg.seed)
    ids = [f"synthetic_{i:05d}" for i in range(len(images))]
    return holdout(Split(images, masks, ids), dataset_cfg)


def load(dataset_cfg) -> DataSplits:
    if dataset_cfg.name == "synthetic":
        return load_synthetic(dataset_cfg)
    raise NotImplementedError(dataset_cfg.name)
