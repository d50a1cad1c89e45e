"""End-to-end: a real tiny Keras training run tracked in a real temp SQLite MLflow store, read back."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY, error_line

EPOCH_METRICS = ["loss", "accuracy", "iou", "miou", "dice", "val_loss", "val_accuracy", "val_iou", "val_miou",
                 "val_dice", "images_per_sec", "epoch_seconds"]


def _artifacts(client, run_id, path=""):
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return files


def test_run_finished_with_name_from_overrides(trained):
    from skinexp.config.naming import run_name_from

    run = trained["run"]
    assert run.info.status == "FINISHED"
    overrides = run.data.tags["hydra_overrides"].split()  # every override, in full
    assert f"tracking.uri={trained['uri']}" in overrides
    assert run.info.run_name == run_name_from(overrides) and len(run.info.run_name) <= 50
    assert run.info.run_name.startswith("image_size=32,num_samples=16,") and "uri" not in run.info.run_name
    assert trained["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_per_epoch_metrics_under_the_contract_names(trained):
    client, run = trained["client"], trained["run"]
    for name in EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    assert run.data.metrics["images_per_sec"] > 0


def test_best_threshold_is_the_one_that_maximises_val_iou_of_the_best_checkpoint(trained, compose):
    """Recomputed here from the logged checkpoint and the same validation split."""
    import keras

    from skinexp.data import load_splits
    from skinexp.evaluation.scores import best_threshold

    client, run = trained["client"], trained["run"]
    checkpoint = client.download_artifacts(run.info.run_id, "checkpoints/best.keras", str(trained["workdir"]))
    model = keras.models.load_model(checkpoint, compile=False)
    dataset = compose("train", [*TINY, "dataset.num_samples=20", "dataset.test_split=0.25"]).dataset
    val = load_splits(dataset).val
    probabilities = model.predict(val.images.astype(np.float32), verbose=0)
    threshold, iou = best_threshold(probabilities, val.masks)
    assert run.data.metrics["best_threshold"] == pytest.approx(threshold)
    assert run.data.metrics["val_iou_at_best_threshold"] == pytest.approx(iou, abs=1e-6)


def test_params_tags_and_config(trained):
    run = trained["run"]
    params = run.data.params
    assert params["model.filters"] == "6" and params["optim.lr"] == "0.001" and params["dataset.image_size"] == "32"
    assert params["model.upsample"] == "upsampling" and params["dataset.name"] == "synthetic"  # choices by name
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
    assert "logs/train.log" in files
    sample_steps = {f.split("+step+")[1].split("+")[0] for f in files if f.startswith("images/samples+step+")}
    assert sample_steps == {"0", "1", "2"}  # step 0: the untrained model
    mlflow.set_tracking_uri(client.tracking_uri)
    models = mlflow.search_logged_models(experiment_ids=[trained["experiment"].experiment_id], output_format="list")
    assert {m.source_run_id for m in models} == {run.info.run_id}
    assert sorted(m.name for m in models) == ["model", "segmenter"]  # the tensor model and the image-in one


def test_summary_line_points_at_the_ui(trained):
    out = trained["result"].stdout
    assert trained["run"].info.run_id in out and "mean per-image IoU" in out
    assert f"#/experiments/{trained['experiment'].experiment_id}/runs/{trained['run'].info.run_id}" in out


def test_outputs_stay_under_runs_of_the_working_directory(trained):
    checkpoints = list((trained["workdir"] / "runs" / "train").rglob("best.keras"))
    assert len(checkpoints) == 1


def test_augmentation_follows_its_keys_not_the_preset_name(compose):
    from skinexp.data.pipeline import augmentation_enabled

    assert not augmentation_enabled(compose("train", []).augment)
    assert augmentation_enabled(compose("train", ["augment.flips=true"]).augment)  # with augment=none
    assert augmentation_enabled(compose("train", ["augment=light"]).augment)
    assert not augmentation_enabled(compose("train", ["augment=light", "augment.flips=false", "augment.rotate90=false",
                                                      "augment.color=0"]).augment)


def test_checkpoint_mode_comes_from_the_metric(compose):
    """Keras' mode="auto" reads each metric's direction: losses down, IoU, Dice and accuracy up."""
    import keras

    from skinexp.model.metrics import training_metrics

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=training_metrics())
    model.fit(np.zeros((2, 4, 4, 1)), np.ones((2, 4, 4, 1)), verbose=0, epochs=1)  # builds the compiled metrics
    for monitor, improves in (("val_loss", np.less), ("val_iou", np.greater), ("dice", np.greater),
                              ("val_accuracy", np.greater), ("val_miou", np.greater)):
        callback = keras.callbacks.ModelCheckpoint("unused.keras", monitor=monitor, mode="auto")
        callback.set_model(model)
        callback._set_monitor_op()
        assert callback.monitor_op(1.0, 2.0) == improves(1.0, 2.0), monitor


def test_bad_tracking_uri_fails_fast_with_one_line(main, tmp_path):
    result = main("train", *TINY, "tracking.uri=http://127.0.0.1:9", cwd=tmp_path)
    assert error_line(result).startswith("skinexp: error: tracking.uri is unreachable")


@pytest.mark.parametrize("command, uri", [("train", "mlruns"), ("train", "file:///tmp/mlruns"), ("compare", "mlruns")])
def test_a_folder_store_is_refused_with_one_line(main, tmp_path, command, uri):
    """MLflow 3's file store raises on opening (a traceback): a folder as tracking.uri is refused by name."""
    arguments = ("train", *TINY, f"tracking.uri={uri}") if command == "train" else ("compare", f"uri={uri}")
    key = "tracking.uri" if command == "train" else "uri"
    line = error_line(main(*arguments, cwd=tmp_path))
    assert "SQLite database" in line and line.endswith(f"Received: {key}={uri}")
    assert not (tmp_path / "mlruns").exists()
