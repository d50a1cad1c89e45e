"""Evaluate and predict (in-process) from the shared tiny training run: files, the nested MLflow run, masks at the
right sizes."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import error_line


def test_evaluate_by_run_id_writes_files_and_a_nested_run(trained, main):
    workdir, run = trained["workdir"], trained["run"]
    result = main("evaluate", f"run={run.info.run_id}", "split=test", "output=eval", f"tracking.uri={trained['uri']}",
                 cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    out = workdir / "eval"
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    assert len(rows) == 5  # 25 % of 20 images held out for test
    assert list(rows[0]) == ["id", "iou", "dice", "precision", "sensitivity", "specificity", "accuracy", "hd95"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "test" and summary["images"] == 5
    assert summary["mean_iou"] == pytest.approx(np.mean([float(r["iou"]) for r in rows]), abs=1e-5)
    assert summary["threshold"] == pytest.approx(run.data.metrics["best_threshold"])
    for name in ("figure.png", "best.png", "worst.png"):
        assert (out / name).stat().st_size > 1000

    client = trained["client"]
    evaluations = client.search_runs([run.info.experiment_id],
                                     f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    (evaluation,) = evaluations
    assert evaluation.info.status == "FINISHED"
    for metric in ("test_iou", "test_miou", "test_dice", "test_accuracy", "test_thresholded_jaccard"):
        assert metric in evaluation.data.metrics
    assert evaluation.data.metrics["test_iou"] == pytest.approx(summary["mean_iou"])
    artifacts = {a.path for a in client.list_artifacts(evaluation.info.run_id)}
    assert {"per_image.csv", "summary.json", "figure.png", "best.png", "worst.png"} <= artifacts

    again = main("evaluate", f"run={run.info.run_id}", "output=eval", f"tracking.uri={trained['uri']}", cwd=workdir)
    assert "overwrite=true" in error_line(again) and "per_image.csv" in error_line(again)


def test_evaluate_a_keras_file_on_a_given_dataset_with_tta_and_postprocessing(trained, main):
    workdir = trained["workdir"]
    (checkpoint,) = (workdir / "runs" / "train").rglob("best.keras")
    result = main("evaluate", f"run={checkpoint}", "dataset=synthetic", "dataset.num_samples=6", "dataset.seed=7",
                 "tta=true", "postprocess=largest_component", "threshold=0.5", "output=eval_file",
                 f"tracking.uri={trained['uri']}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "eval_file" / "summary.json").read_text())
    assert summary["split"] == "all" and summary["images"] == 6 and summary["tta"] is True
    assert summary["threshold"] == 0.5 and summary["postprocess_val_iou_gain"] is not None
    assert "largest_component" in result.stdout


def test_predict_writes_one_mask_per_image_at_its_original_size(trained, main, tmp_path):
    from skinexp.data.synthetic import make_synthetic

    images, _ = make_synthetic(3, 48, seed=3)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sizes = [(50, 40), (64, 64), (90, 70)]
    for i, (image, size) in enumerate(zip(images, sizes)):
        Image.fromarray(image).resize(size).save(inputs / f"lesion_{i}.{'jpg' if i else 'png'}")
    out = tmp_path / "masks"
    result = main("predict", f"run={trained['run'].info.run_id}", f"input={inputs}", f"output={out}",
                 f"tracking.uri={trained['uri']}", cwd=trained["workdir"])
    assert result.returncode == 0, result.stderr[-3000:]
    for i, size in enumerate(sizes):
        mask = Image.open(out / f"lesion_{i}.png")
        assert mask.size == size
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    probabilities = np.load(out / "predict.npy")
    assert probabilities.shape == (3, 32, 32, 1) and probabilities.dtype == np.float32

    refused = main("predict", f"run={trained['run'].info.run_id}", f"input={inputs}", f"output={out}",
                  f"tracking.uri={trained['uri']}", cwd=trained["workdir"])
    assert "lesion_0.png" in error_line(refused)
    forced = main("predict", f"run={trained['run'].info.run_id}", f"input={inputs}", f"output={out}", "overwrite=true",
                 f"tracking.uri={trained['uri']}", cwd=trained["workdir"])
    assert forced.returncode == 0, forced.stderr[-2000:]


def test_predict_writes_only_masks_into_the_output_folder_and_its_log_under_runs(trained, main, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (2, 36, 36, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "mine"
    result = main("predict", f"run={trained['run'].info.run_id}", f"input={tmp_path / 'images.npy'}",
                  f"output={out}", f"tracking.uri={trained['uri']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "predict.npy"]
    (log,) = (tmp_path / "runs" / "predict").glob("*/*/predict.log")
    assert f"wrote 2 masks and predict.npy to {out}" in log.read_text()


def test_predict_from_a_notebook_npy(trained, main, tmp_path):
    images = np.random.default_rng(0).random((2, 40, 40, 3)).astype(np.float32)  # 0..1 floats, as notebooks save
    np.save(tmp_path / "data_test.npy", images)
    result = main("predict", f"run={trained['run'].info.run_id}", f"input={tmp_path / 'data_test.npy'}",
                 f"output={tmp_path / 'out'}", f"tracking.uri={trained['uri']}", cwd=trained["workdir"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["00000.png", "00001.png"]
    assert Image.open(tmp_path / "out" / "00000.png").size == (40, 40)


def test_evaluate_by_run_id_needs_an_existing_store(main, tmp_path):
    result = main("evaluate", "run=abc", "tracking.uri=sqlite:///nowhere/mlflow.db", cwd=tmp_path)
    assert "no MLflow store there" in error_line(result)
    assert not (tmp_path / "nowhere").exists()  # nothing created on the way


@pytest.mark.parametrize("args, expected", [
    (["run=doesnotexist"], "run=doesnotexist"),
    (["run=x.keras"], "run=x.keras"),
    (["split=sideways", "run=abc"], "split=sideways"),
    ([], "run= is required"),
])
def test_evaluate_rejects_bad_arguments_with_one_line(trained, main, args, expected):
    result = main("evaluate", *args, f"tracking.uri={trained['uri']}", cwd=trained["workdir"])
    assert expected in error_line(result)


def test_reference_scores_agree_with_keras_metrics_on_the_same_prediction():
    import keras

    from skinexp.evaluation.scores import image_scores
    from skinexp.model.metrics import BinaryDice

    rng = np.random.default_rng(1)
    truth = np.zeros((24, 24, 1), np.float32)
    truth[4:16, 6:20] = 1
    probabilities = np.clip(truth * 0.8 + rng.random(truth.shape).astype(np.float32) * 0.4 - 0.1, 0, 1)
    mask = (probabilities > 0.5).astype(np.uint8)
    scores = image_scores(truth, mask)
    iou = keras.metrics.BinaryIoU(target_class_ids=[1])
    miou = keras.metrics.BinaryIoU(target_class_ids=[0, 1])
    dice = BinaryDice()
    accuracy = keras.metrics.BinaryAccuracy()
    for metric in (iou, miou, dice, accuracy):
        metric.update_state(truth[None], probabilities[None])
    assert float(iou.result()) == pytest.approx(scores["iou"], abs=1e-6)
    assert float(miou.result()) == pytest.approx((scores["iou"] + scores["background_iou"]) / 2, abs=1e-6)
    assert float(dice.result()) == pytest.approx(scores["dice"], abs=1e-6)
    assert float(accuracy.result()) == pytest.approx(scores["accuracy"], abs=1e-6)


def test_a_dataset_key_without_dataset_is_refused_in_one_line(main, tmp_path):
    line = error_line(main("evaluate", "run=abc", "dataset.root=elsewhere", cwd=tmp_path))
    assert "needs dataset=" in line and line.endswith("Received: dataset.root=elsewhere")
