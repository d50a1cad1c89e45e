"""The notebook's (BCDU-Net) files: `data_train.npy` + `mask_train.npy`, optional `_val` and `_test` pairs.

Images `(N, H, W, 3)` uint8 or float, 0..255 or 0..1; masks `(N, H, W)` or `(N, H, W, 1)`, any numeric
dtype. Files are memory-mapped and converted in chunks; uint8 images at `dataset.image_size` are not
copied at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from skinexp.data.arrays import images_to_uint8, masks_to_binary
from skinexp.data.types import Loaded, Split, existing_root
from skinexp.errors import DataError

SPLITS = ("train", "val", "test")


def file_names(split: str) -> tuple[str, str]:
    return f"data_{split}.npy", f"mask_{split}.npy"


def open_array(path: Path) -> np.ndarray:
    """The array in `path`, memory-mapped; DataError when the file is not a plain .npy array."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npy array. Received: {error}") from None


def _check_shapes(images: np.ndarray, masks: np.ndarray, images_path: Path, masks_path: Path) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype.kind not in "uif":
        raise DataError(f"{images_path} must hold images (N, H, W, 3) of a real number type. "
                        f"Received: shape {images.shape}, dtype {images.dtype}")
    mask_rank_ok = masks.ndim == 3 or (masks.ndim == 4 and masks.shape[-1] == 1)
    if not mask_rank_ok or masks.dtype.kind not in "buif":
        raise DataError(f"{masks_path} must hold masks (N, H, W) or (N, H, W, 1) of a real number type. "
                        f"Received: shape {masks.shape}, dtype {masks.dtype}")
    if len(images) != len(masks):
        raise DataError(f"{images_path.name} and {masks_path.name} must hold as many images as masks. "
                        f"Received: {len(images)} images, {len(masks)} masks")
    if len(images) == 0:
        raise DataError(f"{images_path} must hold at least one image. Received: shape {images.shape}")
    if images.shape[1:3] != masks.shape[1:3]:
        raise DataError(f"{images_path.name} and {masks_path.name} must hold images and masks of the same size. "
                        f"Received: images {images.shape[1]}x{images.shape[2]}, "
                        f"masks {masks.shape[1]}x{masks.shape[2]}")


def load_npy(dataset_cfg) -> Loaded:
    """Every split the files hold, as uint8 (memory-mapped where nothing needs converting)."""
    root = existing_root(dataset_cfg.root, getattr(dataset_cfg, "root_from", None))
    size = dataset_cfg.image_size
    loaded = Loaded(splits={}, foreground={})
    for split in SPLITS:
        images_path, masks_path = (root / name for name in file_names(split))
        if not images_path.exists() and not masks_path.exists():
            if split == "train":
                found = sorted(p.name for p in root.glob("*.npy"))[:6]
                raise DataError(f"dataset=npy needs data_train.npy and mask_train.npy in {root}. "
                                f"Received: .npy files {found or 'none'}")
            continue
        for missing, present in ((images_path, masks_path), (masks_path, images_path)):
            if not missing.exists():
                raise DataError(f"{missing} is missing beside {present.name}. Received: only {present.name}")
        images, masks = open_array(images_path), open_array(masks_path)
        _check_shapes(images, masks, images_path, masks_path)
        loaded.sizes += [(images.shape[2], images.shape[1])] * len(images)
        images = images_to_uint8(images, size, str(images_path))
        masks, foreground, other_values = masks_to_binary(masks, size, str(masks_path))
        loaded.splits[split] = Split(images, masks, [f"{split}_{i:05d}" for i in range(len(images))])
        loaded.foreground[split] = foreground
        if other_values:
            loaded.warnings.append(f"{other_values} of the {len(masks)} masks in {masks_path} had values other "
                                   "than 0 and the array's maximum; binarised at half the maximum")
    return loaded
