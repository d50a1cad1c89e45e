"""What each Hydra job does: read Hydra's runtime, call the library function, report, map errors to exit codes."""
from __future__ import annotations

import math
import os
import sys
import traceback
from pathlib import Path

from skinexp.cli import fail
from skinexp.config import ConfigError
from skinexp.data import DataError
from skinexp.sweeps import SWEEP_KEYS_ENV
from skinexp.tracking import PARENT_RUN_ENV, TrackingError, runs_page_url

USER_ERRORS = (ConfigError, DataError, TrackingError)
UI_HOST, UI_PORT = "127.0.0.1", int(os.environ.get("SKINEXP_UI_PORT", "5000"))
_HIDDEN_FROM_NAMES = ("hydra", "tracking.", "+hydra", "hparams_search")


def run_name_from(overrides: list[str]) -> str:
    """`model.filters=64 optim.lr=1e-4` -> `filters=64,lr=0.0001`; no overrides -> `default`."""
    parts = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith(_HIDDEN_FROM_NAMES):
            continue
        if any(c in value for c in ".eE"):
            try:
                value = format(float(value), ".4g")
            except ValueError:
                pass
        parts.append(f"{key.split('.')[-1].split('/')[-1]}={value}")
    return ",".join(parts) or "default"


def _job_run_name(cfg, overrides: list[str], multirun: bool) -> str:
    """Sweep children are named from the swept keys only (`filters=8,lr=0.001`)."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    swept = [k for k in os.environ.get(SWEEP_KEYS_ENV, "").split(",") if k] if multirun else []
    if swept:
        overrides = [o for o in overrides if o.lstrip("+~").partition("=")[0] in swept]
    return run_name_from(overrides)


def _record_failure(cfg, run_name: str, error: BaseException, base_dir: Path) -> None:
    """A sweep job that failed before its run started still shows up, FAILED, under the parent."""
    from skinexp import tracking

    if getattr(error, "run_id", None):
        return
    try:
        _, experiment_id = tracking.prepare_store(cfg.tracking, base_dir)
        tracking.record_failed_run(experiment_id, run_name, os.environ.get(PARENT_RUN_ENV),
                                   f"{type(error).__name__}: {error}", cfg)
    except Exception as tracking_error:  # the store itself may be what failed
        print(f"skinexp: could not record the failed job: {tracking_error}", file=sys.stderr)


def train_job(cfg) -> float:
    """The Hydra task for `train`: returns best val_iou (what a sweeper maximises), NaN for a failed sweep job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from skinexp.resume import rerun_setup, resume_setup
    from skinexp.train import Terminated, TrainingDiverged, train

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    run_name = _job_run_name(cfg, overrides, multirun)
    base_dir = Path(hydra_cfg.runtime.cwd)
    try:
        resume, tags = None, None
        if cfg.resume:
            cfg, resume, run_name = resume_setup(cfg, overrides, base_dir)
        elif cfg.rerun_of:
            cfg, run_name, tags = rerun_setup(cfg, overrides, base_dir)
        result = train(cfg, output_dir=Path(hydra_cfg.runtime.output_dir), base_dir=base_dir, run_name=run_name,
                       overrides=overrides, parent_run_id=os.environ.get(PARENT_RUN_ENV) if multirun else None,
                       job_number=hydra_cfg.job.num if multirun else 0, resume=resume, tags=tags)
    except (*USER_ERRORS, TrainingDiverged) as error:
        if not multirun:
            fail(str(error))
        print(f"skinexp: job {hydra_cfg.job.num} ({run_name}) failed: {error}", file=sys.stderr)
        _record_failure(cfg, run_name, error, base_dir)
        return math.nan
    except KeyboardInterrupt as interrupt:
        run_id = getattr(interrupt, "run_id", None)
        hint = f"; continue with: python -m skinexp train resume={run_id}" if run_id else ""
        print(f"skinexp: {interrupt or 'interrupted'}{hint}", file=sys.stderr)
        sys.exit(143 if isinstance(interrupt, Terminated) else 130)
    except Exception as error:
        if not multirun:
            raise
        # Keep the sweep going: Hydra's launchers re-raise a job's exception and stop the sweep.
        print(f"skinexp: job {hydra_cfg.job.num} ({run_name}) failed:\n{traceback.format_exc()}", file=sys.stderr)
        _record_failure(cfg, run_name, error, base_dir)
        return math.nan

    remote = result.tracking_uri.startswith(("http://", "https://"))
    url = runs_page_url(result.tracking_uri if remote else f"http://{UI_HOST}:{UI_PORT}", result.experiment_id)
    print(f"skinexp: run {result.run_id} ({run_name}) finished: best val_iou {result.best_val_iou:.4f} at epoch "
          f"{result.best_epoch}, threshold {result.best_threshold:.2f}. See it: `make ui`, then {url}")
    return result.best_val_iou


def _inference_job(cfg, work) -> None:
    """Shared by evaluate and predict: run `work(cfg, output_dir, base_dir)`, known errors as one line."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        return work(cfg, output_dir=output_dir, base_dir=Path(hydra_cfg.runtime.cwd))
    except USER_ERRORS as error:
        fail(str(error))
    except KeyboardInterrupt:
        print("skinexp: interrupted", file=sys.stderr)
        sys.exit(130)


def evaluate_job(cfg) -> None:
    from skinexp.evaluate import evaluate

    result = _inference_job(cfg, evaluate)
    summary = result.summary
    print(f"skinexp: evaluated {summary['images']} images ({summary['split']}, threshold {summary['threshold']:.2f}"
          f"{', tta' if summary['tta'] else ''}): mean IoU {summary['mean_iou']:.4f}, mIoU {summary['miou']:.4f}, "
          f"Dice {summary['mean_dice']:.4f}, accuracy {summary['accuracy']:.4f}, thresholded Jaccard "
          f"{summary['thresholded_jaccard']:.4f}\nskinexp: per_image.csv, summary.json and figures in "
          f"{result.output_dir}; evaluation run {result.run_id}")


def predict_job(cfg) -> None:
    from skinexp.predict import predict

    result = _inference_job(cfg, predict)
    print(f"skinexp: wrote {result.count} masks and predict.npy to {result.output_dir}")
