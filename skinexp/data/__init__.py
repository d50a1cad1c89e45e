"""Data sources and the tf.data pipeline.

Every source yields the same contract: images `(N, H, W, 3)` uint8 0..255 and masks `(N, H, W, 1)`
uint8 in {0, 1}, H = W = `dataset.image_size`, with one string id per image.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
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
class Loaded:
    """What a source holds before the holdout: its own splits and what `data check` reports about them.

    `splits` always has "train", and "val" / "test" when the source stores them; `foreground` is the
    fraction of mask pixels that are 1, per image of each split (at the stored resolution for folders);
    `sizes` is the (width, height) of every image as stored; `problems` lists the files a lenient
    load (`data check`) skipped.
    """

    splits: dict[str, Split]
    foreground: dict[str, np.ndarray]
    sizes: list[tuple[int, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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


def existing_root(root) -> Path:
    """`dataset.root` as a Path; DataError when it is not a directory."""
    path = Path(root)
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        raise DataError(f"dataset.root must be a directory. Received: dataset.root={root} ({found} there)")
    return path


def split_indices(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded partition of range(count) into (kept, held_out) with round(count * fraction) held out (at least 1)."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(1, round(count * fraction)), count - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def load_splits(dataset_cfg) -> DataSplits:
    """Load the configured source and split it into train / val (/ test) by `dataset.val_split` and seed.

    Raises:
        DataError: one line naming the file (or key), what was found and what was expected.
    """
    from skinexp.data import sources

    return sources.load(dataset_cfg)
