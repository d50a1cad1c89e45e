"""Prediction: mask PNGs (0/255, at each input's original size) and the notebook's predict.npy."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skinexp.config import ConfigError
from skinexp.data import DataError
from skinexp.evaluate import refuse_overwrite
from skinexp.inference import load_trained, predict_probabilities, to_masks

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
CHUNK = 32


@dataclass
class PredictionResult:
    count: int
    output_dir: Path


def _inputs(input_path: Path) -> tuple[list[str], list]:
    """(output stems, sources): image files of a folder, or the rows of an (N, H, W, 3) .npy file."""
    if input_path.is_dir():
        files = sorted(p for p in input_path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"input must hold .jpg, .png or .bmp images. Received: input={input_path} (none found)")
        return [p.stem for p in files], files
    if input_path.suffix == ".npy" and input_path.is_file():
        try:
            array = np.load(input_path, mmap_mode="r")
        except (ValueError, OSError) as error:
            raise DataError(f"{input_path} could not be read as a .npy array. Received: {error}") from None
        if array.ndim != 4 or array.shape[-1] != 3:
            raise DataError(f"{input_path} must hold images (N, H, W, 3). Received: shape {array.shape}")
        return [f"{i:05d}" for i in range(len(array))], [array[i] for i in range(len(array))]
    raise ConfigError(f"input must be a folder of images or a .npy file. Received: input={input_path}")


def _decode(source) -> np.ndarray:
    """One (H, W, 3) uint8 image from a file or an array row (0..255, or 0..1 floats)."""
    if isinstance(source, Path):
        try:
            with Image.open(source) as image:
                return np.asarray(image.convert("RGB"))
        except Exception as error:  # PIL raises several types for broken files
            raise DataError(f"{source} could not be decoded as an image. Received: {type(error).__name__}: "
                            f"{error}") from None
    row = np.asarray(source)
    if row.dtype != np.uint8:
        row = np.clip(np.rint(row * (255.0 if row.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    return row


def predict(cfg, *, output_dir: Path, base_dir: Path) -> PredictionResult:
    """Predict a mask for every input image; never overwrites unless `overwrite=true`."""
    input_path = Path(cfg.input).expanduser()
    if not input_path.is_absolute():
        input_path = base_dir / input_path
    stems, sources = _inputs(input_path)
    if len(set(stems)) != len(stems):
        raise DataError(f"input images must have distinct names. Received: two files with stem "
                        f"{next(s for s in stems if stems.count(s) > 1)} in {input_path}")
    refuse_overwrite(output_dir, [f"{stem}.png" for stem in stems] + ["predict.npy"], cfg.overwrite)
    trained = load_trained(cfg.run, cfg.tracking, base_dir)
    threshold = cfg.threshold if cfg.threshold is not None else trained.threshold
    keep_largest = cfg.postprocess == "largest_component"
    if keep_largest and trained.run is not None and \
            trained.run.data.tags.get("postprocess.largest_component") == "does_not_help":
        print("skinexp: warning: evaluate found largest_component does not help this run on validation; "
              "not applied", file=sys.stderr)
        keep_largest = False

    size = trained.image_size
    output_dir.mkdir(parents=True, exist_ok=True)
    probabilities = np.lib.format.open_memmap(output_dir / "predict.npy", mode="w+", dtype=np.float32,
                                              shape=(len(stems), size, size, 1))
    for start in range(0, len(stems), CHUNK):
        originals = [_decode(source) for source in sources[start:start + CHUNK]]
        resized = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
                            for image in originals])
        batch = predict_probabilities(trained.model, resized, cfg.batch_size, cfg.tta)
        probabilities[start:start + len(batch)] = batch
        for stem, original, probability in zip(stems[start:], originals, batch):
            # Threshold after resizing the probabilities back: smooth outlines at the original size.
            height, width = original.shape[:2]
            full = np.asarray(Image.fromarray(probability[..., 0], mode="F").resize((width, height), Image.BILINEAR))
            mask = to_masks(full[None, ..., None], threshold, keep_largest)[0, ..., 0]
            Image.fromarray(mask * 255).save(output_dir / f"{stem}.png")
    probabilities.flush()
    return PredictionResult(len(stems), output_dir)
