"""The disk cache of decoded folder datasets (`dataset.cache=disk`).

One directory per content key under `dataset.cache_dir`: `<split>_images.npy` `(N, S, S, 3)` uint8,
`<split>_masks.npy` `(N, S, S, 1)` uint8 {0, 1} and `meta.json` (ids, foreground fractions, stored
sizes, warnings). The key hashes the file names and contents and the image size, so editing, adding
or removing a file, or another `dataset.image_size`, decodes again, while copying or touching the
files does not. Arrays are read back memory-mapped.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from skinexp.data.types import Loaded, Split

VERSION = 2  # bump when what is stored or how it is keyed changes


def cache_key(root: Path, pairs: dict, size: int) -> str:
    """16 hex digits over (split, file name, file bytes) of every image and mask, and `size`.

    Hashing the bytes costs about 0.1 s for the 27 MB of the 564 real images, a small part of decoding them.
    """
    digest = hashlib.blake2b(f"skinexp folder cache v{VERSION} image_size={size}\n".encode(), digest_size=8)
    for split, split_pairs in pairs.items():
        for pair in split_pairs:
            for path in (pair.image, pair.mask):
                digest.update(f"{split}\0{path.relative_to(root)}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def read_cache(directory: Path) -> Loaded:
    meta = json.loads((directory / "meta.json").read_text())
    loaded = Loaded(splits={}, foreground={}, sizes=[tuple(size) for size in meta["sizes"]],
                    warnings=meta["warnings"])
    for split, ids in meta["ids"].items():
        images = np.load(directory / f"{split}_images.npy", mmap_mode="r")
        masks = np.load(directory / f"{split}_masks.npy", mmap_mode="r")
        loaded.splits[split] = Split(images, masks, ids)
        loaded.foreground[split] = np.asarray(meta["foreground"][split], np.float64)
    return loaded


def write_cache(directory: Path, loaded: Loaded) -> None:
    """Write into a temporary directory, then rename: a reader never sees half a cache entry."""
    temporary = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    temporary.mkdir(parents=True, exist_ok=True)
    for split, data in loaded.splits.items():
        np.save(temporary / f"{split}_images.npy", data.images)
        np.save(temporary / f"{split}_masks.npy", data.masks)
    meta = {"ids": {split: data.ids for split, data in loaded.splits.items()},
            "foreground": {split: values.tolist() for split, values in loaded.foreground.items()},
            "sizes": loaded.sizes, "warnings": loaded.warnings}
    (temporary / "meta.json").write_text(json.dumps(meta))
    try:
        os.replace(temporary, directory)
    except OSError:  # another process wrote the same entry first
        shutil.rmtree(temporary, ignore_errors=True)
