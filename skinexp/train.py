"""Training: one function that takes the composed config and returns what the run achieved."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp import tracking
from skinexp.plots import curves_figure
from skinexp.config import validate_train
from skinexp.data import DataSplits, load_splits

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    best_val_iou: float
    best_epoch: int
    best_threshold: float
    checkpoint: Path


def configure_runtime(train_cfg, job_number: int = 0) -> None:
    """Seeds, determinism, GPUs and precision policy: set once, here, before any model is built."""
    import keras
    import tensorflow as tf

    keras.backend.clear_session()  # sweeps run jobs in one process: start each from a clean graph
    tf.get_logger().setLevel("ERROR")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and train_cfg.pin_gpu:
        # Parallel sweep jobs each take one GPU: job k runs on GPU k mod n.
        gpus = [gpus[job_number % len(gpus)]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(train_cfg.seed)
    if train_cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(train_cfg.precision)


def best_threshold(probabilities: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """The threshold in 0.05..0.95 maximising dataset-level foreground IoU; returns (threshold, iou)."""
    truth = masks.astype(bool).ravel()
    flat = probabilities.ravel()
    best = (0.5, -1.0)
    for threshold in THRESHOLDS:
        predicted = flat > threshold
        union = np.count_nonzero(predicted | truth)
        iou = np.count_nonzero(predicted & truth) / union if union else 1.0
        if iou > best[1] + 1e-12:
            best = (float(threshold), float(iou))
    return best


def _steps(count: int, batch_size: int, cap: Optional[int]) -> int:
    steps = math.ceil(count / batch_size)
    return min(steps, cap) if cap else steps


def train(cfg, *, output_dir: Path, base_dir: Path, run_name: str, overrides: list[str],
          parent_run_id: Optional[str] = None, splits: Optional[DataSplits] = None,
          job_number: int = 0) -> TrainResult:
    """Train the configured U-Net and track everything in MLflow.

    Args:
        cfg: the composed train config (see `skinexp.config.TrainAppConfig`).
        output_dir: where checkpoints go (the Hydra job's output directory).
        base_dir: the directory relative store paths are resolved against (where the user ran from).
        run_name: MLflow run name. overrides: the command-line overrides, logged with the run.
        parent_run_id: nests the run under a sweep's parent run.
        splits: already-loaded data (else loaded from `cfg.dataset`).
        job_number: the sweep job's number (picks the GPU with `train.pin_gpu`).

    Data and store are checked before the MLflow run starts, so bad input leaves no run behind.
    """
    validate_train(cfg)
    splits = splits or load_splits(cfg.dataset)
    for warning in splits.warnings:
        print(f"skinexp: warning: {warning}", file=sys.stderr)
    tracking_uri, experiment_id = tracking.prepare_store(cfg.tracking, base_dir)

    import keras

    from skinexp.callbacks import DivergenceGuard, EpochLogger, SampleMasks
    from skinexp.data.pipeline import make_dataset
    from skinexp.losses import build_loss
    from skinexp.metrics import training_metrics
    from skinexp.models.unet import build_unet
    from skinexp.optim import build_optimizer

    configure_runtime(cfg.train, job_number)
    train_cfg = cfg.train
    steps_per_epoch = _steps(len(splits.train), train_cfg.batch_size, train_cfg.max_steps_per_epoch)
    train_data = make_dataset(splits.train, train_cfg.batch_size, training=True, seed=train_cfg.seed,
                              augment_cfg=cfg.augment)
    val_data = make_dataset(splits.val, train_cfg.batch_size, training=False, seed=train_cfg.seed)

    strategy = _strategy(train_cfg.strategy)
    with strategy.scope():
        model = build_unet(cfg.model, cfg.dataset.image_size)
        model.compile(optimizer=build_optimizer(cfg.optim, steps_per_epoch, train_cfg.epochs),
                      loss=build_loss(cfg.loss), metrics=training_metrics(),
                      jit_compile=train_cfg.jit_compile, steps_per_execution=train_cfg.steps_per_execution)

    checkpoint_dir = output_dir / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    best_path = checkpoint_dir / "best.keras"
    sample_count = min(train_cfg.sample_count, len(splits.val))
    epoch_logger = EpochLogger(train_images_per_epoch=min(len(splits.train), steps_per_epoch * train_cfg.batch_size))
    callbacks = [
        DivergenceGuard(),
        epoch_logger,
        keras.callbacks.ModelCheckpoint(best_path, monitor=train_cfg.checkpoint_monitor,
                                        mode=_mode(train_cfg.checkpoint_monitor), save_best_only=True),
        SampleMasks(splits.val.images[:sample_count], splits.val.masks[:sample_count], train_cfg.sample_every),
    ]
    if cfg.optim.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6))
    if train_cfg.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_iou", mode="max",
                                                       patience=train_cfg.early_stopping))

    tags = {**tracking.source_tags(), "dataset_fingerprint": splits.fingerprint(), "dataset": cfg.dataset.name,
            "model_parameters": str(model.count_params())}
    with tracking.run(experiment_id, run_name, parent_run_id=parent_run_id, tags=tags) as active:
        run_id = active.info.run_id
        tracking.log_config(cfg, overrides, output_dir)
        tracking.log_text(json.dumps({"train": splits.train.ids, "val": splits.val.ids,
                                      "test": splits.test.ids if splits.test else []}, indent=1),
                          "data/split_ids.json")
        model.fit(train_data, validation_data=val_data, epochs=train_cfg.epochs, callbacks=callbacks,
                  steps_per_epoch=steps_per_epoch if train_cfg.max_steps_per_epoch else None,
                  verbose=train_cfg.verbose, shuffle=False)  # the dataset shuffles itself

        history = epoch_logger.history
        val_iou = history.get("val_iou", [float("nan")])
        best_epoch = int(np.nanargmax(val_iou)) + 1 if not np.all(np.isnan(val_iou)) else 0
        best_model = keras.models.load_model(best_path, compile=False)
        probabilities = best_model.predict(splits.val.images.astype(np.float32), batch_size=train_cfg.batch_size,
                                           verbose=0)
        threshold, threshold_iou = best_threshold(probabilities, splits.val.masks)
        tracking.log_metrics({"best_val_iou": float(np.nanmax(val_iou)), "best_epoch": best_epoch,
                              "best_threshold": threshold, "val_iou_at_best_threshold": threshold_iou},
                             step=len(val_iou))
        tracking.log_figure(curves_figure(history), "curves.png")
        tracking.log_artifact(best_path, "checkpoints")
        if cfg.tracking.log_model:
            sample = splits.val.images[:2].astype(np.float32)
            tracking.log_keras_model(best_model, sample, best_model.predict(sample, verbose=0))

    return TrainResult(run_id=run_id, experiment_id=experiment_id, tracking_uri=tracking_uri,
                       best_val_iou=float(np.nanmax(val_iou)), best_epoch=best_epoch,
                       best_threshold=threshold, checkpoint=best_path)


def _mode(monitor: str) -> str:
    """Keras' checkpoint mode: losses go down, every other metric we log goes up."""
    return "min" if monitor.endswith("loss") else "max"


def _strategy(name: str):
    import tensorflow as tf

    return tf.distribute.MirroredStrategy() if name == "mirrored" else tf.distribute.get_strategy()
