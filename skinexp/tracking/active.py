"""The active run: starting and always ending it, and what a run logs (config, metrics, images, artifacts, model)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional, TypeVar

import mlflow
from omegaconf import DictConfig, OmegaConf

import skinexp.tracking.retry as retry
from skinexp.tracking.store import client

SOURCE_DIR = Path(__file__).resolve().parents[2]
START_TAG = "skinexp.start_token"  # finds a run whose creation reached the server before the server went away
T = TypeVar("T")


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

    tags = {"skinexp.pid": str(os.getpid()), "skinexp.host": socket.gethostname()}
    if os.environ.get("SLURM_JOB_ID"):  # a Slurm job: `scancel <slurm_job_id>`, `sacct -j <slurm_job_id>`
        tags["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return tags


def create_once(experiment_id: str, create: Callable[[dict[str, str]], T], found: Callable[[str], T]) -> T:
    """`create(tags)` (which creates a run carrying `tags`) through `retry.call`, without creating it twice: when an
    attempt fails, the next looks for a run carrying the same token first and hands its id to `found`.

    An attempt that timed out may still be committed later (a slow server, not a lost one): after a failed attempt
    the run is remembered, and `retire_duplicates` (at creation and when the run ends) deletes any other run that
    carries its token, so the experiment shows one run."""
    token = {START_TAG: uuid.uuid4().hex}
    attempts: list[bool] = []

    def attempt() -> T:
        if attempts:
            runs = client().search_runs([experiment_id], f"tags.`{START_TAG}` = '{token[START_TAG]}'", max_results=1)
            if runs:
                return found(runs[0].info.run_id)
        attempts.append(True)
        return create(token)

    result = retry.call(attempt, what=f"creating a run in experiment {experiment_id}")
    if len(attempts) > 1:
        run_id = result if isinstance(result, str) else result.info.run_id
        _uncertain[run_id] = (experiment_id, token[START_TAG])
        retire_duplicates(run_id)
    return result


_uncertain: dict[str, tuple[str, str]] = {}  # run id -> (experiment, token) of runs whose creation was retried


def retire_duplicates(run_id: str) -> int:
    """Delete the runs a retried creation of `run_id` made besides it (they carry its token); how many. Runs created
    in one attempt have none and cost no call."""
    if run_id not in _uncertain:
        return 0
    experiment_id, token = _uncertain[run_id]
    mlflow_client = client()
    twins = retry.call(mlflow_client.search_runs, [experiment_id], f"tags.`{START_TAG}` = '{token}'",
                       max_results=50, what="looking for a run created twice")
    retired = 0
    for twin in twins:
        if twin.info.run_id != run_id:
            retry.call(mlflow_client.set_tag, twin.info.run_id, "skinexp.duplicate_of", run_id)
            retry.call(mlflow_client.set_terminated, twin.info.run_id, "KILLED")
            retry.call(mlflow_client.delete_run, twin.info.run_id, what="deleting a run created twice")
            retired += 1
    return retired


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
    for package in ("tensorflow", "tensorflow-cpu", "jax", "jaxlib", "keras", "hydra-core", "mlflow",
                    "numpy"):
        try:
            tags[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if "version.tensorflow" not in tags and "version.tensorflow-cpu" in tags:
        tags["version.tensorflow"] = tags["version.tensorflow-cpu"]
    return tags


@contextlib.contextmanager
def run(experiment_id: str, run_name: str, *, parent_run_id: Optional[str] = None,
        resume_run_id: Optional[str] = None, tags: Optional[dict[str, str]] = None,
        console_log: Optional[Path] = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run that always ends: FINISHED, KILLED on interrupt, FAILED (with `failure_reason`) on error.

    `console_log`, a file that holds what the command printed, is logged as `logs/<name>` at the end, whatever
    the ending.
    """
    if resume_run_id:
        active = retry.call(mlflow.start_run, run_id=resume_run_id, what="resuming the run")
        set_tags(process_tags())
    else:
        all_tags = {**process_tags(), **(tags or {})}
        active = create_once(experiment_id, lambda token: mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, parent_run_id=parent_run_id, tags={**all_tags, **token}),
            lambda run_id: mlflow.start_run(run_id=run_id))
    try:
        yield active
    except KeyboardInterrupt as error:
        error.run_id = active.info.run_id
        _end(active, "KILLED", "interrupted", console_log)
        raise
    except BaseException as error:
        error.run_id = active.info.run_id  # tells callers the failure is already recorded on this run
        status = "KILLED" if isinstance(error, SystemExit) and error.code in (130, 143) else "FAILED"
        _end(active, status, f"{type(error).__name__}: {error}", console_log)
        raise
    else:
        _log_console(console_log)
        _finish("FINISHED")


def _log_console(console_log: Optional[Path]) -> None:
    if console_log is not None and console_log.is_file():
        with contextlib.suppress(Exception):  # the log must never be what fails a run
            mlflow.log_artifact(str(console_log), "logs")


def _end(active: mlflow.ActiveRun, status: str, reason: str, console_log: Optional[Path] = None) -> None:
    with contextlib.suppress(Exception):
        if not retry.server_gone():
            retry.call(mlflow.set_tag, "failure_reason", reason[:4000])
    _log_console(console_log)
    # The error being handled is what the user must see; a server that is gone cannot record this ending.
    with contextlib.suppress(Exception):
        _finish(status)


def _finish(status: str) -> None:
    """End the active run with `status`: off this process's run stack at once, on the server with retries."""
    run_id = mlflow.active_run().info.run_id
    ended: list[bool] = []
    if not retry.server_gone():
        with contextlib.suppress(Exception):  # a twin a slow server committed after the run began
            retire_duplicates(run_id)

    def end() -> None:
        if not ended:
            ended.append(True)
            mlflow.end_run(status)  # pops the run first, then tells the server
        else:
            client().set_terminated(run_id, status)

    if retry.server_gone():
        end()
    else:
        retry.call(end, what="ending the run")


# Every call below goes through `retry.call` with a fixed payload, so a server that restarts meanwhile loses nothing
# and records nothing twice (metrics keep their timestamp, which the server deduplicates on).
def log_config(cfg: DictConfig, overrides: list[str], output_dir: Optional[Path]) -> None:
    retry.call(mlflow.log_params, flatten(cfg), what="logging params")
    log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    log_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))), "config/overrides.yaml")
    set_tags({"hydra_overrides": " ".join(overrides) or "(none)"})
    if output_dir is not None:
        set_tags({"output_dir": str(output_dir)})


def log_params(params: dict[str, Any]) -> None:
    retry.call(mlflow.log_params, {key: str(value) for key, value in params.items()}, what="logging params")


def log_metrics(metrics: dict[str, float], step: int) -> None:
    retry.call(mlflow.log_metrics, {key: float(value) for key, value in metrics.items()}, step=step,
               timestamp=int(time.time() * 1000), what="logging metrics")


def log_image(image, key: str, step: int) -> None:
    """An image series the UI shows with a step slider, as `mlflow.log_image(key=, step=)` lays it out
    (`images/<key>+step+<step>+timestamp+<ms>+<id>.png` and a `+compressed.webp` preview), but under names fixed by
    the run, key and step (MLflow draws a fresh uuid per call): a retried upload replaces its own file instead of
    adding a second image at that step."""
    import tempfile

    import numpy as np
    from mlflow.tracking.multimedia import compress_image_size, convert_to_pil_image
    from PIL import Image

    run_id = mlflow.active_run().info.run_id
    picture = image if isinstance(image, Image.Image) else convert_to_pil_image(np.asarray(image))
    fixed_id = uuid.uuid5(uuid.NAMESPACE_URL, f"skinexp:{run_id}/{key}/{step}")
    name = f"{key.replace('/', '~')}+step+{step}+timestamp+{int(time.time() * 1000)}+{fixed_id}"
    with tempfile.TemporaryDirectory(prefix="skinexp-image-") as scratch:
        picture.save(Path(scratch) / f"{name}.png")
        compress_image_size(picture).save(Path(scratch) / f"{name}+compressed.webp")
        for file in (f"{name}.png", f"{name}+compressed.webp"):
            retry.call(mlflow.log_artifact, str(Path(scratch) / file), "images", what="logging an image")
    set_tags({"mlflow.loggedImages": True})


def log_figure(figure, artifact_file: str) -> None:
    retry.call(mlflow.log_figure, figure, artifact_file, what="logging a figure")


def log_artifact(path: Path, artifact_path: Optional[str] = None) -> None:
    retry.call(mlflow.log_artifact, str(path), artifact_path, what="logging an artifact")


def log_text(text: str, artifact_file: str) -> None:
    retry.call(mlflow.log_text, text, artifact_file, what="logging an artifact")


def log_bytes(data: bytes, artifact_file: str) -> None:
    """A binary artifact at `artifact_file` (folder/name) of the active run."""
    import tempfile

    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory(prefix="skinexp-artifact-") as scratch:
        path = Path(scratch) / name
        path.write_bytes(data)
        retry.call(mlflow.log_artifact, str(path), folder or None, what="logging an artifact")


def set_tags(tags: dict[str, Any]) -> None:
    retry.call(mlflow.set_tags, {key: str(value) for key, value in tags.items()}, what="setting tags")


def log_keras_model(model, sample_images, sample_predictions) -> None:
    """Log an MLflow model (MLflow's Keras 3 flavor, a `.keras` file any backend loads; linked to the run) with an
    input/output signature."""
    from importlib import metadata

    from mlflow.models import infer_signature

    signature = infer_signature(sample_images, sample_predictions)
    requirements = [f"{name}=={metadata.version(name)}" for name in ("keras", "mlflow", *backend_packages())]
    log_model_once(mlflow.keras.log_model, "model", model, signature=signature, pip_requirements=requirements)


def log_model_once(log: Callable[..., Any], name: str, *args, **kwargs) -> Any:
    """`log(*args, name=name, **kwargs)` (an MLflow flavor's `log_model`) into the active run through `retry.call`,
    leaving one logged model of that name: an attempt after a failed one first looks for the model the failed one
    created. A READY one was logged whole (only the answer was lost) and is the result; one left PENDING or FAILED
    (its upload cut short) is deleted before the model is logged again. (MLflow's `model_id=` cannot finish it: the
    run's output link it adds again is refused as a duplicate.)"""
    from mlflow.entities import LoggedModelStatus

    active = mlflow.active_run()
    attempts: list[bool] = []

    def attempt() -> Any:
        if attempts:
            mlflow_client = client()
            earlier = mlflow_client.search_logged_models(
                [active.info.experiment_id], f"source_run_id = '{active.info.run_id}' AND name = '{name}'")
            for model in earlier:
                if model.status == LoggedModelStatus.READY:
                    return model
            for model in earlier:
                mlflow_client.delete_logged_model(model.model_id)
        attempts.append(True)
        return log(*args, name=name, **kwargs)

    return retry.call(attempt, what=f"logging the {name} model")


def backend_packages() -> list[str]:
    """The installed packages of the backend Keras runs on (a logged model's requirements)."""
    import keras

    if keras.backend.backend() == "jax":
        return ["jax", "jaxlib"]
    return ["tensorflow-cpu" if distribution_installed("tensorflow-cpu") else "tensorflow"]


def distribution_installed(package: str) -> bool:
    """Whether the distribution `package` is installed (for a logged model's pip requirements)."""
    from importlib import metadata

    try:
        metadata.version(package)
        return True
    except metadata.PackageNotFoundError:
        return False
