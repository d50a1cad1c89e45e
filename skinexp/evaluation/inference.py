"""Loading a trained model (from an MLflow run or a .keras file) and turning images into masks."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.errors import ConfigError
from skinexp.training import runtime


@dataclass
class TrainedModel:
    """A model ready to predict, with what its training run knows about it."""

    model: object  # keras.Model: images (N, S, S, 3) float32 0..255 -> probabilities (N, S, S, 1)
    image_size: int
    threshold: float  # the run's best_threshold, else 0.5
    run: Optional[object] = None  # mlflow Run when loaded from a run id
    config: Optional[dict] = None  # the training run's resolved config


def load_trained(reference: str, tracking_cfg, base_dir: Path, group: Optional[str] = None,
                 backend: str = "tensorflow") -> TrainedModel:
    """`reference` is a path to a .keras file or an MLflow run id in `tracking.uri`, loaded on Keras' `backend`
    (whichever backend trained it: the `.keras` format is backend-neutral).

    The parent run of a cross-validation sweep gives its fold ensemble (`skinexp.evaluation.ensemble.FoldEnsemble`)
    of config `group` (default: the best), with the threshold that maximises IoU on the pooled out-of-fold predictions.

    The reference is checked before Keras loads, so a wrong one costs no TensorFlow start-up.
    `models:/<name>@<alias>` and `models:/<name>/<version>` name a registered model version
    (`skinexp.registry.resolve`).
    """
    runtime.select_backend(backend)
    if reference.startswith("models:/"):
        from skinexp.registry.resolve import load_registered

        registered = load_registered(reference, tracking_cfg, base_dir)
        return TrainedModel(registered.model, registered.image_size, registered.threshold, registered.run,
                            registered.config)
    from skinexp import tracking

    path = Path(reference).expanduser()
    if reference.endswith(".keras") or path.exists():
        if not path.is_file():
            raise ConfigError(f"run must be an MLflow run id or an existing .keras file. Received: run={reference}")
        if group is not None:
            raise ConfigError(f"group= picks a config of a sweep's parent run, not of a .keras file. "
                              f"Received: group={group} with run={reference}")
        import keras

        model = keras.models.load_model(path, compile=False)
        return TrainedModel(model, int(model.input_shape[1]), 0.5)

    tracking.open_existing_store(tracking_cfg, base_dir)
    found = tracking.get_run(reference)
    if found is None:
        raise ConfigError(f"run must be an MLflow run id in {tracking_cfg.uri} or a .keras file. "
                          f"Received: run={reference}")
    if tracking.is_sweep(found):
        from skinexp.evaluation.ensemble import load_fold_ensemble

        ensemble = load_fold_ensemble(found, group, predict_probabilities)
        return TrainedModel(ensemble, ensemble.image_size, ensemble.threshold, found, ensemble.members[0].config)
    if group is not None:
        raise ConfigError(f"group= picks a config of a sweep's parent run; run {reference} is a single training "
                          f"run. Received: group={group}")
    import keras

    with tempfile.TemporaryDirectory(prefix="skinexp-model-") as download_dir:
        checkpoint = tracking.download(reference, "checkpoints/best.keras", Path(download_dir))
        config = tracking.run_config(reference, Path(download_dir))
        model = keras.models.load_model(checkpoint, compile=False)
    threshold = found.data.metrics.get("best_threshold", 0.5)
    return TrainedModel(model, int(model.input_shape[1]), float(threshold), found, config)


FLIPS = ((), (2,), (1,), (1, 2))  # identity, horizontal, vertical, both: each its own inverse


def flip_averaged(predict_batch, batch: np.ndarray) -> np.ndarray:
    """Test-time augmentation: `predict_batch` on every flip of `batch` (N, H, W, C), each prediction flipped
    back before averaging, so a prediction that follows the image's content is returned unchanged."""
    total = None
    for axes in FLIPS:
        flipped = np.flip(batch, axis=axes) if axes else batch
        prediction = np.asarray(predict_batch(flipped), np.float32)
        prediction = np.flip(prediction, axis=axes) if axes else prediction
        total = prediction if total is None else total + prediction
    return total / len(FLIPS)


def predict_probabilities(model, images: np.ndarray, batch_size: int, tta: bool = False,
                          progress=None) -> np.ndarray:
    """Probabilities (N, S, S, 1) float32 for uint8 images (N, S, S, 3); `tta` averages over flips.

    `progress` (a `skinexp.console.Progress`) advances by each batch's images.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        outputs.append(flip_averaged(model.predict_on_batch, batch) if tta else model.predict_on_batch(batch))
        if progress is not None:
            progress.advance(len(batch))
    return np.concatenate([np.asarray(o, np.float32) for o in outputs])
