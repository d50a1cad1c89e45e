"""Continuing and repeating logged runs: the resume state (`state.json`, written after every epoch and read
back here), `train resume=<run id>` and `rerun <run id>`."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from skinexp import tracking
from skinexp.config.naming import override_key
from skinexp.config.schema import TRAINING_METRICS, TrainAppConfig
from skinexp.errors import ConfigError

# What may change when a run continues: how long and how verbosely, the backend, and where its store is.
SAFE_ON_RESUME = ("train.epochs", "train.verbose", "train.sample_every", "train.early_stopping", "train.backend",
                  "resume", "tracking.uri", "tracking.experiment", "tracking.artifact_root")
LOGGED_METRICS = (*(f"{prefix}{name}" for prefix in ("", "val_") for name in ("loss", *TRAINING_METRICS)),
                  "images_per_sec", "epoch_seconds", "learning_rate", "training_seconds", "images_seen",
                  "training_gflop")
STATE_FILE, LAST_MODEL = "state.json", "last.keras"


@dataclass
class ResumeState:
    """Where an interrupted run stopped: its MLflow run, checkpoint directory and finished epochs."""

    run_id: str
    checkpoint_dir: Path
    epoch: int  # epochs finished
    best: float  # best value of train.checkpoint_monitor so far
    history: dict[str, list[float]]  # per-epoch metrics logged so far
    last_logs: dict[str, float]  # Keras metrics of the last finished epoch (state.json)
    budget_kind: str = ""  # param train.budget_kind: a minutes run logs its steps when it stops


def write_state(directory: Path, epoch: int, best: float, logs: dict[str, float],
                plan: list[list[int]] | None = None) -> None:
    """`state.json` {"epoch": finished epochs, "best": best monitored value so far, "logs": that epoch's Keras
    metrics, "plan": a minutes budget's revisions so far, `[[0, planned], [at_step, total], ...]`, when it has
    them}, replaced atomically so an interrupt mid-write leaves the previous epoch's state intact."""
    partial = directory / "state.partial.json"
    partial.write_text(json.dumps({"epoch": epoch, "best": best, "logs": logs, **({"plan": plan} if plan else {})}))
    os.replace(partial, directory / STATE_FILE)


def read_state(directory: Path) -> dict | None:
    """What `write_state` wrote, or None when the directory holds no resumable state (state and model)."""
    if not (directory / STATE_FILE).is_file() or not (directory / LAST_MODEL).is_file():
        return None
    return json.loads((directory / STATE_FILE).read_text())


def _override_keys(overrides: list[str]) -> list[str]:
    return [override_key(o) for o in overrides if not o.startswith("hydra")]


def _config_with(run_config: dict, cfg, keys: list[str]):
    """The logged config with the values that `keys` (command-line overrides) took in the composed `cfg`."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainAppConfig), run_config)
    for key in keys:
        value = OmegaConf.select(cfg, key.replace("/", "."))
        OmegaConf.update(merged, key.replace("/", "."), value, merge=False)
    return merged


def _run_or_fail(run_id: str, cfg, base_dir: Path, key: str):
    tracking.open_existing_store(cfg.tracking, base_dir)
    found = tracking.get_run(run_id)
    if found is None:
        raise ConfigError(f"{key} must name a run in {cfg.tracking.uri}. Received: {key}={run_id}")
    return found


def _logged_config(run_id: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="skinexp-config-") as scratch:
        return tracking.run_config(run_id, Path(scratch))


def _budget_kind(cfg):
    from skinexp.training.budget import check_budget

    return check_budget(cfg.train.budget)


def _steps_of_budget(cfg, run, state: dict | None = None) -> None:
    """A minutes budget becomes the steps the run trained to and the plan it followed: `state.json`'s (a resume
    keeps the plan it stopped with), else params `train.budget_plan` and `train.steps` (a rerun trains them, each
    step at the rate the run gave it, whatever the clock says now). Runs from before budgets were revised recorded
    `train.steps` alone."""
    if _budget_kind(cfg) != "minutes":
        return
    params = run.data.params
    revisions = (state or {}).get("plan") or json.loads(params.get("train.budget_plan") or "null")
    if revisions:
        cfg.train.budget.minutes = None
        cfg.train.budget.steps, cfg.train.budget.plan = int(revisions[-1][1]), revisions
    elif "train.steps" in params:
        cfg.train.budget.minutes = None
        cfg.train.budget.steps = int(params["train.steps"])


def resume_setup(cfg, overrides: list[str], base_dir: Path):
    """(config, ResumeState, run name) to continue `cfg.resume` from its last finished epoch."""
    run_id = cfg.resume
    found = _run_or_fail(run_id, cfg, base_dir, "resume")
    unsafe = [key for key in _override_keys(overrides) if key not in SAFE_ON_RESUME]
    if unsafe:
        raise ConfigError(f"resume continues with the run's own config; only {', '.join(SAFE_ON_RESUME[:4])} may "
                          f"change. Received: {unsafe[0]}")
    if found.info.status == "RUNNING" and tracking.process_alive(found):
        raise ConfigError(f"the run is still training (process {found.data.tags['skinexp.pid']}). "
                          f"Received: resume={run_id}")
    checkpoint_dir = Path(found.data.tags.get("output_dir", "")) / "checkpoints"
    state = read_state(checkpoint_dir)
    if state is None:
        raise ConfigError(f"the run has no resumable state at {checkpoint_dir}. Received: resume={run_id}")
    resumed = _config_with(_logged_config(run_id), cfg, [k for k in _override_keys(overrides) if k != "resume"])
    resumed.resume = run_id
    _steps_of_budget(resumed, found, state)
    if _budget_kind(resumed) is None and state["epoch"] >= resumed.train.epochs:
        raise ConfigError(f"the run already finished {state['epoch']} epochs; pass train.epochs above that. "
                          f"Received: train.epochs={resumed.train.epochs}")
    history = {k: v[:state["epoch"]] for k, v in tracking.metric_histories(run_id, list(LOGGED_METRICS)).items()}
    for key, value in state.get("logs", {}).items():
        if len(history.get(key, [])) < state["epoch"]:
            history.setdefault(key, []).append(value)
    resume = ResumeState(run_id=run_id, checkpoint_dir=checkpoint_dir, epoch=int(state["epoch"]),
                         best=float(state["best"]), history=history, last_logs=state.get("logs", {}),
                         budget_kind=found.data.params.get("train.budget_kind", ""))
    return resumed, resume, found.info.run_name


def rerun_setup(cfg, overrides: list[str], base_dir: Path):
    """(config, run name, tags) to train `cfg.rerun_of`'s logged config again, with any new overrides on top."""
    run_id = cfg.rerun_of
    found = _run_or_fail(run_id, cfg, base_dir, "rerun")
    keys = [k for k in _override_keys(overrides) if k not in ("rerun_of",)]
    rerun = _config_with(_logged_config(run_id), cfg, keys)
    rerun.rerun_of, rerun.resume = run_id, None
    rerun.tracking.run_name = None
    if not any(key.startswith("train.budget") for key in keys):
        _steps_of_budget(rerun, found)
    return rerun, f"{found.info.run_name} (rerun)", {"rerun_of": run_id}
