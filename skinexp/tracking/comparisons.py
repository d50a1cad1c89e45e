"""What a comparison reads and writes: the training runs of sweeps or of an experiment, their per-image files,
and where the comparison itself is logged (the sweep's parent run, or a run of its own)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import mlflow

import skinexp.tracking.retry as retry
from skinexp.tracking.active import create_once, process_tags, retire_duplicates, source_tags
from skinexp.tracking.runs import SWEEP_TAG, child_runs, find_sweep
from skinexp.tracking.store import TrackingError, client

COMPARISON_TAG = "skinexp.comparison"


def sweep_runs(experiment_name: str, sweeps: list[str]) -> tuple[list, list]:
    """(the sweeps' parent runs, their child training runs) for sweep ids or names; TrackingError naming a miss."""
    parents, children = [], []
    for sweep in sweeps:
        parent = find_sweep(experiment_name, sweep)
        parents.append(parent)
        children += [run for run in child_runs(parent.info.run_id) if run.data.tags.get("skinexp.kind") != "evaluation"]
    return parents, children


def experiment_runs(experiment_name: str) -> list:
    """Every training run of the experiment: not sweep parents, evaluations or comparisons."""
    mlflow_client = client()
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise TrackingError(f"no such experiment in {mlflow.get_tracking_uri()}. "
                            f"Received: experiment={experiment_name}")
    runs = mlflow_client.search_runs([experiment.experiment_id], max_results=5000,
                                     order_by=["attributes.start_time ASC"])
    return [run for run in runs if run.data.tags.get(SWEEP_TAG) != "true" and COMPARISON_TAG not in run.data.tags
            and run.data.tags.get("skinexp.kind") != "evaluation"]


def artifact_bytes(run_id: str, path: str) -> Optional[bytes]:
    """The run's artifact at `path`, or None when it has none (runs from before it was logged)."""
    with tempfile.TemporaryDirectory(prefix="skinexp-compare-") as scratch:
        try:
            return Path(client().download_artifacts(run_id, path, scratch)).read_bytes()
        except (mlflow.exceptions.MlflowException, OSError):
            return None


def log_files(run_id: str, folder: Path, artifact_path: str) -> None:
    """Every file of `folder` into `artifact_path` of a run that need not be active."""
    retry.call(client().log_artifacts, run_id, str(folder), artifact_path, what="logging the comparison")


def start_comparison_run(experiment_id: str, name: str, compared: list[str]) -> str:
    """A FINISHED run that holds a comparison across sweeps or an experiment, naming the runs it compared."""
    mlflow_client = client()
    tags = {COMPARISON_TAG: "true", "skinexp.compared_runs": ",".join(compared)[:5000], **source_tags(),
            **process_tags()}
    # A creation token, as training runs carry: a retried creation finds the run the lost answer made.
    return create_once(experiment_id, lambda token: mlflow_client.create_run(
        experiment_id, run_name=name, tags={**tags, **token}).info.run_id, lambda run_id: run_id)


def end_run(run_id: str) -> None:
    retire_duplicates(run_id)
    retry.call(client().set_terminated, run_id, "FINISHED", what="logging the comparison")
