"""Sources: synthetic (generated), npy (the notebook's files), folder (images/ + masks/).

`load_source` returns what a source holds (`Loaded`); `load` adds the set-wide checks and the seeded
train / val (/ test) holdout for the splits the source does not store.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from skinexp.config.schema import DatasetName
from skinexp.data.types import DataSplits, Loaded, Split
from skinexp.errors import DataError


def split_indices(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded partition of range(count) into (kept, held_out) with round(count * fraction) held out (at least 1)."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(1, round(count * fraction)), count - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def fold_of(count: int, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each of `count` images: a seeded shuffle dealt round-robin, so fold sizes differ
    by at most one. It depends on nothing but (count, folds, seed): every config and launcher gets the same folds."""
    order = np.random.default_rng(seed).permutation(count)
    assignment = np.empty(count, np.int64)
    assignment[order] = np.arange(count) % folds
    return assignment


def _concat(parts: list[Split]) -> Split:
    if len(parts) == 1:
        return parts[0]
    return Split(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                 [i for p in parts for i in p.ids])


def _subset(split: Split, index: np.ndarray) -> Split:
    return Split(split.images[index], split.masks[index], [split.ids[i] for i in index])


def assemble(train: Split, dataset_cfg, val: Optional[Split] = None, test: Optional[Split] = None) -> DataSplits:
    """The source's own splits, with test (`dataset.test_split`, seed + 1) and then val (`dataset.val_split`,
    seed) held out of train when the source has none. With `dataset.folds=K` the images outside test are dealt
    into K folds (`fold_of`) and fold `dataset.fold` is the validation split."""
    if len(train) < 2 and (val is None or (test is None and dataset_cfg.test_split > 0)):
        raise DataError("holding out validation (or test) images needs at least 2 training images. "
                        f"Received: {len(train)} in dataset={dataset_cfg.name}")
    if test is None and dataset_cfg.test_split > 0:
        keep, test_index = split_indices(len(train), dataset_cfg.test_split, dataset_cfg.seed + 1)
        test, train = _subset(train, test_index), _subset(train, keep)
    folds = getattr(dataset_cfg, "folds", 0) or 0
    if folds >= 2:  # cross-validation: every image outside test in a fold; fold `dataset.fold` validates
        pool = _concat([train] + ([val] if val is not None else []))
        if folds > len(pool):
            raise DataError(f"dataset.folds must not exceed the {len(pool)} images outside the test split. "
                            f"Received: dataset.folds={folds}")
        assignment = fold_of(len(pool), folds, dataset_cfg.seed)
        fold = dataset_cfg.fold or 0
        return DataSplits(train=_subset(pool, np.flatnonzero(assignment != fold)),
                          val=_subset(pool, np.flatnonzero(assignment == fold)), test=test)
    if val is None:
        train_index, val_index = split_indices(len(train), dataset_cfg.val_split, dataset_cfg.seed)
        train, val = _subset(train, train_index), _subset(train, val_index)
    return DataSplits(train=train, val=val, test=test)


def load_synthetic(dataset_cfg) -> Loaded:
    from skinexp.data.synthetic import make_synthetic

    images, masks = make_synthetic(dataset_cfg.num_samples, dataset_cfg.image_size, dataset_cfg.seed)
    ids = [f"synthetic_{i:05d}" for i in range(len(images))]
    foreground = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
    return Loaded(splits={"train": Split(images, masks, ids)}, foreground={"train": foreground},
                  sizes=[(images.shape[2], images.shape[1])] * len(images))


def _load_npy(dataset_cfg, strict: bool) -> Loaded:
    from skinexp.data.npy import load_npy

    return load_npy(dataset_cfg)


def _load_folder(dataset_cfg, strict: bool) -> Loaded:
    from skinexp.data.folder import load_folder

    return load_folder(dataset_cfg, strict=strict)


LOADERS = {
    DatasetName.synthetic: lambda dataset_cfg, strict: load_synthetic(dataset_cfg),
    DatasetName.npy: _load_npy,
    DatasetName.folder: _load_folder,
}


def load_source(dataset_cfg, *, strict: bool = True) -> Loaded:
    """What the configured source holds. strict=False (folders only) skips bad files and lists them."""
    loader = LOADERS.get(dataset_cfg.name)
    if loader is None:
        raise DataError(f"dataset.name must be one of {DatasetName.names()}. Received: dataset.name={dataset_cfg.name}")
    return loader(dataset_cfg, strict)


def require_foreground(loaded: Loaded, dataset_cfg) -> None:
    """DataError when every mask of the set is empty: nothing to learn, and every IoU would be 0 or undefined."""
    count = sum(len(values) for values in loaded.foreground.values())
    if count and not any(values.any() for values in loaded.foreground.values()):
        raise DataError(f"the masks of dataset.root={dataset_cfg.root} must mark a lesion somewhere. "
                        f"Received: all {count} masks are empty (all zero)")


def load_splits(dataset_cfg) -> DataSplits:
    """Load the configured source and split it into train / val (/ test) by `dataset.val_split` and seed.

    Raises:
        DataError: one line naming the file (or key), what was found and what was expected.
    """
    loaded = load_source(dataset_cfg)
    require_foreground(loaded, dataset_cfg)
    splits = loaded.splits
    data = assemble(splits["train"], dataset_cfg, val=splits.get("val"), test=splits.get("test"))
    data.warnings = list(loaded.warnings)
    return data
