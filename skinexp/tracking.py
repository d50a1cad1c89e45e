"""The only module that talks to MLflow: stores, experiments, runs, params, metrics, images, artifacts."""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import mlflow
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
PARENT_RUN_ENV = "SKINEXP_PARENT_RUN_ID"
SOURCE_DIR = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep CLI output to our own lines


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the CLI prints it as one line and exits with status 2."""


def resolve_uri(uri: str, base_dir: Path) -> str:
    """Make a relative SQLite or file store absolute against `base_dir` (the directory the user ran from)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str((base_dir / uri[len("sqlite:///"):]).resolve())
    if "://" not in uri:
        return (base_dir / uri).resolve().as_uri()
    return uri


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _check_reachable(uri: str) -> None:
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=3).raise_for_status()
    except requests.RequestException as error:
        reason = type(error).__name__
        raise TrackingError(f"tracking.uri is unreachable ({reason}). Received: tracking.uri={uri}") from None


def prepare_store(tracking_cfg, base_dir: Path) -> tuple[str, str]:
    """Point MLflow at the store, creating it and the experiment once; return (tracking_uri, experiment_id).

    A fresh SQLite store must be created by one process before parallel jobs write to it, so sweeps call
    this in the launching process first. The experiment is tagged as a model-training experiment so the
    MLflow 3 UI opens on its runs.
    """
    uri = resolve_uri(tracking_cfg.uri, base_dir)
    if _is_remote(uri):
        # Fail within seconds rather than after MLflow's minutes of retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        _check_reachable(uri)
    elif uri.startswith("sqlite:///"):
        db_path = Path(uri[len("sqlite:///"):])
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrackingError(f"cannot create the tracking store directory ({error.strerror}). "
                                f"Received: tracking.uri={tracking_cfg.uri}") from None
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
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except mlflow.exceptions.MlflowException:
                # Another job created it between our lookup and create.
                experiment = client.get_experiment_by_name(tracking_cfg.experiment)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            experiment_id = experiment.experiment_id
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except mlflow.exceptions.MlflowException as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"cannot use the tracking store: {first_line}. "
                            f"Received: tracking.uri={tracking_cfg.uri}") from None
    return uri, experiment_id


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """Resolved config as {'model.filters': 16, ...}."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def process_tags() -> dict[str, str]:
    """Which process owns a RUNNING run, so `runs --stale` can tell runs whose process is gone."""
    import socket

    return {"skinexp.pid": str(os.getpid()), "skinexp.host": socket.gethostname()}


def source_tags() -> dict[str, str]:
    """git_commit (+ git_dirty) of the skinexp source tree and the versions of the stack."""
    from importlib import metadata

    tags = {"git_commit": "unknown", "git_dirty": "unknown"}
    try:
        tags["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=SOURCE_DIR, capture_output=True,
                                            text=True, timeout=5, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=SOURCE_DIR,
                                capture_output=True, text=True, timeout=5, check=True).stdout
        tags["git_dirty"] = str(bool(status.strip())).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    for package in ("tensorflow", "tensorflow-cpu", "keras", "hydra-core", "mlflow", "numpy"):
        try:
            tags[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if "version.tensorflow" not in tags and "version.tensorflow-cpu" in tags:
        tags["version.tensorflow"] = tags["version.tensorflow-cpu"]
    return tags


@contextlib.contextmanager
def run(experiment_id: str, run_name: str, *, parent_run_id: Optional[str] = None,
        resume_run_id: Optional[str] = None, tags: Optional[dict[str, str]] = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED, KILLED on interrupt, FAILED (with `failure_reason`) on error."""
    if resume_run_id:
        active = mlflow.start_run(run_id=resume_run_id)
        mlflow.set_tags(process_tags())
    else:
        active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id,
                                  tags={**process_tags(), **(tags or {})})
    try:
        yield active
    except KeyboardInterrupt as error:
        error.run_id = active.info.run_id
        _end(active, "KILLED", "interrupted")
        raise
    except BaseException as error:
        error.run_id = active.info.run_id  # tells callers the failure is already recorded on this run
        status = "KILLED" if isinstance(error, SystemExit) and error.code in (130, 143) else "FAILED"
        _end(active, status, f"{type(error).__name__}: {error}")
        raise
    else:
        mlflow.end_run("FINISHED")


def _end(active: mlflow.ActiveRun, status: str, reason: str) -> None:
    with contextlib.suppress(Exception):
        mlflow.set_tag("failure_reason", reason[:4000])
    mlflow.end_run(status)


def log_config(cfg: DictConfig, overrides: list[str], output_dir: Optional[Path]) -> None:
    mlflow.log_params(flatten(cfg))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    mlflow.log_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))), "config/overrides.yaml")
    mlflow.set_tag("hydra_overrides", " ".join(overrides) or "(none)")
    if output_dir is not None:
        mlflow.set_tag("output_dir", str(output_dir))


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params({key: str(value) for key, value in params.items()})


def log_metrics(metrics: dict[str, float], step: int) -> None:
    mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)


def log_image(image, key: str, step: int) -> None:
    """An image series the UI shows with a step slider."""
    mlflow.log_image(image, key=key, step=step)


def log_figure(figure, artifact_file: str) -> None:
    mlflow.log_figure(figure, artifact_file)


def log_artifact(path: Path, artifact_path: Optional[str] = None) -> None:
    mlflow.log_artifact(str(path), artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({key: str(value) for key, value in tags.items()})


def log_keras_model(model, sample_images, sample_predictions) -> None:
    """Log an MLflow model (logged model linked to the run) with an input/output signature."""
    from importlib import metadata

    from mlflow.models import infer_signature

    signature = infer_signature(sample_images, sample_predictions)
    tensorflow = "tensorflow-cpu" if _has("tensorflow-cpu") else "tensorflow"
    requirements = [f"{name}=={metadata.version(name)}" for name in ("keras", "mlflow", tensorflow)]
    mlflow.tensorflow.log_model(model, name="model", signature=signature, pip_requirements=requirements)


def _has(package: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(package)
        return True
    except metadata.PackageNotFoundError:
        return False


def runs_page_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow 3 UI, on its model-training (not GenAI) view."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


# --- sweeps: parent runs, their children, failed jobs -------------------------------------------------------

SWEEP_TAG = "skinexp.sweep"


def client() -> MlflowClient:
    return MlflowClient(mlflow.get_tracking_uri())


def start_parent_run(experiment_id: str, run_name: str, overrides: list[str]) -> str:
    """A RUNNING parent run for a sweep, created without making it the active run of this process."""
    parent = client().create_run(experiment_id, run_name=run_name, tags={
        SWEEP_TAG: "true", "hydra_overrides": " ".join(overrides) or "(none)", **source_tags(), **process_tags()})
    return parent.info.run_id


def child_runs(parent_run_id: str) -> list:
    experiment_id = client().get_run(parent_run_id).info.experiment_id
    return client().search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                max_results=5000, order_by=["attributes.start_time ASC"])


def finish_parent_run(parent_run_id: str, metrics: dict[str, float], tags: dict[str, str],
                      texts: dict[str, str], status: str = "FINISHED") -> None:
    mlflow_client = client()
    for key, value in metrics.items():
        mlflow_client.log_metric(parent_run_id, key, float(value))
    for key, value in tags.items():
        mlflow_client.set_tag(parent_run_id, key, str(value))
    for artifact_file, text in texts.items():
        mlflow_client.log_text(parent_run_id, text, artifact_file)
    mlflow_client.set_terminated(parent_run_id, status)


def record_failed_run(experiment_id: str, run_name: str, parent_run_id: Optional[str], reason: str,
                      cfg: Optional[DictConfig] = None) -> str:
    """A FAILED run for a sweep job that failed before its training run could start (bad config or data)."""
    mlflow_client = client()
    tags = {"failure_reason": reason[:4000]}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    failed = mlflow_client.create_run(experiment_id, run_name=run_name, tags=tags)
    if cfg is not None:
        with contextlib.suppress(Exception):
            params = [mlflow.entities.Param(k, str(v)) for k, v in flatten(cfg).items()]
            mlflow_client.log_batch(failed.info.run_id, params=params)
    mlflow_client.set_terminated(failed.info.run_id, "FAILED")
    return failed.info.run_id


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


# --- reading runs back (evaluate, predict, rerun) -------------------------------------------------------------

def get_run(run_id: str):
    """The run, or None when the store has no such run."""
    try:
        return client().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None


def download(run_id: str, artifact_path: str, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    return Path(client().download_artifacts(run_id, artifact_path, str(destination)))


def run_config(run_id: str, destination: Path) -> dict:
    """The run's resolved config (its config/config.yaml artifact) as a plain dict."""
    path = download(run_id, "config/config.yaml", destination)
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def log_run_tag(run_id: str, key: str, value: str) -> None:
    client().set_tag(run_id, key, value)


def metric_histories(run_id: str, names: list[str]) -> dict[str, list[float]]:
    """Per-epoch values (ordered by step) of the named metrics logged so far."""
    mlflow_client = client()
    histories = {}
    for name in names:
        values = sorted(mlflow_client.get_metric_history(run_id, name), key=lambda m: m.step)
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


def mark_killed(run_id: str, reason: str) -> None:
    mlflow_client = client()
    mlflow_client.set_tag(run_id, "failure_reason", reason)
    mlflow_client.set_terminated(run_id, "KILLED")


def log_missing_epoch(epoch: int, logs: dict[str, float]) -> None:
    """Log the last finished epoch's metrics if the process died after saving its state but before logging."""
    run_id = mlflow.active_run().info.run_id
    if logs and not any(m.step == epoch for m in client().get_metric_history(run_id, "val_loss")):
        log_metrics(logs, step=epoch)
