"""Sources: synthetic (generated), npy (the notebook's files), folder (images/ + masks/).

`load_source` returns what a source holds (`Loaded`); `load` adds the set-wide checks and the seeded
train / val (/ test) holdout for the splits the source does not store.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from skinexp.data import DataError, DataSplits, Loaded, Split, split_indices


def _subset(split: Split, index: np.ndarray) -> Split:
    return Split(split.images[index], split.masks[index], [split.ids[i] for i in index])


def assemble(train: Split, dataset_cfg, val: Optional[Split] = None, test: Optional[Split] = None) -> DataSplits:
    """The source's own splits, with test (`dataset.test_split`, seed + 1) and then val (`dataset.val_split`,
    seed) held out of train when the source has none."""
    if len(train) < 2 and (val is None or (test is None and dataset_cfg.test_split > 0)):
        raise DataError("holding out validation (or test) images needs at least 2 training images. "
                        f"Received: {len(train)} in dataset={dataset_cfg.name}")
    if test is None and dataset_cfg.test_split > 0:
        keep, test_index = split_indices(len(train), dataset_cfg.test_split, dataset_cfg.seed + 1)
        test, train = _subset(train, test_index), _subset(train, keep)
    if val is None:
        train_index, val_index = split_indices(len(train), dataset_cfg.val_split, dataset_cfg.seed)
        train, val = _subset(train, train_index), _subset(train, val_index)
    return DataSplits(train=train, val=val, test=test)


def holdout(whole: Split, dataset_cfg) -> DataSplits:
    """Seeded train/val(/test) partition of one pool of images."""
    return assemble(whole, dataset_cfg)


def load_synthetic(dataset_cfg) -> Loaded:
    from skinexp.data.synthetic import make_synthetic

    images, masks = make_synthetic(dataset_cfg.num_samples, dataset_cfg.image_size, dataset_cfg.seed)
    ids = [f"synthetic_{i:05d}" for i in range(len(images))]
    foreground = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
    return Loaded(splits={"train": Split(images, masks, ids)}, foreground={"train": foreground},
                  sizes=[(images.shape[2], images.shape[1])] * len(images))


def load_source(dataset_cfg, *, strict: bool = True) -> Loaded:
    """What the configured source holds. strict=False (folders only) skips bad files and lists them."""
    if dataset_cfg.name == "npy":
        from skinexp.data.npy import load_npy

        return load_npy(dataset_cfg)
    if dataset_cfg.name == "folder":
        from skinexp.data.folder import load_folder

        return load_folder(dataset_cfg, strict=strict)
    return load_synthetic(dataset_cfg)


def require_foreground(loaded: Loaded, dataset_cfg) -> None:
    """DataError when every mask of the set is empty: nothing to learn, and every IoU would be 0 or undefined."""
    count = sum(len(values) for values in loaded.foreground.values())
    if count and not any(values.any() for values in loaded.foreground.values()):
        raise DataError(f"the masks of dataset.root={dataset_cfg.root} must mark a lesion somewhere. "
                        f"Received: all {count} masks are empty (all zero)")


def load(dataset_cfg) -> DataSplits:
    loaded = load_source(dataset_cfg)
    require_foreground(loaded, dataset_cfg)
    splits = loaded.splits
    data = assemble(splits["train"], dataset_cfg, val=splits.get("val"), test=splits.get("test"))
    data.warnings = list(loaded.warnings)
    return data
