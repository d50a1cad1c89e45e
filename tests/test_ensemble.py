"""Fold ensembles (skinexp.evaluation.ensemble): `evaluate` and `predict` of a cross-validation sweep's parent run,
checked against a NumPy average of the fold checkpoints' probabilities; the bad inputs refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line, run_main

# A 3-fold sweep, then every fold model loaded again (about a minute), once for the module.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ensemble")]


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory):
    """One config x 3 folds: 24 synthetic images, 6 held out for test, 6 per fold."""
    workdir = tmp_path_factory.mktemp("ensemble")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_main("train", "-m", "cv=3", *TINY, "dataset.num_samples=24", "dataset.test_split=0.25",
                      "train.epochs=1", "optim.lr=1e-2", "tracking.log_model=false", f"tracking.uri={uri}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("skinexp").experiment_id
    runs = client.search_runs([experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    folds = sorted((r for r in runs if "cv_fold" in r.data.tags), key=lambda r: int(r.data.tags["cv_fold"]))
    assert [r.data.tags["cv_fold"] for r in folds] == ["0", "1", "2"]
    return {"workdir": workdir, "uri": uri, "client": client, "parent": parent, "folds": folds,
            "experiment_id": experiment_id}


@pytest.fixture(scope="module")
def fold_models(cv_sweep):
    """(model, splits) per fold: its run's best checkpoint loaded with Keras, its splits from its logged config."""
    import keras
    from omegaconf import OmegaConf

    from skinexp.config.schema import DatasetConfig
    from skinexp.data.sources import load_splits

    client, workdir, loaded = cv_sweep["client"], cv_sweep["workdir"], []
    for run in cv_sweep["folds"]:
        folder = workdir / "check" / run.info.run_id
        folder.mkdir(parents=True, exist_ok=True)
        model = keras.models.load_model(client.download_artifacts(run.info.run_id, "checkpoints/best.keras",
                                                                  str(folder)), compile=False)
        config = OmegaConf.load(client.download_artifacts(run.info.run_id, "config/config.yaml", str(folder)))
        loaded.append((model, load_splits(OmegaConf.merge(OmegaConf.structured(DatasetConfig), config.dataset))))
    return loaded


def _mean_iou(probabilities, masks, threshold) -> float:
    from skinexp.evaluation.scores import image_scores

    return float(np.mean([image_scores(t, p)["iou"] for t, p in zip(masks, (probabilities > threshold))]))


def test_evaluate_a_sweep_parent_scores_the_fold_ensemble_beside_each_fold(cv_sweep, fold_models):
    from skinexp.evaluation.scores import best_threshold

    parent_id, workdir = cv_sweep["parent"].info.run_id, cv_sweep["workdir"]
    result = run_main("evaluate", f"run={parent_id}", "split=test", "output=eval", f"tracking.uri={cv_sweep['uri']}",
                      cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "eval" / "summary.json").read_text())
    assert summary["ensemble"] is True and summary["sweep"] == parent_id and summary["group"] == "all"
    assert summary["split"] == "test" and summary["images"] == 6
    assert summary["threshold_from"] == "pooled out-of-fold predictions" and summary["out_of_fold_images"] == 18
    assert [row["fold"] for row in summary["folds"]] == [0, 1, 2]
    assert [row["run_id"] for row in summary["folds"]] == [r.info.run_id for r in cv_sweep["folds"]]

    loaded = fold_models
    test = loaded[0][1].test
    assert all(splits.test.ids == test.ids for _, splits in loaded)  # one test split for every fold
    images = test.images.astype(np.float32)
    alone = [np.asarray(model.predict_on_batch(images), np.float32) for model, _ in loaded]
    out_of_fold = np.concatenate([model.predict_on_batch(splits.val.images.astype(np.float32))
                                  for model, splits in loaded])
    truth = np.concatenate([splits.val.masks for _, splits in loaded])
    threshold, oof_iou = best_threshold(out_of_fold, truth)
    assert summary["threshold"] == threshold and summary["out_of_fold_iou"] == pytest.approx(oof_iou, abs=1e-9)
    ensemble = np.mean(np.stack(alone), axis=0)
    assert summary["mean_iou"] == pytest.approx(_mean_iou(ensemble, test.masks, summary["threshold"]), abs=1e-6)
    for row, probabilities, run in zip(summary["folds"], alone, cv_sweep["folds"]):
        assert row["threshold"] == pytest.approx(run.data.metrics["best_threshold"])
        assert row["mean_iou"] == pytest.approx(_mean_iou(probabilities, test.masks, row["threshold"]), abs=1e-6)

    client = cv_sweep["client"]
    nested = f"tags.mlflow.parentRunId = '{parent_id}' and tags.`skinexp.kind` = 'evaluation'"
    (evaluation,) = client.search_runs([cv_sweep["experiment_id"]], nested)
    assert evaluation.info.status == "FINISHED"
    metrics = evaluation.data.metrics
    assert metrics["test_iou"] == pytest.approx(summary["mean_iou"])
    assert [metrics[f"test_iou_fold_{k}"] for k in range(3)] == pytest.approx([r["mean_iou"] for r in summary["folds"]])


def test_predict_a_sweep_parent_writes_the_averaged_fold_probabilities(cv_sweep, fold_models, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    result = run_main("predict", f"run={cv_sweep['parent'].info.run_id}", f"input={tmp_path / 'images.npy'}",
                      f"output={tmp_path / 'masks'}", f"tracking.uri={cv_sweep['uri']}", cwd=cv_sweep["workdir"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["00000.png", "00001.png", "predict.npy"]
    expected = np.mean([model.predict_on_batch(images.astype(np.float32))
                        for model, _ in fold_models], axis=0)
    np.testing.assert_allclose(np.load(tmp_path / "masks" / "predict.npy"), expected, atol=1e-6)


def _fake_sweep(client, experiment_id: str, children: list[tuple[dict, str]]) -> str:
    """A sweep parent with child runs that only carry params and a status: enough for the refusals."""
    parent = client.create_run(experiment_id, tags={"skinexp.sweep": "true"}).info.run_id
    for params, status in children:
        child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
        for key, value in params.items():
            client.log_param(child, key, value)
        client.set_terminated(child, status)
    client.set_terminated(parent, "FINISHED")
    return parent


@pytest.mark.parametrize("case, expected", [
    ("not_cv", "needs a cross-validation sweep"),
    ("missing_fold", "has none for fold 1 of dataset.folds=3"),
    ("unknown_group", "group must name one of the sweep's configs: all. Received: group=model.filters=9"),
    ("group_of_a_single_run", "is a single training run. Received: group=all"),
    ("val_split", "evaluate it with split=test"),
])
def test_bad_inputs_are_refused_in_one_line(cv_sweep, case, expected):
    client, experiment_id = cv_sweep["client"], cv_sweep["experiment_id"]
    run, extra = cv_sweep["parent"].info.run_id, []
    if case == "not_cv":
        run = _fake_sweep(client, experiment_id, [({"dataset.folds": "0", "model.filters": "4"}, "FINISHED")])
    elif case == "missing_fold":
        run = _fake_sweep(client, experiment_id, [({"dataset.folds": "3", "dataset.fold": str(k)}, status)
                                                  for k, status in ((0, "FINISHED"), (1, "FAILED"), (2, "FINISHED"))])
    elif case == "unknown_group":
        extra = ['group="model.filters=9"']
    elif case == "group_of_a_single_run":
        run, extra = cv_sweep["folds"][0].info.run_id, ["group=all"]
    else:
        extra = ["split=val"]
    result = run_main("evaluate", f"run={run}", *extra, f"tracking.uri={cv_sweep['uri']}", cwd=cv_sweep["workdir"])
    assert expected in error_line(result)
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
    assert running == []
