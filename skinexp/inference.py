"""Loading a trained model (from an MLflow run or a .keras file) and turning images into masks."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.config import ConfigError
from skinexp.scores import largest_component


@dataclass
class TrainedModel:
    """A model ready to predict, with what its training run knows about it."""

    model: object  # keras.Model: images (N, S, S, 3) float32 0..255 -> probabilities (N, S, S, 1)
    image_size: int
    threshold: float  # the run's best_threshold, else 0.5
    run: Optional[object] = None  # mlflow Run when loaded from a run id
    config: Optional[dict] = None  # the training run's resolved config


def load_trained(reference: str, tracking_cfg, base_dir: Path) -> TrainedModel:
    """`reference` is a path to a .keras file or an MLflow run id in `tracking.uri`.

    The reference is checked before Keras loads, so a wrong one costs no TensorFlow start-up.
    """
    from skinexp import tracking

    path = Path(reference).expanduser()
    if reference.endswith(".keras") or path.exists():
        if not path.is_file():
            raise ConfigError(f"run must be an MLflow run id or an existing .keras file. Received: run={reference}")
        import keras

        model = keras.models.load_model(path, compile=False)
        return TrainedModel(model, int(model.input_shape[1]), 0.5)

    tracking.open_existing_store(tracking_cfg, base_dir)
    found = tracking.get_run(reference)
    if found is None:
        raise ConfigError(f"run must be an MLflow run id in {tracking_cfg.uri} or a .keras file. "
                          f"Received: run={reference}")
    import keras

    with tempfile.TemporaryDirectory(prefix="skinexp-model-") as download_dir:
        checkpoint = tracking.download(reference, "checkpoints/best.keras", Path(download_dir))
        config = tracking.run_config(reference, Path(download_dir))
        model = keras.models.load_model(checkpoint, compile=False)
    threshold = found.data.metrics.get("best_threshold", 0.5)
    return TrainedModel(model, int(model.input_shape[1]), float(threshold), found, config)


def predict_probabilities(model, images: np.ndarray, batch_size: int, tta: bool = False) -> np.ndarray:
    """Probabilities (N, S, S, 1) float32 for uint8 images (N, S, S, 3); `tta` averages over flips.

    The flipped predictions are flipped back before averaging (identity, horizontal, vertical, both).
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        if not tta:
            outputs.append(model.predict_on_batch(batch))
            continue
        total = np.zeros(batch.shape[:3] + (1,), np.float32)
        for axes in ((), (2,), (1,), (1, 2)):
            flipped = np.flip(batch, axis=axes) if axes else batch
            prediction = np.asarray(model.predict_on_batch(flipped))
            total += np.flip(prediction, axis=axes) if axes else prediction
        outputs.append(total / 4)
    return np.concatenate([np.asarray(o, np.float32) for o in outputs])


def to_masks(probabilities: np.ndarray, threshold: float, keep_largest: bool) -> np.ndarray:
    """Binary masks (N, S, S, 1) uint8 {0, 1}; optionally only the largest connected component of each."""
    masks = (probabilities > threshold).astype(np.uint8)
    if keep_largest:
        masks = np.stack([largest_component(mask) for mask in masks])
    return masks
