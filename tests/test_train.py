"""End-to-end: a real tiny Keras training run tracked in a real temp SQLite MLflow store, read back."""
from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY

EPOCH_METRICS = ["loss", "accuracy", "iou", "miou", "dice", "val_loss", "val_accuracy", "val_iou", "val_miou",
                 "val_dice", "images_per_sec", "epoch_seconds"]


def _artifacts(client, run_id, path=""):
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return files


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `python -m skinexp train` run in a temp dir; its store and CLI result."""
    from conftest import run_cli

    workdir = tmp_path_factory.mktemp("train")
    uri = f"sqlite:///{workdir / 'store' / 'mlflow.db'}"
    result = run_cli("train", *TINY, "train.sample_every=1", "model.filters=6", "optim.lr=1e-3",
                     f"tracking.uri={uri}", "tracking.experiment=e2e", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([experiment.experiment_id])
    return {"result": result, "client": client, "run": run, "experiment": experiment, "workdir": workdir}


def test_run_finished_with_name_from_overrides(trained):
    run = trained["run"]
    assert run.info.status == "FINISHED"
    assert run.info.run_name.endswith("filters=6,lr=0.001")
    assert trained["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_per_epoch_metrics_under_the_contract_names(trained):
    client, run = trained["client"], trained["run"]
    for name in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    assert 0 <= run.data.metrics["best_threshold"] <= 1
    assert run.data.metrics["images_per_sec"] > 0


def test_params_tags_and_config(trained):
    run = trained["run"]
    params = run.data.params
    assert params["model.filters"] == "6" and params["optim.lr"] == "0.001" and params["dataset.image_size"] == "32"
    tags = run.data.tags
    for tag in ("git_commit", "dataset_fingerprint", "version.tensorflow", "version.keras", "version.hydra-core",
                "version.mlflow"):
        assert tags.get(tag), tag
    assert "model.filters=6" in tags["hydra_overrides"]


def test_artifacts_images_checkpoint_and_logged_model(trained):
    import mlflow

    client, run = trained["client"], trained["run"]
    files = _artifacts(client, run.info.run_id)
    assert "config/config.yaml" in files and "curves.png" in files and "checkpoints/best.keras" in files
    sample_steps = {f.split("+step+")[1].split("+")[0] for f in files if f.startswith("images/samples+step+")}
    assert sample_steps == {"0", "1", "2"}  # step 0: the untrained model
    mlflow.set_tracking_uri(client.tracking_uri)
    models = mlflow.search_logged_models(experiment_ids=[trained["experiment"].experiment_id], output_format="list")
    assert [m.source_run_id for m in models] == [run.info.run_id]
    assert models[0].name == "model"


def test_summary_line_points_at_the_ui(trained):
    out = trained["result"].stdout
    assert trained["run"].info.run_id in out and "best val_iou" in out
    assert f"#/experiments/{trained['experiment'].experiment_id}/runs" in out


def test_outputs_stay_under_runs_of_the_working_directory(trained):
    checkpoints = list((trained["workdir"] / "runs" / "train").rglob("best.keras"))
    assert len(checkpoints) == 1


def test_multirun_makes_one_run_per_job(cli, tmp_path, store):
    result = cli("train", "-m", *TINY, "train.epochs=1", "model.filters=4,6", "tracking.log_model=false",
                 *store["overrides"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    experiment = client.get_experiment_by_name("skinexp")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")
    names = sorted(run.info.run_name for run in runs if run.data.params.get("model.filters"))
    assert names == ["filters=4", "filters=6"]  # children are named from the swept key


def test_bad_tracking_uri_fails_fast_with_one_line(cli, tmp_path):
    result = cli("train", *TINY, "tracking.uri=http://127.0.0.1:9", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("skinexp: error: tracking.uri is unreachable")
    assert "Traceback" not in result.stderr
