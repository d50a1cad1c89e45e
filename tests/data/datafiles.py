"""Small dataset files for the data tests: folders of images and masks, and the notebook's .npy files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from skinexp.data.synthetic import make_synthetic


def pixels(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, S, S, 3) uint8, masks (N, S, S) uint8 {0, 1}) with a lesion in every mask."""
    images, masks = make_synthetic(count, size, seed)
    return images, masks[..., 0]


def write_folder(folder: Path, count: int = 4, size: int = 24, *, image_ext: str = ".png", mask_ext: str = ".png",
                 mask_suffix: str = "", stem: str = "img{}", seed: int = 0) -> list[str]:
    """`folder/images/<stem><ext>` and `folder/masks/<stem><suffix><ext>` (masks 0/255); returns the stems."""
    images, masks = pixels(count, size, seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    stems = [stem.format(i) for i in range(count)]
    for name, image, mask in zip(stems, images, masks):
        Image.fromarray(image).save(folder / "images" / f"{name}{image_ext}")
        Image.fromarray(mask * np.uint8(255)).save(folder / "masks" / f"{name}{mask_suffix}{mask_ext}")
    return stems


def write_npy(root: Path, split: str = "train", count: int = 6, size: int = 16, *, image_dtype=np.uint8,
              scale: float = 1.0, mask_value: float = 255, mask_shape: str = "NHW", seed: int = 0):
    """`data_<split>.npy` (images * scale as image_dtype) and `mask_<split>.npy` (masks * mask_value)."""
    images, masks = pixels(count, size, seed)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / f"data_{split}.npy", (images * scale).astype(image_dtype))
    mask_array = masks * mask_value if mask_value is not True else masks.astype(bool)
    np.save(root / f"mask_{split}.npy", mask_array if mask_shape == "NHW" else mask_array[..., None])
    return images, masks


def dataset_cfg(**values):
    """A `dataset` config section as composition would make it (typed, struct)."""
    from omegaconf import OmegaConf

    from skinexp.config.schema import DatasetConfig

    return OmegaConf.structured(DatasetConfig(**{key: str(value) if isinstance(value, Path) else value
                                                 for key, value in values.items()}))


def expect_data_error(load, root, *fragments, **values) -> str:
    """`load(root, **values)` raises one DataError line in Keras style holding every fragment; returns it."""
    import pytest

    from skinexp.errors import DataError

    with pytest.raises(DataError) as caught:
        load(root, **values)
    message = str(caught.value)
    assert "\n" not in message and "Received:" in message
    for fragment in fragments:
        assert fragment in message, message
    return message
