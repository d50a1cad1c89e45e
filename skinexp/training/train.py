"""Training: one function that takes the composed config and returns what the run achieved."""
from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp import tracking
from skinexp.config.checks import check_train
from skinexp.config.schema import Precision, Schedule
from skinexp.data.sources import load_splits
from skinexp.data.types import DataSplits
from skinexp.errors import TrainingDiverged
from skinexp.evaluation.figures import close, curves_figure
from skinexp.evaluation.scores import best_threshold
from skinexp.model.flops import training_flops_per_image
from skinexp.training import runtime
from skinexp.training.budget import Plan, images_after, plan, probe_split, probe_step_seconds
from skinexp.training.resume import ResumeState
from skinexp.training.validation import kept_epoch, log_validation_images


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    tracking_uri: str
    best_val_iou: float  # val_iou of the kept checkpoint's epoch
    best_epoch: int  # the kept checkpoint's epoch (train.checkpoint_monitor's best)
    best_threshold: float
    checkpoint: Path
    val_image_iou: float  # the kept checkpoint's mean per-image IoU at the declared threshold: what compare ranks


def _steps(count: int, batch_size: int, cap: Optional[int]) -> int:
    steps = math.ceil(count / batch_size)
    return min(steps, cap) if cap else steps


def _epoch_images(count: int, batch_size: int, steps_per_epoch: int) -> int:
    """The images one epoch shows: all `count`, or the batches `train.max_steps_per_epoch` keeps of them."""
    return min(count, steps_per_epoch * batch_size)


def train(cfg, *, output_dir: Path, base_dir: Path, run_name: str, overrides: list[str],
          parent_run_id: Optional[str] = None, splits: Optional[DataSplits] = None,
          job_number: int = 0, resume: Optional[ResumeState] = None,
          tags: Optional[dict[str, str]] = None, console_log: Optional[Path] = None, trial=None) -> TrainResult:
    """Train the configured U-Net and track everything in MLflow.

    Args:
        cfg: the composed train config (see `skinexp.config.TrainAppConfig`).
        output_dir: where checkpoints go (the Hydra job's output directory).
        base_dir: the directory relative store paths are resolved against (where the user ran from).
        run_name: MLflow run name. overrides: the command-line overrides, logged with the run.
        parent_run_id: nests the run under a sweep's parent run.
        splits: already-loaded data (else loaded from `cfg.dataset`).
        job_number: the sweep job's number (picks the GPU with `train.pin_gpu`).
        resume: continue an interrupted run from its last finished epoch, into the same MLflow run.
        tags: extra run tags (e.g. `rerun_of`).
        console_log: a file holding what the command printed, logged to the run as `logs/<name>`.
        trial: an Optuna search's `skinexp.search.study.TrialLink`: val_iou reported per epoch, pruned runs stop.

    Data and store are checked before the MLflow run starts, so bad input leaves no run behind.
    After every epoch the model, optimizer state and epoch are kept in `<output_dir>/checkpoints`
    (`last.keras`, `state.json`); SIGINT or SIGTERM end the run KILLED with that state intact.
    """
    check_train(cfg)
    backend = runtime.select_backend(cfg.train.backend, cfg.train.deterministic)
    splits = splits or load_splits(cfg.dataset)
    for warning in splits.warnings:
        print(f"skinexp: warning: {warning}", file=sys.stderr)
    tracking_uri, experiment_id = tracking.prepare_store(cfg.tracking, base_dir)

    import keras

    from skinexp.data.pipeline import make_dataset
    from skinexp.evaluation.inference import predict_probabilities
    from skinexp.model.deep_supervision import DeepSupervision  # also registers it, for resuming from last.keras
    from skinexp.training.callbacks import (
        AveragedWeights,
        EpochLogger,
        EpochState,
        KeepToBudget,
        PlanProgbar,
        ReportToTrial,
        SampleMasks,
        StopAtStep,
    )
    from skinexp.training.interrupts import DeferInterrupts, Interrupts

    precision, decided_by = runtime.resolve_precision(cfg.train.precision, backend)
    if cfg.train.precision == Precision.auto:
        print(f"skinexp: Keras on {backend}, precision {precision} (train.precision=auto: {decided_by})")
    cfg = copy.deepcopy(cfg)
    cfg.train.precision = precision  # what the run logs is what it ran with
    runtime.configure_runtime(cfg.train, job_number)
    train_cfg = cfg.train
    steps_per_epoch = _steps(len(splits.train), train_cfg.batch_size, train_cfg.max_steps_per_epoch)
    epoch_images = _epoch_images(len(splits.train), train_cfg.batch_size, steps_per_epoch)
    train_data = make_dataset(splits.train, train_cfg.batch_size, training=True, seed=train_cfg.seed,
                              augment_cfg=cfg.augment, max_batches=train_cfg.max_steps_per_epoch)
    val_data = make_dataset(splits.val, train_cfg.batch_size, training=False, seed=train_cfg.seed)

    checkpoint_dir = resume.checkpoint_dir if resume else output_dir / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with runtime.strategy_scope(train_cfg.strategy):
        training_plan = _plan(cfg, splits, steps_per_epoch, epoch_images)
        runtime.reseed(train_cfg)  # the run's weights as if no probe or FLOP count had built a model before them
        if resume:
            training_plan.replay_until(resume.epoch * steps_per_epoch)  # the loaded schedule holds those revisions
            import skinexp.model.losses  # noqa: F401  registers the custom loss and metric for loading
            import skinexp.model.metrics  # noqa: F401
            import skinexp.model.optim  # noqa: F401  and a minutes budget's optimizer and schedule

            model = keras.models.load_model(checkpoint_dir / "last.keras")  # weights and optimizer state
        else:
            model = build_compiled(cfg, steps_per_epoch, training_plan.steps, training_plan.revisions)
    flops_per_image = training_flops_per_image(model)

    best_path = checkpoint_dir / "best.keras"
    sample_count = min(train_cfg.sample_count, len(splits.val))
    epoch_logger = EpochLogger(
        images_seen=lambda epochs: images_after(min(epochs * steps_per_epoch, training_plan.steps), epoch_images,
                                                train_cfg.batch_size, steps_per_epoch),
        flops_per_image=flops_per_image,
        planned_steps=(lambda: training_plan.steps) if training_plan.revisions else None)
    if resume:
        epoch_logger.history = {key: list(values) for key, values in resume.history.items()}
    checkpoint = keras.callbacks.ModelCheckpoint(best_path, monitor=str(train_cfg.checkpoint_monitor), mode="auto",
                                                 save_best_only=True,
                                                 initial_value_threshold=resume.best if resume else None)
    interrupts = Interrupts()
    averaged = AveragedWeights() if cfg.optim.ema is not None else None
    callbacks = [
        keras.callbacks.TerminateOnNaN(raise_error=True),  # before any callback sees the batch
        DeferInterrupts(interrupts, defer=True),
        *([KeepToBudget(training_plan)] if training_plan.seconds or training_plan.pending else []),
        *([averaged, averaged.swap_at_epoch_end()] if averaged else []),  # optim.ema: the checkpoint keeps the average
        checkpoint,
        *([averaged.swap_at_epoch_end()] if averaged else []),
        EpochState(checkpoint_dir, checkpoint, training_plan),  # after the checkpoint: it records the updated best
        epoch_logger,
        SampleMasks(splits.val.images[:sample_count], splits.val.masks[:sample_count], train_cfg.sample_every,
                    from_start=resume is None, epochs=lambda: training_plan.epochs),
        DeferInterrupts(interrupts, defer=False),
        StopAtStep(training_plan),
        PlanProgbar(training_plan),
    ]
    if cfg.optim.schedule == Schedule.plateau:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-6))
    if trial is not None:
        callbacks.append(ReportToTrial(trial))
    if train_cfg.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_iou", mode="auto",
                                                       patience=train_cfg.early_stopping))

    run_tags = {**tracking.source_tags(), "dataset_fingerprint": splits.fingerprint(),
                "dataset": str(cfg.dataset.name), "model_parameters": str(served_parameters(model)),
                "keras_backend": backend, "keras_backend_version": runtime.backend_version(backend),
                "precision": precision,
                "cv_folds": str(cfg.dataset.folds), "cv_fold": str(cfg.dataset.fold or 0) if cfg.dataset.folds else "",
                **(tags or {})}
    with interrupts:  # SIGINT and SIGTERM end the run KILLED, never inside an epoch's end
        with tracking.run(experiment_id, run_name, parent_run_id=parent_run_id, tags=run_tags,
                          resume_run_id=resume.run_id if resume else None, console_log=console_log) as active:
            run_id = active.info.run_id
            if resume:
                tracking.set_tags({"resumed_from_epoch": resume.epoch})
                tracking.log_missing_epoch(resume.epoch, resume.last_logs)
            else:
                tracking.log_config(cfg, overrides, output_dir)
                tracking.log_params({"train.budget_kind": training_plan.kind,
                                     **({} if training_plan.seconds else {"train.steps": training_plan.final_steps}),
                                     "training_gflop_per_image": round(flops_per_image / 1e9, 4),
                                     **({"budget_probe_step_seconds": round(training_plan.probe_step_seconds, 5),
                                         "budget_probe_compile_seconds": round(training_plan.probe_compile_seconds, 2)}
                                        if training_plan.probe_step_seconds else {})})
                tracking.log_text(json.dumps({"train": splits.train.ids, "val": splits.val.ids,
                                              "test": splits.test.ids if splits.test else []}, indent=1),
                                  "data/split_ids.json")
                tracking.log_dataset_inputs(run_id, cfg.dataset, run_tags["dataset_fingerprint"], {
                    "training": splits.train, "validation": splits.val, "test": splits.test})
            try:
                model.fit(train_data, validation_data=val_data, epochs=training_plan.most_epochs, callbacks=callbacks,
                          initial_epoch=resume.epoch if resume else 0,
                          verbose=keras_verbosity(train_cfg.verbose), shuffle=False)  # the dataset shuffles itself
            except RuntimeError as error:  # TerminateOnNaN's, at the first NaN or infinite batch loss
                if "NaN or Inf loss" not in str(error):
                    raise
                raise TrainingDiverged(f"training diverged: {error} Lower optim.lr or check the data. "
                                       f"Received: optim.lr={cfg.optim.lr}") from None
            except KeyboardInterrupt as interrupt:  # what the entry point tells the user
                interrupt.epochs_done = len(epoch_logger.history.get("loss", []))
                interrupt.epochs = training_plan.epochs
                interrupt.resumable = interrupt.epochs_done > 0
                raise
            finally:  # the steps a minutes run trained to, however it ended
                if training_plan.seconds or (resume and resume.budget_kind == "minutes"):
                    tracking.log_params(training_plan.params())

            history = epoch_logger.history
            best_epoch = kept_epoch(history.get(str(train_cfg.checkpoint_monitor), []), checkpoint.best)
            val_iou = history.get("val_iou", [])
            best_val_iou = float(val_iou[best_epoch - 1]) if best_epoch else float("nan")
            best_model = keras.models.load_model(best_path, compile=False)
            if isinstance(best_model, DeepSupervision):  # logged, registered and served: the U-Net without its heads
                best_model = best_model.network
                best_model.save(best_path)
            probabilities = predict_probabilities(best_model, splits.val.images, train_cfg.batch_size)
            threshold, threshold_iou = best_threshold(probabilities, splits.val.masks)
            image_means = log_validation_images(splits.val, probabilities, threshold)
            tracking.log_metrics({"best_val_iou": best_val_iou, "best_epoch": best_epoch,
                                  "best_threshold": threshold, "val_iou_at_best_threshold": threshold_iou,
                                  **{f"val_image_{name}": value for name, value in image_means.items()}},
                                 step=len(history.get("loss", [])))
            curves = curves_figure(history)
            tracking.log_figure(curves, "curves.png")
            close(curves)
            tracking.log_artifact(best_path, "checkpoints")
            if cfg.tracking.log_model:
                sample = splits.val.images[:2].astype(np.float32)
                tracking.log_keras_model(best_model, sample, best_model.predict(sample, verbose=0))
                tracking.log_segmenter(best_path, threshold)

    return TrainResult(run_id=run_id, experiment_id=experiment_id, tracking_uri=tracking_uri,
                       best_val_iou=best_val_iou, best_epoch=best_epoch, best_threshold=threshold,
                       checkpoint=best_path, val_image_iou=image_means["iou"])


def _plan(cfg, splits: DataSplits, steps_per_epoch: int, epoch_images: int) -> Plan:
    """The run's steps: from `train.budget` (a minutes budget probes a copy of the model on its own copy of the
    training pipeline; a GFLOP budget counts `epoch_images` an epoch), else `train.epochs`. The models built here
    draw from the seeded random state: seed again (`runtime.reseed`) before building the run's, or a minutes run and
    its rerun (which has no probe) differ."""
    from skinexp.data.pipeline import make_dataset
    from skinexp.model.unet import build_unet

    def probe() -> tuple[float, float]:
        head = probe_split(splits.train, cfg.train.batch_size, cfg.train.steps_per_execution)
        data = make_dataset(head, cfg.train.batch_size, training=True, seed=cfg.train.seed, augment_cfg=cfg.augment)
        model = build_compiled(cfg, steps_per_epoch, steps_per_epoch)
        return probe_step_seconds(model, data, steps_per_epoch, cfg.train.steps_per_execution)

    return plan(cfg.train, images=epoch_images, steps_per_epoch=steps_per_epoch,
                flops_per_image=training_flops_per_image(build_unet(cfg.model, cfg.dataset.image_size)), probe=probe)


def build_compiled(cfg, steps_per_epoch: int, total_steps: int, plan: Optional[list[list[int]]] = None):
    from skinexp.model.losses import build_loss
    from skinexp.model.metrics import training_metrics
    from skinexp.model.optim import build_optimizer
    from skinexp.model.unet import build_unet

    model = build_unet(cfg.model, cfg.dataset.image_size)
    model.compile(optimizer=build_optimizer(cfg.optim, steps_per_epoch, total_steps, plan),
                  loss=build_loss(cfg.loss), metrics=training_metrics(),
                  jit_compile=runtime.jit_compile(cfg.train.jit_compile),
                  steps_per_execution=cfg.train.steps_per_execution)
    return model


def keras_verbosity(verbose: str, stream=None) -> int:
    """`train.verbose` as Keras' `fit` takes it: `auto` is a live bar (1) on a terminal, one line per epoch (2) in
    logs, CI and batch jobs, whose output is not a terminal."""
    if str(verbose) != "auto":
        return int(verbose)
    stream = stream or sys.stdout
    return 1 if getattr(stream, "isatty", lambda: False)() else 2


def served_parameters(model) -> int:
    """The parameters of the network a run logs and serves: a deeply supervised model's heads train only."""
    from skinexp.model.deep_supervision import DeepSupervision

    return (model.network if isinstance(model, DeepSupervision) else model).count_params()
