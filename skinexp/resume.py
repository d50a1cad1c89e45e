"""Continuing and repeating logged runs: `train resume=<run id>`, `rerun <run id>`, `runs --stale [--fix]`."""
from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from skinexp import tracking
from skinexp.config import ConfigError, TrainAppConfig

# What may change when a run continues: how long and how verbosely, and where its store is.
SAFE_ON_RESUME = ("train.epochs", "train.verbose", "train.sample_every", "train.early_stopping", "resume",
                  "tracking.uri", "tracking.experiment", "tracking.artifact_root")
LOGGED_METRICS = ("loss", "accuracy", "iou", "miou", "dice", "val_loss", "val_accuracy", "val_iou", "val_miou",
                  "val_dice", "images_per_sec", "epoch_seconds", "learning_rate")


def _override_keys(overrides: list[str]) -> list[str]:
    return [o.lstrip("+~").partition("=")[0] for o in overrides if not o.startswith("hydra")]


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


def process_alive(run) -> Optional[bool]:
    """Whether the process that owns a RUNNING run is alive: None when it ran elsewhere or recorded none."""
    tags = run.data.tags
    if "skinexp.pid" not in tags or tags.get("skinexp.host") != socket.gethostname():
        return None
    pid = int(tags["skinexp.pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a recycled pid belongs to some other program
        return b"skinexp" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def resume_setup(cfg, overrides: list[str], base_dir: Path):
    """(config, ResumeState, run name) to continue `cfg.resume` from its last finished epoch."""
    from skinexp.train import ResumeState

    run_id = cfg.resume
    found = _run_or_fail(run_id, cfg, base_dir, "resume")
    unsafe = [key for key in _override_keys(overrides) if key not in SAFE_ON_RESUME]
    if unsafe:
        raise ConfigError(f"resume continues with the run's own config; only {', '.join(SAFE_ON_RESUME[:4])} may "
                          f"change. Received: {unsafe[0]}")
    if found.info.status == "RUNNING" and process_alive(found):
        raise ConfigError(f"the run is still training (process {found.data.tags['skinexp.pid']}). "
                          f"Received: resume={run_id}")
    checkpoint_dir = Path(found.data.tags.get("output_dir", "")) / "checkpoints"
    state_file = checkpoint_dir / "state.json"
    if not state_file.is_file() or not (checkpoint_dir / "last.keras").is_file():
        raise ConfigError(f"the run has no resumable state at {checkpoint_dir}. Received: resume={run_id}")
    state = json.loads(state_file.read_text())
    resumed = _config_with(_logged_config(run_id), cfg, [k for k in _override_keys(overrides) if k != "resume"])
    resumed.resume = run_id
    if state["epoch"] >= resumed.train.epochs:
        raise ConfigError(f"the run already finished {state['epoch']} epochs; pass train.epochs above that. "
                          f"Received: train.epochs={resumed.train.epochs}")
    history = {k: v[:state["epoch"]] for k, v in tracking.metric_histories(run_id, list(LOGGED_METRICS)).items()}
    for key, value in state.get("logs", {}).items():
        if len(history.get(key, [])) < state["epoch"]:
            history.setdefault(key, []).append(value)
    resume = ResumeState(run_id=run_id, checkpoint_dir=checkpoint_dir, epoch=int(state["epoch"]),
                         best=float(state["best"]), history=history, last_logs=state.get("logs", {}))
    return resumed, resume, found.info.run_name


def rerun_setup(cfg, overrides: list[str], base_dir: Path):
    """(config, run name, tags) to train `cfg.rerun_of`'s logged config again, with any new overrides on top."""
    run_id = cfg.rerun_of
    found = _run_or_fail(run_id, cfg, base_dir, "rerun")
    keys = [k for k in _override_keys(overrides) if k not in ("rerun_of",)]
    rerun = _config_with(_logged_config(run_id), cfg, keys)
    rerun.rerun_of, rerun.resume = run_id, None
    rerun.tracking.run_name = None
    return rerun, f"{found.info.run_name} (rerun)", {"rerun_of": run_id}


def runs_command(args: list[str]) -> int:
    """`python -m skinexp runs --stale [--fix] [uri=...] [experiment=...]`."""
    from skinexp.cli import fail, parse_options

    if {"-h", "--help"} & set(args):
        print("usage: python -m skinexp runs --stale [--fix] [uri=sqlite:///runs/mlflow.db] [experiment=...]")
        return 0
    flags = {a for a in args if a.startswith("--")}
    if not flags <= {"--stale", "--fix"} or "--stale" not in flags:
        fail(f"runs takes --stale [--fix] [uri=...] [experiment=...]. Received: {' '.join(args) or '(nothing)'}")
    options = parse_options("runs", [a for a in args if not a.startswith("--")],
                            {"uri": "sqlite:///runs/mlflow.db", "experiment": ""})
    uri = tracking.resolve_uri(options["uri"], Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        fail(f"no MLflow store here. Received: uri={options['uri']}")
    import mlflow

    mlflow.set_tracking_uri(uri)
    stale = [run for run in tracking.running_runs(options["experiment"] or None) if process_alive(run) is False]
    for run in stale:
        print(f"{run.info.run_id}  {run.info.run_name}  started {run.info.start_time}  process "
              f"{run.data.tags.get('skinexp.pid')} is gone")
        if "--fix" in flags:
            tracking.mark_killed(run.info.run_id, "process gone (marked by `runs --stale --fix`)")
    verb = "marked KILLED" if "--fix" in flags else "left RUNNING by a process that is gone"
    print(f"skinexp: {len(stale)} runs {verb}" + ("" if "--fix" in flags or not stale else "; --fix marks them KILLED"))
    return 0
