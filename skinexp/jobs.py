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
from skinexp.tracking import PARENT_RUN_ENV, TrackingError

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
        leaf = key.split(".")[-1].split("/")[-1]
        try:
            value = repr(float(value)) if any(c in value for c in ".eE") and not value.isalpha() else value
            value = value.rstrip("0").rstrip(".") if "." in value and "e" not in value else value
        except ValueError:
            pass
        parts.append(f"{leaf}={value}")
    return ",".join(parts) or "default"


def train_job(cfg) -> float:
    """The Hydra task for `train`: returns best val_iou (what a sweeper maximises), NaN for a failed sweep job."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from skinexp.callbacks import TrainingDiverged
    from skinexp.train import train

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    run_name = cfg.tracking.run_name or run_name_from(overrides)
    try:
        result = train(cfg, output_dir=Path(hydra_cfg.runtime.output_dir), base_dir=Path(hydra_cfg.runtime.cwd),
                       run_name=run_name, overrides=overrides, parent_run_id=os.environ.get(PARENT_RUN_ENV))
    except (*USER_ERRORS, TrainingDiverged) as error:
        if not multirun:
            fail(str(error))
        print(f"skinexp: job {hydra_cfg.job.num} ({run_name}) failed: {error}", file=sys.stderr)
        return math.nan
    except KeyboardInterrupt:
        print("skinexp: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:
        if not multirun:
            raise
        # Keep the sweep going: Hydra's launchers re-raise a job's exception and stop the sweep.
        print(f"skinexp: job {hydra_cfg.job.num} ({run_name}) failed:\n{traceback.format_exc()}", file=sys.stderr)
        return math.nan

    url = f"http://{UI_HOST}:{UI_PORT}/#/experiments/{result.experiment_id}/runs"
    if result.tracking_uri.startswith(("http://", "https://")):
        url = f"{result.tracking_uri.rstrip('/')}/#/experiments/{result.experiment_id}/runs"
    print(f"skinexp: run {result.run_id} ({run_name}) finished: best val_iou {result.best_val_iou:.4f} at epoch "
          f"{result.best_epoch}, threshold {result.best_threshold:.2f}. See it: `make ui`, then {url}")
    return result.best_val_iou
