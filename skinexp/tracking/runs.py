"""Runs other than the active one: sweep parents and their children, and runs read back to evaluate, resume or rerun."""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Optional

import mlflow
from omegaconf import DictConfig, OmegaConf

import skinexp.tracking.retry as retry
from skinexp.tracking.active import create_once, flatten, log_metrics, process_tags, retire_duplicates, source_tags
from skinexp.tracking.store import TrackingError, client

PARENT_RUN_ENV = "SKINEXP_PARENT_RUN_ID"  # how sweep jobs find their parent run (MLFLOW_RUN_ID would resume it)
SWEEP_TAG = "skinexp.sweep"


def start_parent_run(experiment_id: str, run_name: str, overrides: list[str]) -> str:
    """A RUNNING parent run for a sweep, created without making it the active run of this process."""
    tags = {SWEEP_TAG: "true", "hydra_overrides": " ".join(overrides) or "(none)", **source_tags(), **process_tags()}
    return create_once(experiment_id, lambda token: client().create_run(
        experiment_id, run_name=run_name, tags={**tags, **token}).info.run_id, lambda run_id: run_id)


def child_runs(parent_run_id: str) -> list:
    experiment_id = retry.call(client().get_run, parent_run_id).info.experiment_id
    return retry.call(client().search_runs, [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                      max_results=5000, order_by=["attributes.start_time ASC"])


def finish_parent_run(parent_run_id: str, metrics: dict[str, float], tags: dict[str, str],
                      texts: dict[str, str], status: str = "FINISHED") -> None:
    mlflow_client = client()
    timestamp = int(time.time() * 1000)  # fixed, so a retried metric is the same metric
    for key, value in metrics.items():
        retry.call(mlflow_client.log_metric, parent_run_id, key, float(value), timestamp=timestamp)
    for key, value in tags.items():
        retry.call(mlflow_client.set_tag, parent_run_id, key, str(value))
    for artifact_file, text in texts.items():
        retry.call(mlflow_client.log_text, parent_run_id, text, artifact_file)
    retire_duplicates(parent_run_id)
    retry.call(mlflow_client.set_terminated, parent_run_id, status)


def end_parent_run(parent_run_id: str, status: str, reason: str) -> None:
    """End a sweep's parent run that did not reach its end, saying why."""
    mlflow_client = client()
    retry.call(mlflow_client.set_tag, parent_run_id, "failure_reason", reason[:4000])
    retry.call(mlflow_client.set_terminated, parent_run_id, status)


def record_failed_run(experiment_id: str, run_name: str, parent_run_id: Optional[str], reason: str,
                      cfg: Optional[DictConfig] = None) -> str:
    """A FAILED run for a sweep job that failed before its training run could start (bad config or data)."""
    mlflow_client = client()
    tags = {"failure_reason": reason[:4000]}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = create_once(experiment_id, lambda token: mlflow_client.create_run(
        experiment_id, run_name=run_name, tags={**tags, **token}).info.run_id, lambda found: found)
    if cfg is not None:
        with contextlib.suppress(Exception):
            params = [mlflow.entities.Param(k, str(v)) for k, v in flatten(cfg).items()]
            retry.call(mlflow_client.log_batch, run_id, params=params)
    retry.call(mlflow_client.set_terminated, run_id, "FAILED")
    return run_id


def find_sweep(experiment_name: str, sweep: Optional[str]):
    """A sweep's parent run by id or name; the latest sweep of the experiment when `sweep` is None."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise TrackingError(f"no such experiment in {mlflow.get_tracking_uri()}. "
                            f"Received: experiment={experiment_name}")
    filters = [f"tags.`{SWEEP_TAG}` = 'true'"]
    if sweep:
        try:
            return mlflow_client.get_run(sweep)
        except mlflow.exceptions.MlflowException:
            filters.append(f"attributes.run_name = '{sweep}'")
    runs = mlflow_client.search_runs([experiment.experiment_id], " and ".join(filters), max_results=1,
                                     order_by=["attributes.start_time DESC"])
    if not runs:
        raise TrackingError(f"no sweep found in experiment {experiment_name}. Received: sweep={sweep}")
    return runs[0]


def get_run(run_id: str):
    """The run, or None when the store has no such run."""
    try:
        return retry.call(client().get_run, run_id)
    except mlflow.exceptions.MlflowException:
        return None


def download(run_id: str, artifact_path: str, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    return Path(retry.call(client().download_artifacts, run_id, artifact_path, str(destination)))


def run_config(run_id: str, destination: Path) -> dict:
    """The run's resolved config (its config/config.yaml artifact) as a plain dict."""
    path = download(run_id, "config/config.yaml", destination)
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def log_run_tag(run_id: str, key: str, value: str) -> None:
    retry.call(client().set_tag, run_id, key, value)


def metric_histories(run_id: str, names: list[str]) -> dict[str, list[float]]:
    """Per-epoch values (ordered by step) of the named metrics logged so far."""
    mlflow_client = client()
    histories = {}
    for name in names:
        values = sorted(retry.call(mlflow_client.get_metric_history, run_id, name), key=lambda m: m.step)
        if values:
            histories[name] = [m.value for m in values]
    return histories


def running_runs(experiment_name: Optional[str] = None) -> list:
    """All RUNNING runs of the store (or of one experiment)."""
    mlflow_client = client()
    experiments = [e.experiment_id for e in mlflow_client.search_experiments()
                   if experiment_name is None or e.name == experiment_name]
    if not experiments:
        return []
    return mlflow_client.search_runs(experiments, "attributes.status = 'RUNNING'", max_results=5000)


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


def stale_runs(experiment_name: Optional[str] = None) -> list:
    """RUNNING runs (of one experiment, or all) whose process on this host is gone."""
    return [run for run in running_runs(experiment_name) if process_alive(run) is False]


def mark_killed(run_id: str, reason: str) -> None:
    mlflow_client = client()
    mlflow_client.set_tag(run_id, "failure_reason", reason)
    mlflow_client.set_terminated(run_id, "KILLED")


def log_missing_epoch(epoch: int, logs: dict[str, float]) -> None:
    """Log the last finished epoch's metrics if the process died after saving its state but before logging."""
    run_id = mlflow.active_run().info.run_id
    if logs and not any(m.step == epoch for m in retry.call(client().get_metric_history, run_id, "val_loss")):
        log_metrics(logs, step=epoch)
