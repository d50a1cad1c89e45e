"""The MLflow store: where it is, whether it answers, the experiment; and URLs into its UI."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

import skinexp.tracking.retry as retry
from skinexp.config.checks import check_no_credentials
from skinexp.errors import TrackingError

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
DEFAULT_RETRY_SECONDS = 300.0  # for callers without a tracking config of their own (tracking.retry_seconds)
# The MLflow UI keeps a runs table's columns and order in a "shared view": an experiment tag
# `mlflow.sharedViewState.<key>` that the URL names with `viewStateShareKey=<key>`.
VIEW_KEY = "skinexp"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_STATE = json.dumps({
    "selectedColumns": ["attributes.`Created`", "attributes.`Duration`", "metrics.`best_val_iou`",
                        "metrics.`val_iou`", "metrics.`val_dice`"],
    "orderByKey": "metrics.`best_val_iou`", "orderByAsc": False,
})
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep CLI output to our own lines
# A new SQLite store announces its schema migrations on stderr; a user's first run should not read like a log.
for _logger in ("mlflow.store.db.utils", "alembic.runtime.migration"):
    logging.getLogger(_logger).setLevel(logging.WARNING)


def resolve_uri(uri: str, base_dir: Path, key: str = "tracking.uri") -> str:
    """Make a relative SQLite or file store absolute against `base_dir` (the directory the user ran from);
    ConfigError for a URI that carries a password (every command's store passes through here)."""
    check_no_credentials(uri, key)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base_dir / uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return (base_dir / uri).resolve().as_uri()
    return uri


def store_uri(uri: str, base_dir: Path, key: str = "tracking.uri") -> str:
    """`resolve_uri` for a tracking store: a SQLite database or a server. A folder (`mlruns`, `file://...`), MLflow's
    file store, is refused in one line: MLflow 3 keeps it in maintenance mode and raises on opening it."""
    resolved = resolve_uri(uri, base_dir, key)
    if resolved.startswith("file:"):
        raise TrackingError(f"{key} takes a SQLite database (sqlite:///runs/mlflow.db) or a tracking server "
                            f"(http://host:port), not a folder: MLflow 3 no longer opens its file store. "
                            f"Received: {key}={uri}")
    return resolved


def open_existing_store(tracking_cfg, base_dir: Path) -> None:
    """Point MLflow at a store that must already exist (to read runs back); TrackingError naming it otherwise."""
    uri = store_uri(tracking_cfg.uri, base_dir)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise TrackingError(f"no MLflow store there; train first or point tracking.uri at yours. "
                            f"Received: tracking.uri={tracking_cfg.uri}")
    prepare_store(tracking_cfg, base_dir)


def open_store_uri(uri: str, base_dir: Path, key: str) -> str:
    """Point MLflow at the store `uri` to read it (compare, runs); TrackingError when a local store is not there."""
    resolved = store_uri(uri, base_dir, key)
    if resolved.startswith("sqlite:///") and not Path(resolved[len("sqlite:///"):]).is_file():
        raise TrackingError(f"no MLflow store here; train first or pass {key}=. Received: {key}={uri}")
    if _is_remote(resolved):
        _remote_defaults()
        _check_reachable(resolved, key=key)
    retry.configure(resolved, 0)
    mlflow.set_tracking_uri(resolved)
    return resolved


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _remote_defaults() -> None:
    # MLflow's own retries off: `retry.call` alone decides how long a call waits for a server that is away, and
    # the check below fails within seconds rather than after MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def _check_reachable(uri: str, experiment: str = "", key: str = "tracking.uri") -> None:
    """The server answers /health, and accepts the login (MLFLOW_TRACKING_USERNAME / _PASSWORD) within seconds."""
    import requests

    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    auth = (username, password) if username and password else None
    base = uri.rstrip("/")
    try:
        requests.get(base + "/health", timeout=3).raise_for_status()
        # Any authenticated call: a server with logins answers 401 to a wrong or missing one (a 404 is fine).
        answer = requests.get(base + "/api/2.0/mlflow/experiments/get-by-name", auth=auth, timeout=5,
                              params={"experiment_name": experiment or "Default"})
    except requests.RequestException as error:
        reason = type(error).__name__
        raise TrackingError(f"{key} is unreachable ({reason}). Received: {key}={uri}") from None
    if answer.status_code in retry.REFUSED_STATUS:
        user = username or "(unset)"
        if answer.status_code == 401:
            why = "refused the login (HTTP 401: wrong or missing MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
        else:
            why = f"refused user {user} access to experiment {experiment or 'Default'} (HTTP 403: no permission)"
        raise TrackingError(f"the tracking server at {uri} {why}. Received: {key}={uri} with "
                            f"MLFLOW_TRACKING_USERNAME={user}")


def prepare_store(tracking_cfg, base_dir: Path) -> tuple[str, str]:
    """Point MLflow at the store, creating it and the experiment once; return (tracking_uri, experiment_id).

    A fresh SQLite store must be created by one process before parallel jobs write to it, so sweeps call
    this in the launching process first. The experiment is tagged as a model-training experiment so the
    MLflow 3 UI opens on its runs.
    """
    uri = store_uri(tracking_cfg.uri, base_dir)
    if _is_remote(uri):
        _remote_defaults()
        _check_reachable(uri, tracking_cfg.experiment)
    elif uri.startswith("sqlite:///"):
        db_path = Path(uri[len("sqlite:///"):])
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(f"cannot create the tracking store directory ({error.strerror}). "
                                f"Received: tracking.uri={tracking_cfg.uri}") from None
    retry.configure(uri, getattr(tracking_cfg, "retry_seconds", DEFAULT_RETRY_SECONDS))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(tracking_cfg.experiment)
        if experiment is None:
            artifact_location = None
            if not _is_remote(uri):
                artifact_location = (base_dir / tracking_cfg.artifact_root / tracking_cfg.experiment).resolve().as_uri()
            try:
                experiment_id = client.create_experiment(
                    tracking_cfg.experiment, artifact_location=artifact_location,
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, VIEW_TAG: VIEW_STATE})
            except mlflow.exceptions.MlflowException:
                # Another job created it between our lookup and create.
                experiment = client.get_experiment_by_name(tracking_cfg.experiment)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            for key, value in ((EXPERIMENT_KIND_TAG, EXPERIMENT_KIND), (VIEW_TAG, VIEW_STATE)):
                if experiment.tags.get(key) != value:
                    client.set_experiment_tag(experiment_id, key, value)
    except mlflow.exceptions.MlflowException as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"cannot use the tracking store: {first_line}. "
                            f"Received: tracking.uri={tracking_cfg.uri}") from None
    return uri, experiment_id


def runs_page_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow 3 UI, on its model-training (not GenAI) view, with the columns
    of skinexp's shared view (`VIEW_STATE`)."""
    return (f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={VIEW_KEY}")


def run_page_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's own page in the MLflow 3 UI (its overview, metrics and images)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def client() -> MlflowClient:
    return MlflowClient(mlflow.get_tracking_uri())
