"""Models of runs: the `segmenter` pyfunc logged beside the Keras model, dataset lineage (`mlflow.log_input`),
and the model registry (versions, aliases, `models:/<name>@<alias>` and `models:/<name>/<version>`)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag

import skinexp.tracking.retry as retry
from skinexp.errors import ConfigError, TrackingError
from skinexp.tracking.active import backend_packages, distribution_installed, log_model_once
from skinexp.tracking.store import client

SEGMENTER = "segmenter"  # the logged model's name: image files in, mask PNGs out
TENSOR_MODEL = "model"  # the Keras model: float images (N, S, S, 3) in, probabilities out
SEGMENTER_CODE = Path(__file__).with_name("segmenter.py")
CONTEXT_TAG = "mlflow.data.context"
CONTEXTS = {"train": "training", "val": "validation", "all": "evaluation"}  # split names as MLflow contexts


def log_segmenter(checkpoint: Path, threshold: float, keep_largest: bool = False) -> None:
    """Log the `segmenter` pyfunc (see `skinexp.tracking.segmenter`) into the active run, carrying the
    checkpoint `checkpoint` and the run's threshold and post-processing."""
    from importlib import metadata

    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "image")]),
                               outputs=Schema([ColSpec("string", "mask"), ColSpec("double", "lesion_fraction")]))
    packages = ["mlflow", "keras", "numpy", "pillow", "scipy", "pandas", *backend_packages()]
    requirements = [f"{name}=={metadata.version(name)}" for name in packages if distribution_installed(name)]
    with warnings.catch_warnings():  # MLflow's advice to log an input example: the signature says it all
        warnings.filterwarnings("ignore", message=r"(?s).*input example", category=UserWarning)
        log_model_once(mlflow.pyfunc.log_model, SEGMENTER, python_model=str(SEGMENTER_CODE),
                       artifacts={"keras_model": str(checkpoint)}, signature=signature, pip_requirements=requirements,
                       model_config={"threshold": float(threshold), "keep_largest": bool(keep_largest)})


def dataset_source(dataset_cfg) -> str:
    """Where the data came from: the dataset root, or `synthetic(seed, n, size)`."""
    if dataset_cfg.root:
        return str(Path(str(dataset_cfg.root)).expanduser().resolve())
    return f"synthetic(seed={dataset_cfg.seed}, n={dataset_cfg.num_samples}, size={dataset_cfg.image_size})"


def log_dataset_inputs(run_id: str, dataset_cfg, fingerprint: str, splits: dict) -> None:
    """One MLflow dataset input per split: {context (training, validation, test, ...): split or None}.

    Each is named `<dataset>/<context>`, digested with skinexp's dataset fingerprint (equal data, equal digest)
    and sourced from `dataset_source`, so the runs table's dataset column and filters work.
    """
    source = dataset_source(dataset_cfg)
    source_type = "local" if dataset_cfg.root else "synthetic"
    inputs = []
    for context, split in splits.items():
        if split is None:
            continue
        context = CONTEXTS.get(context, context)
        shape = list(split.images.shape)
        dataset = Dataset(name=f"{str(dataset_cfg.name)}/{context}", digest=fingerprint, source_type=source_type,
                          source=json.dumps({"uri": source}),
                          schema=json.dumps({"images": f"uint8 {shape}", "masks": f"uint8 {list(split.masks.shape)}"}),
                          profile=json.dumps({"num_rows": shape[0], "image_size": shape[1]}))
        inputs.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, context)]))
    if inputs:
        log_inputs(run_id, inputs)


DATASET_RACE_ATTEMPTS = 5


def log_inputs(run_id: str, inputs: list[DatasetInput]) -> None:
    """`MlflowClient.log_inputs`, again when a parallel job won the race to create the same dataset.

    MLflow's SQL store looks each dataset up and inserts the missing ones in one transaction, so two jobs of a
    parallel sweep logging the same new dataset can both insert it; the later one fails on the table's unique key
    and its whole transaction rolls back. Logging again then finds that dataset and links the run to it.
    """
    for attempt in range(1, DATASET_RACE_ATTEMPTS + 1):
        try:
            retry.call(client().log_inputs, run_id, datasets=inputs, what="logging the datasets")
            return
        except mlflow.exceptions.MlflowException as error:
            if attempt == DATASET_RACE_ATTEMPTS or not lost_a_dataset_race(error):
                raise


def lost_a_dataset_race(error: BaseException) -> bool:
    """Whether `error` is the datasets table's unique key refusing a second insert (SQLite's or PostgreSQL's
    words; the message carries the statement)."""
    text = str(error)
    return "INSERT INTO datasets" in text and ("UNIQUE constraint failed" in text or "duplicate key value" in text)


def run_model(run, names: tuple[str, ...] = (SEGMENTER, TENSOR_MODEL)):
    """The run's logged model, the first of `names` it has; None when it logged none."""
    models = client().search_logged_models(experiment_ids=[run.info.experiment_id],
                                           filter_string=f"source_run_id = '{run.info.run_id}'")
    by_name = {model.name: model for model in models}
    return next((by_name[name] for name in names if name in by_name), None)


def register_run(run, name: str, alias: str, tags: dict[str, str], description: str) -> tuple[str, str]:
    """A new version of registered model `name` from the run's segmenter (else its tensor model), tagged,
    described and pointed at by `alias`; returns (version, `models:/name@alias`)."""
    model = run_model(run)
    if model is None:
        raise ConfigError(f"the run logged no model to register (train with tracking.log_model=true). "
                          f"Received: run={run.info.run_id}")
    mlflow_client = client()
    try:
        mlflow_client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        mlflow_client.create_registered_model(name)
    version = mlflow_client.create_model_version(name, source=f"models:/{model.model_id}", run_id=run.info.run_id,
                                                 model_id=model.model_id, tags={**tags, "logged_model": model.name},
                                                 description=description)
    mlflow_client.set_registered_model_alias(name, alias, version.version)
    return str(version.version), f"models:/{name}@{alias}"


def parse_model_uri(reference: str) -> tuple[str, Optional[str], Optional[str]]:
    """`models:/name@alias` -> (name, alias, None); `models:/name/3` -> (name, None, "3")."""
    body = reference[len("models:/"):]
    name, at, alias = body.partition("@")
    if at and name and alias and "/" not in alias:
        return name, alias, None
    name, slash, version = body.rpartition("/")
    if slash and name and version.isdigit():
        return name, None, version
    raise ConfigError(f"a registered model is models:/<name>@<alias> or models:/<name>/<version>. "
                      f"Received: run={reference}")


def model_version(reference: str):
    """The ModelVersion a `models:/` reference names; ConfigError naming the missing name, alias or version."""
    name, alias, version = parse_model_uri(reference)
    mlflow_client = client()
    try:
        registered = mlflow_client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(f"no registered model named {name} in {mlflow.get_tracking_uri()}. "
                          f"Received: run={reference}") from None
    try:
        if alias is not None:
            return mlflow_client.get_model_version_by_alias(name, alias)
        return mlflow_client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException:
        pass
    if alias is not None:
        known = ", ".join(sorted(registered.aliases)) or "none"
        raise ConfigError(f"registered model {name} has no alias {alias} (aliases: {known}). "
                          f"Received: run={reference}")
    latest = max((int(v.version) for v in mlflow_client.search_model_versions(f"name = '{name}'")), default=0)
    raise ConfigError(f"registered model {name} has no version {version} (latest: {latest}). "
                      f"Received: run={reference}")


def serving_uri(run) -> str:
    """What `mlflow models serve -m` takes for a run: its segmenter logged model."""
    model = run_model(run, (SEGMENTER,))
    if model is None:
        raise TrackingError(f"the run logged no segmenter model to serve (train with tracking.log_model=true). "
                            f"Received: run={run.info.run_id}")
    return f"models:/{model.model_id}"


def local_model(model_uri: str) -> str:
    """The model at `model_uri` (models:/...) downloaded to a local folder, as `mlflow models serve` does first."""
    from mlflow.tracking.artifact_utils import _download_artifact_from_uri

    try:
        return _download_artifact_from_uri(model_uri)
    except mlflow.exceptions.MlflowException as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackingError(f"cannot download the model to serve: {first_line}. Received: {model_uri}") from None
