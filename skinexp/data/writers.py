"""Writing datasets: the notebook's `.npy` files and image folders (`data convert`, `data synth`)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from skinexp.data.types import Split
from skinexp.outputs import refuse_existing, written_in_place

NOTEBOOK_SPLITS = ("train", "val", "test")


def write_npy(splits: dict[str, Split], output: Path, overwrite: bool) -> list[Path]:
    """The notebook's files: `data_<split>.npy` `(N, S, S, 3)` uint8 and `mask_<split>.npy` `(N, S, S)` uint8
    0/255 (what notebooks that divide by 255 or by the maximum both read), written in chunks."""
    every_name = [output / f"{kind}_{split}.npy" for split in NOTEBOOK_SPLITS for kind in ("data", "mask")]
    refuse_existing(every_name, output, overwrite)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for split, data in splits.items():
        images_path, masks_path = output / f"data_{split}.npy", output / f"mask_{split}.npy"
        with written_in_place(images_path) as images_partial, written_in_place(masks_path) as masks_partial:
            images = np.lib.format.open_memmap(images_partial, mode="w+", dtype=np.uint8, shape=data.images.shape)
            masks = np.lib.format.open_memmap(masks_partial, mode="w+", dtype=np.uint8, shape=data.masks.shape[:3])
            for start in range(0, len(data), 256):
                part = slice(start, start + 256)
                images[part] = data.images[part]
                masks[part] = np.asarray(data.masks[part])[..., 0] * np.uint8(255)
            images.flush()
            masks.flush()
            del images, masks
        written += [images_path, masks_path]
    for stale in set(every_name) - set(written):  # a split this set lacks must not linger from an older one
        stale.unlink(missing_ok=True)
    return written


def write_folder(data: Split, output: Path, overwrite: bool) -> None:
    """`images/<id>.png` RGB and `masks/<id>.png` 8-bit 0/255; with overwrite, older `synthetic_*` files go."""
    from PIL import Image

    targets = [output / kind / f"{name}.png" for name in data.ids for kind in ("images", "masks")]
    refuse_existing(sorted(path for kind in ("images", "masks") if (output / kind).is_dir()
                           for path in (output / kind).iterdir()), output, overwrite)
    for kind in ("images", "masks"):
        (output / kind).mkdir(parents=True, exist_ok=True)
        for stale in set((output / kind).glob("synthetic_*.png")) - set(targets):
            stale.unlink()

    def save(index: int) -> None:
        name = data.ids[index]
        with written_in_place(output / "images" / f"{name}.png") as partial:
            Image.fromarray(np.asarray(data.images[index])).save(partial, format="PNG")
        with written_in_place(output / "masks" / f"{name}.png") as partial:
            Image.fromarray(np.asarray(data.masks[index])[..., 0] * np.uint8(255)).save(partial, format="PNG")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(save, range(len(data))))
