"""Data sources and the tf.data pipeline.

Every source yields the same contract: images `(N, H, W, 3)` uint8 0..255 and masks `(N, H, W, 1)`
uint8 in {0, 1}, H = W = `dataset.image_size`, with one string id per image.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


class DataError(ValueError):
    """Bad input data; the CLI prints it as one line naming the file and exits with status 2."""


@dataclass
class Split:
    """One split: images (N, H, W, 3) uint8, masks (N, H, W, 1) uint8 {0, 1}, ids (N strings)."""

    images: np.ndarray
    masks: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class DataSplits:
    train: Split
    val: Split
    test: Optional[Split] = None
    warnings: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """sha256 (first 16 hex digits) over ids and pixels of every split: equal data, equal fingerprint."""
        digest = hashlib.sha256()
        for name in ("train", "val", "test"):
            split = getattr(self, name)
            if split is None:
                continue
            digest.update(name.encode())
            digest.update("\n".join(split.ids).encode())
            for array in (split.images, split.masks):
                digest.update(str(array.shape).encode())
                for start in range(0, len(array), 256):  # bounded memory for memory-mapped sources
                    digest.update(np.ascontiguousarray(array[start:start + 256]).tobytes())
        return digest.hexdigest()[:16]


def split_indices(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded partition of range(count) into (kept, held_out) with round(count * fraction) held out (at least 1)."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(1, round(count * fraction)), count - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def load_splits(dataset_cfg) -> DataSplits:
    """Load the configured source and split it into train / val (/ test) by `dataset.val_split` and seed."""
    from skinexp.data import sources

    return sources.load(dataset_cfg)
