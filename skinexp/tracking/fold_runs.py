"""The runs behind a fold ensemble: whether a run is a sweep's parent, and the training runs nested under it."""
from __future__ import annotations

from skinexp.tracking.runs import SWEEP_TAG, child_runs


def is_sweep(run) -> bool:
    """Whether `run` (an mlflow Run) is the parent run of a sweep."""
    return run.data.tags.get(SWEEP_TAG) == "true"


def training_children(parent_run_id: str) -> list:
    """The sweep's child training runs, any status, oldest first: not the evaluations nested under it since."""
    return [run for run in child_runs(parent_run_id) if run.data.tags.get("skinexp.kind") != "evaluation"]
