"""Image folders: `images/` and `masks/` paired by name, optionally inside `train/`, `val/`, `test/`.

A mask pairs with an image of the same stem, or of the stem plus `_segmentation` (ISIC) or `_lesion`
(PH2): `a.jpg`/`a.png`, `ISIC_0000000.jpg`/`ISIC_0000000_segmentation.png`, `IMD002.bmp`/`IMD002_lesion.bmp`.
Files of any size are decoded once (in threads), resized to `dataset.image_size` (bilinear images,
nearest masks) and kept as uint8, in memory or, with `dataset.cache=disk`, in `dataset.cache_dir`.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from skinexp.config.schema import CacheKind
from skinexp.console import Progress
from skinexp.data.arrays import binarise
from skinexp.data.cache import cache_key, read_cache, write_cache
from skinexp.data.types import Loaded, Split, existing_root
from skinexp.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MASK_SUFFIXES = ("", "_segmentation", "_lesion")
SPLITS = ("train", "val", "test")
_RAW_MASK_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # kept as numbers; every other mode becomes 8-bit grey


class Pair(NamedTuple):
    id: str
    image: Path
    mask: Path


class Decoded(NamedTuple):
    size: tuple[int, int]  # (width, height) as stored
    foreground: float  # fraction of mask pixels that are 1, at the stored resolution
    other_values: bool  # the mask had values other than 0 and its maximum


def split_folders(root: Path) -> dict[str, Path]:
    """{split: folder holding images/ and masks/}: root's train/ (val/, test/) when it has train/, else root."""
    if (root / "train").is_dir():
        return {split: root / split for split in SPLITS if (root / split).is_dir()}
    if not (root / "images").is_dir() and not (root / "masks").is_dir():
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:8]
        raise DataError(f"{root} must hold images/ and masks/ (or train/, val/, test/ each holding them). "
                        f"Received: {entries or 'an empty directory'}")
    return {"train": root}


def image_files(folder: Path) -> list[Path]:
    """The image files of `folder` (EXTENSIONS, any case), sorted; hidden files are skipped."""
    return [path for path in sorted(folder.iterdir()) if path.is_file() and path.suffix.lower() in EXTENSIONS
            and not path.name.startswith(".")]  # hidden files include macOS' ._name.jpg resource forks


def _image_files(folder: Path, problems: list[str]) -> dict[str, Path]:
    """{stem: path} of the image files in `folder`; DataError when it is missing or holds none."""
    if not folder.is_dir():
        raise DataError(f"{folder} must be a directory of images. Received: "
                        f"{'a file' if folder.exists() else 'nothing'} there")
    files: dict[str, Path] = {}
    for path in image_files(folder):
        if path.stem in files:
            problems.append(f"{path} and {files[path.stem].name} have the same name. "
                            f"Received: two files named {path.stem} in {folder}")
            continue
        files[path.stem] = path
    if not files:
        raise DataError(f"{folder} must hold images ({', '.join(e[1:] for e in EXTENSIONS)}). "
                        f"Received: {sum(1 for _ in folder.iterdir())} entries, none of them such images")
    return files


def find_pairs(folder: Path, problems: list[str], warnings: list[str]) -> list[Pair]:
    """The (image, mask) pairs of `folder`/images and `folder`/masks; unpaired images go to `problems`."""
    images = _image_files(folder / "images", problems)
    masks = _image_files(folder / "masks", problems)
    pairs, used = [], set()
    for stem, image in images.items():
        mask_stem = next((stem + suffix for suffix in MASK_SUFFIXES if stem + suffix in masks), None)
        if mask_stem is None:
            problems.append(f"{image} has no mask. Received: none of {stem}, {stem}_segmentation, {stem}_lesion "
                            f"among the {len(masks)} masks in {folder / 'masks'}")
            continue
        used.add(mask_stem)
        pairs.append(Pair(stem, image, masks[mask_stem]))
    orphans = sorted(set(masks) - used)
    if orphans:
        warnings.append(f"{len(orphans)} masks in {folder / 'masks'} have no image and were ignored "
                        f"(first: {masks[orphans[0]].name})")
    return pairs


def _open(path: Path, what: str, draft_size: int = 0) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded file and its stored (width, height); DataError naming the file when it cannot be decoded."""
    try:
        image = Image.open(path)
        stored = image.size
        if draft_size and image.format == "JPEG":  # the decoder downscales by a power of two: much cheaper
            image.draft("RGB", (draft_size, draft_size))
        image.load()
        return image, stored
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        raise DataError(f"{path} could not be decoded as {what}. Received: {type(error).__name__}: {error}") \
            from None


def to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded image as (H, W, 3) uint8 as it is meant to be seen: its EXIF orientation applied, 16-bit grayscale
    scaled to 0..255 (not clipped to white), palette, CMYK, alpha and 1-bit converted; ValueError for 32-bit pixels.
    The served segmenter (`skinexp.tracking.segmenter.to_rgb`) takes the same steps, so both give the same mask."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):
        gray = np.rint(np.asarray(image).astype(np.float32) / 257.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("I", "F"):
        raise ValueError(f"{image.mode} pixels (32-bit) have no agreed 0..255 scale")
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)


def read_rgb(path: Path) -> np.ndarray:
    """One image file as (H, W, 3) uint8 (`to_rgb`: upright, 16-bit scaled); DataError naming the file when it
    cannot be decoded."""
    image, _ = _open(path, "an image")
    try:
        return to_rgb(image)
    except ValueError as error:
        raise DataError(f"{path} could not be decoded as an image. Received: {error}") from None


def decode_pair(pair: Pair, size: int, image_out: np.ndarray, mask_out: np.ndarray) -> Decoded:
    """Decode one pair into `image_out` `(size, size, 3)` uint8 and `mask_out` `(size, size, 1)` uint8 {0, 1}."""
    image, stored = _open(pair.image, "an image", draft_size=size)
    mask_image, mask_stored = _open(pair.mask, "a mask")
    if stored != mask_stored:
        raise DataError(f"{pair.image} and its mask {pair.mask.name} must have the same size. "
                        f"Received: image {stored[0]}x{stored[1]}, mask {mask_stored[0]}x{mask_stored[1]}")
    image_out[...] = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))
    mask = np.asarray(mask_image if mask_image.mode in _RAW_MASK_MODES else mask_image.convert("L"))
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise DataError(f"{pair.mask} must hold finite values. Received: NaN or inf pixels")
    binary, other_values = binarise(mask[None], max(float(mask.max()), 0.0))
    mask_out[..., 0] = np.asarray(Image.fromarray(binary[0]).resize((size, size), Image.NEAREST))
    return Decoded(stored, float(binary.mean()), bool(other_values[0]))


def _decode_split(pairs: list[Pair], size: int, pool: ThreadPoolExecutor, problems: list[str], progress: Progress):
    """(Split, foreground, sizes, masks with other values) of the pairs that decode; failures go to `problems`."""
    images = np.empty((len(pairs), size, size, 3), np.uint8)
    masks = np.empty((len(pairs), size, size, 1), np.uint8)

    def decode(index: int):
        try:
            return decode_pair(pairs[index], size, images[index], masks[index])
        except DataError as error:
            return str(error)
        finally:
            progress.advance()

    results = list(pool.map(decode, range(len(pairs))))
    problems += [result for result in results if isinstance(result, str)]
    good = [i for i, result in enumerate(results) if not isinstance(result, str)]
    if len(good) < len(pairs):
        images, masks = images[good], masks[good]
    decoded = [results[i] for i in good]
    split = Split(images, masks, [pairs[i].id for i in good])
    foreground = np.array([d.foreground for d in decoded], np.float64)
    return split, foreground, [d.size for d in decoded], sum(d.other_values for d in decoded)


def _raise_first(problems: list[str], root: Path) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more: `python -m skinexp data check dataset=folder " \
               f"dataset.root={root}` lists them)" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)


def load_folder(dataset_cfg, *, strict: bool = True) -> Loaded:
    """Decode every pair of every split folder.

    strict: raise DataError at the first problem (training); else skip the bad files and list them in
        `Loaded.problems` (`data check`), which also bypasses the disk cache.
    """
    root = existing_root(dataset_cfg.root, getattr(dataset_cfg, "root_from", None))
    size = dataset_cfg.image_size
    problems, warnings = [], []
    folders = split_folders(root)
    pairs = {split: find_pairs(folder, problems, warnings) for split, folder in folders.items()}
    if strict:
        _raise_first(problems, root)
    use_cache = strict and dataset_cfg.cache == CacheKind.disk
    cache_path = Path(dataset_cfg.cache_dir) / f"folder-{cache_key(root, pairs, size)}" if use_cache else None
    if cache_path is not None and cache_path.is_dir():
        return read_cache(cache_path)

    loaded = Loaded(splits={}, foreground={}, warnings=warnings, problems=problems)
    progress = Progress(sum(len(split_pairs) for split_pairs in pairs.values()), "decoding images")
    with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:  # PIL releases the GIL
        for split, split_pairs in pairs.items():
            loaded.splits[split], loaded.foreground[split], sizes, other_values = \
                _decode_split(split_pairs, size, pool, problems, progress)
            loaded.sizes += sizes
            if other_values:
                warnings.append(f"{other_values} of the {len(split_pairs)} masks in {folders[split] / 'masks'} "
                                "had values other than 0 and their maximum; binarised at half the maximum")
    progress.close()
    if strict:
        _raise_first(problems, root)
    if cache_path is not None:
        try:
            write_cache(cache_path, loaded)
        except OSError as error:
            warnings.append(f"the decoded images were not cached in {cache_path}: {error}")
    return loaded
