"""Prediction: mask PNGs (0/255, at each input's original size) and the notebook's predict.npy."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from skinexp.config.schema import Postprocess
from skinexp.console import Progress
from skinexp.data.arrays import pixel_scale, resize, scaled_uint8
from skinexp.data.folder import EXTENSIONS, image_files, read_rgb
from skinexp.data.npy import open_array
from skinexp.errors import ConfigError, DataError
from skinexp.evaluation import postprocess
from skinexp.evaluation.inference import load_trained, predict_probabilities
from skinexp.outputs import refuse_existing, refuse_input_as_output, written_in_place

CHUNK = 32  # images decoded and predicted at a time


@dataclass
class PredictionResult:
    count: int
    output_dir: Path


def _inputs(input_path: Path):
    """(output stems, read(i) -> (H, W, 3) uint8): the image files of a folder, or the rows of an
    (N, H, W, 3) .npy file (uint8 0..255 or floats 0..1 / 0..255)."""
    if input_path.is_dir():
        files = image_files(input_path)
        if not files:
            raise DataError(f"input must hold {', '.join(e[1:] for e in EXTENSIONS)} images. "
                            f"Received: input={input_path} (none found)")
        return [p.stem for p in files], lambda index: read_rgb(files[index])
    if input_path.suffix == ".npy" and input_path.is_file():
        array = open_array(input_path)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise DataError(f"{input_path} must hold images (N, H, W, 3). Received: shape {array.shape}")
        scale = pixel_scale(array, str(input_path))
        return [f"{i:05d}" for i in range(len(array))], lambda index: scaled_uint8(np.asarray(array[index]), scale)
    raise ConfigError(f"input must be a folder of images or a .npy file. Received: input={input_path}")


def _keep_largest(cfg, trained) -> bool:
    """largest_component as asked, unless evaluate found it does not help this run on validation."""
    if cfg.postprocess != Postprocess.largest_component:
        return False
    if postprocess.recorded_helps(trained.run) is False:
        print("skinexp: warning: evaluate found largest_component does not help this run on validation; "
              "not applied", file=sys.stderr)
        return False
    return True


def predict(cfg, *, output_dir: Path, base_dir: Path) -> PredictionResult:
    """Predict a mask for every input image; never overwrites unless `overwrite=true`."""
    input_path = Path(cfg.input).expanduser()
    if not input_path.is_absolute():
        input_path = base_dir / input_path
    stems, read = _inputs(input_path)
    if len(set(stems)) != len(stems):
        raise DataError(f"input images must have distinct names. Received: two files with stem "
                        f"{next(s for s in stems if stems.count(s) > 1)} in {input_path}")
    targets = [output_dir / f"{stem}.png" for stem in stems] + [output_dir / "predict.npy"]
    refuse_input_as_output(input_path, output_dir, targets)
    refuse_existing(targets, output_dir, cfg.overwrite)
    trained = load_trained(cfg.run, cfg.tracking, base_dir, cfg.group, cfg.backend)  # a sweep parent: its ensemble
    threshold = cfg.threshold if cfg.threshold is not None else trained.threshold
    keep_largest = _keep_largest(cfg, trained)

    output_dir.mkdir(parents=True, exist_ok=True)
    with written_in_place(output_dir / "predict.npy") as partial:
        _predict_into(partial, stems, read, trained, cfg, threshold, keep_largest, output_dir)
    return PredictionResult(len(stems), output_dir)


def _predict_into(probabilities_path: Path, stems, read, trained, cfg, threshold, keep_largest, output_dir) -> None:
    size = trained.image_size
    probabilities = np.lib.format.open_memmap(probabilities_path, mode="w+", dtype=np.float32,
                                              shape=(len(stems), size, size, 1))
    progress = Progress(len(stems), "predict")
    for start in range(0, len(stems), CHUNK):
        originals = [read(index) for index in range(start, min(start + CHUNK, len(stems)))]
        resized = np.stack([resize(image[None], size, Image.BILINEAR)[0] for image in originals])
        batch = predict_probabilities(trained.model, resized, cfg.batch_size, cfg.tta)
        probabilities[start:start + len(batch)] = batch
        for stem, original, probability in zip(stems[start:], originals, batch):
            # Threshold after resizing the probabilities back: smooth outlines at the original size.
            height, width = original.shape[:2]
            full = np.asarray(Image.fromarray(probability[..., 0], mode="F").resize((width, height), Image.BILINEAR))
            mask = postprocess.to_masks(full[None, ..., None], threshold, keep_largest)[0, ..., 0]
            with written_in_place(output_dir / f"{stem}.png") as partial:
                Image.fromarray(mask * 255).save(partial, format="PNG")
        progress.advance(len(batch))
    progress.close()
    probabilities.flush()
    del probabilities
