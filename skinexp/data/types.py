"""The data contract every source yields: images `(N, S, S, 3)` uint8 0..255, masks `(N, S, S, 1)` uint8
{0, 1}, S = `dataset.image_size`, one string id per image."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.errors import DataError


@dataclass
class Split:
    """One split: images (N, H, W, 3) uint8, masks (N, H, W, 1) uint8 {0, 1}, ids (N strings)."""

    images: np.ndarray
    masks: np.ndarray
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def first(self, count: int) -> Split:
        """The first `count` images, masks and ids (views: a memory-mapped source stays on disk)."""
        return Split(self.images[:count], self.masks[:count], self.ids[:count])


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


def existing_root(root, root_from: Optional[str] = None) -> Path:
    """`dataset.root` as a Path; DataError when it is not a directory (naming `root_from`, the environment
    variable that sets it, when a preset reads it from one)."""
    path = Path(root)
    if not path.is_dir():
        found = "a file" if path.exists() else "nothing"
        how = f" (set {root_from} to the folder that holds images/ and masks/)" if root_from else ""
        raise DataError(f"dataset.root must be a directory{how}. Received: dataset.root={root} ({found} there)")
    return path
