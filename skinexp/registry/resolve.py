"""Registered models: `models:/<name>@<alias>` and `models:/<name>/<version>` resolved to what predicting needs.

The Keras model is the source run's best checkpoint (the file its `segmenter` carries), so `predict run=models:/...`
and the served segmenter give the same masks. Returns plain values; `skinexp.evaluation.inference` wraps them.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

from skinexp import tracking
from skinexp.errors import ConfigError
from skinexp.evaluation import postprocess


class Registered(NamedTuple):
    model: object  # keras.Model: images (N, S, S, 3) float32 0..255 -> probabilities (N, S, S, 1)
    image_size: int
    threshold: float  # the version's `threshold` tag, else the run's best_threshold, else 0.5
    keep_largest: Optional[bool]  # the run's post-processing verdict (None: never decided)
    run: object  # the source training run
    config: Optional[dict]  # its resolved config
    version: str


def is_registered(reference: str) -> bool:
    return reference.startswith("models:/")


def load_registered(reference: str, tracking_cfg, base_dir: Path) -> Registered:
    """Resolve `reference` in `tracking.uri`; ConfigError naming the unknown name, alias or version."""
    tracking.parse_model_uri(reference)  # a malformed reference fails before the store is opened
    tracking.open_existing_store(tracking_cfg, base_dir)
    version = tracking.model_version(reference)
    run = tracking.get_run(version.run_id) if version.run_id else None
    if run is None:
        raise ConfigError(f"the model version's source run is not in {tracking_cfg.uri}. "
                          f"Received: run={reference} (version {version.version}, run {version.run_id})")
    import keras

    with tempfile.TemporaryDirectory(prefix="skinexp-model-") as download_dir:
        checkpoint = tracking.download(run.info.run_id, "checkpoints/best.keras", Path(download_dir))
        config = tracking.run_config(run.info.run_id, Path(download_dir))
        model = keras.models.load_model(checkpoint, compile=False)
    threshold = float(version.tags.get("threshold", run.data.metrics.get("best_threshold", 0.5)))
    return Registered(model, int(model.input_shape[1]), threshold, postprocess.recorded_helps(run), run, config,
                      str(version.version))
