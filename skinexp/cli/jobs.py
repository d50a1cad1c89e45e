"""What each Hydra job does: read Hydra's runtime, call the library function, report in one line.

A single run lets errors rise to the entry point. A sweep job contains them instead: it records the job
FAILED under the sweep's parent and returns NaN, because Hydra's launchers stop the sweep at the first
exception.
"""
from __future__ import annotations

import math
import os
import sys
import traceback
from pathlib import Path

from skinexp import console
from skinexp.config.naming import job_run_name
from skinexp.errors import SkinexpError
from skinexp.team.ui import UI_HOST, UI_PORT
from skinexp.tracking import PARENT_RUN_ENV, run_page_url
from skinexp.training.sweeps import SWEEP_KEYS_ENV


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

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    swept = [k for k in os.environ.get(SWEEP_KEYS_ENV, "").split(",") if k] if multirun else []
    run_name = job_run_name(cfg.tracking.run_name, overrides, swept)
    base_dir, output_dir = Path(hydra_cfg.runtime.cwd), Path(hydra_cfg.runtime.output_dir)
    with console.copied_to(output_dir / f"{hydra_cfg.job.name}.log") as log:
        return _train(cfg, hydra_cfg, overrides, run_name, base_dir, output_dir, multirun, log)


def _train(cfg, hydra_cfg, overrides, run_name, base_dir, output_dir, multirun, log) -> float:
    from skinexp.search.study import TrialLink
    from skinexp.training.resume import rerun_setup, resume_setup
    from skinexp.training.train import train

    trial = TrialLink.from_env() if multirun else None  # set by the Optuna sweeper
    try:
        resume, tags = None, None
        if cfg.resume:
            cfg, resume, run_name = resume_setup(cfg, overrides, base_dir)
        elif cfg.rerun_of:
            cfg, run_name, tags = rerun_setup(cfg, overrides, base_dir)
        if trial is not None:
            tags = {**(tags or {}), **trial.run_tags()}
        result = train(cfg, output_dir=output_dir, base_dir=base_dir, run_name=run_name, overrides=overrides,
                       parent_run_id=os.environ.get(PARENT_RUN_ENV) if multirun else None,
                       job_number=hydra_cfg.job.num if multirun else 0, resume=resume, tags=tags, console_log=log,
                       trial=trial)
        if trial is not None:
            trial.tell(result.val_image_iou, result.run_id)  # the value compare ranks
    except Exception as error:
        if not multirun:
            raise
        # a known error is its one line; anything else keeps its traceback for the job's log
        detail = f" {error}" if isinstance(error, SkinexpError) else f"\n{traceback.format_exc()}"
        print(f"skinexp: job {hydra_cfg.job.num} ({run_name}) failed:{detail}", file=sys.stderr)
        _record_failure(cfg, run_name, error, base_dir)
        return math.nan

    remote = result.tracking_uri.startswith(("http://", "https://"))
    url = run_page_url(result.tracking_uri if remote else f"http://{UI_HOST}:{UI_PORT}", result.experiment_id,
                       result.run_id)
    print(f"skinexp: run {result.run_id} ({run_name}) finished: mean per-image IoU {result.val_image_iou:.4f} at "
          f"threshold 0.5 (kept epoch {result.best_epoch}, val_iou {result.best_val_iou:.4f}; tuned threshold "
          f"{result.best_threshold:.2f}). See it: `make ui`, then {url}")
    return result.val_image_iou


def _inference_job(cfg, work, report) -> None:
    """evaluate and predict: results into `output=` (else Hydra's run folder); the console, `report`'s summary
    included, copied into the run folder's log, never into the user's `output=` folder."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    run_dir, base_dir = Path(hydra_cfg.runtime.output_dir), Path(hydra_cfg.runtime.cwd)
    output_dir = base_dir / Path(cfg.output).expanduser() if cfg.output else run_dir
    with console.copied_to(run_dir / f"{hydra_cfg.job.name}.log"):
        print(report(work(cfg, output_dir=output_dir, base_dir=base_dir)))


def _evaluated(result) -> str:
    summary = result.summary
    return (f"skinexp: evaluated {summary['images']} images ({summary['split']}, threshold {summary['threshold']:.2f}"
            f"{', tta' if summary['tta'] else ''}): mean IoU {summary['mean_iou']:.4f}, mIoU {summary['miou']:.4f}, "
            f"Dice {summary['mean_dice']:.4f}, accuracy {summary['accuracy']:.4f}, thresholded Jaccard "
            f"{summary['thresholded_jaccard']:.4f}\nskinexp: per_image.csv, summary.json and figures in "
            f"{result.output_dir}; " + (f"evaluation run {result.run_id}" if result.run_id else "not logged to MLflow"))


def evaluate_job(cfg) -> None:
    from skinexp.evaluation.evaluate import evaluate

    _inference_job(cfg, evaluate, _evaluated)


def predict_job(cfg) -> None:
    from skinexp.evaluation.predict import predict

    _inference_job(cfg, predict, lambda result: f"skinexp: wrote {result.count} masks and predict.npy to "
                                                f"{result.output_dir}")
