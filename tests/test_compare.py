"""Comparisons you can trust: folds as a partition; the statistics against NumPy and SciPy; and verdicts pinned
on constructed stores (runs and per-image tables logged straight to a real MLflow store, then `compare` as the
user runs it), each asserting its exact verdict and `diff` against NumPy / SciPy computed here."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import TINY, error_line
from skinexp.comparison.statistics import holm, mean_interval, minimum_detectable_difference, paired_difference
from skinexp.comparison.table import compare, pooled_per_image
from skinexp.data.sources import fold_of
from skinexp.errors import ConfigError


def test_folds_are_a_partition_of_near_equal_sizes():
    assignment = fold_of(23, 5, seed=0)
    assert sorted(np.bincount(assignment).tolist()) == [4, 4, 5, 5, 5]
    folds = [set(np.flatnonzero(assignment == k)) for k in range(5)]
    assert set().union(*folds) == set(range(23)) and sum(len(f) for f in folds) == 23
    assert not np.array_equal(assignment, fold_of(23, 5, seed=1))  # the seed deals them


def test_folds_are_the_same_in_another_process_and_for_another_config(compose):
    code = "from skinexp.data.sources import fold_of; print(fold_of(23, 5, seed=0).tolist())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(other) == fold_of(23, 5, seed=0).tolist()
    from skinexp.data import load_splits

    base = [*TINY, "dataset.num_samples=20", "dataset.folds=4", "dataset.fold=2", "dataset.test_split=0.2"]
    first = load_splits(compose("train", [*base, "model.filters=8"]).dataset)
    second = load_splits(compose("train", [*base, "model.filters=32", "optim=sgd"]).dataset)
    assert first.val.ids == second.val.ids and len(first.val) == 4 and len(first.test) == 4
    assert not set(first.val.ids) & set(first.train.ids) and not set(first.test.ids) & set(first.val.ids)
    every_val = set()
    for fold in range(4):
        every_val |= set(load_splits(compose("train", [*base[:-2], f"dataset.fold={fold}",
                                                       "dataset.test_split=0.2"]).dataset).val.ids)
    assert every_val == set(first.train.ids) | set(first.val.ids)  # every image outside test validates once


@pytest.mark.parametrize("override, fragment", [
    ("dataset.folds=1", "Received: dataset.folds=1"),
    ("dataset.fold=2", "dataset.fold needs dataset.folds"),
    ("dataset.folds=3 dataset.fold=3", "Received: dataset.fold=3"),
    ("dataset.folds=3 dataset.fold=-1", "Received: dataset.fold=-1"),
])
def test_bad_fold_settings_fail_in_one_line(main, tmp_path, override, fragment):
    assert fragment in error_line(main("train", *override.split(), cwd=tmp_path))


def test_more_folds_than_images_fail_naming_the_count(main, tmp_path):
    line = error_line(main("train", *TINY, "dataset.num_samples=6", "dataset.folds=8", cwd=tmp_path))
    assert "must not exceed the 6 images" in line and line.endswith("Received: dataset.folds=8")


SCORE_COLUMNS = ("iou", "dice", "precision", "sensitivity", "specificity", "hd95")


def test_the_group_interval_is_a_bootstrap_that_stays_inside_the_scores_range():
    values = [1.0] * 18 + [0.97, 0.99]  # near the top of IoU's range: a t interval would cross 1
    mean, low, high = mean_interval(values, [0] * 20)
    assert mean == pytest.approx(np.mean(values)) and 0.99 <= low < mean < high <= 1.0
    assert mean_interval(values, [0] * 20) == (mean, low, high)  # seeded: the same numbers every time
    folds = mean_interval([0.2, 0.4, 0.9, 1.0], [0, 0, 1, 1])  # strata keep their counts
    assert 0.3 <= folds[1] and folds[2] <= 0.8
    assert all(math.isnan(v) for v in mean_interval([0.7], [0])[1:])


def test_the_paired_difference_its_interval_p_value_and_mdd_match_numpy_and_scipy():
    from scipy import stats

    rng = np.random.default_rng(1)
    reference = rng.uniform(0.5, 0.9, 40)
    group = reference - 0.05 + rng.normal(0, 0.02, 40)
    result = paired_difference(group, reference)
    differences = group - reference
    assert result.diff == pytest.approx(differences.mean(), abs=1e-12) and result.images == 40
    assert result.p_value == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert result.low < result.diff < result.high < 0
    sd = differences.std(ddof=1)
    assert result.mdd == pytest.approx((stats.t.ppf(0.975, 39) + stats.t.ppf(0.8, 39)) * sd / math.sqrt(40))
    assert minimum_detectable_difference(np.zeros(10)) == 0.0
    assert paired_difference(reference, reference).p_value == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06]) and holm([0.5]) == [0.5]


def test_pooling_averages_repeats_of_an_image_and_keeps_folds_apart():
    values, strata = pooled_per_image([{"a": 0.5, "b": 1.0}, {"a": 0.7}, {"c": 0.2}])
    assert values == {"a": pytest.approx(0.6), "b": 1.0, "c": 0.2}
    assert strata["a"] != strata["b"] != strata["c"]


def _fake_run(run_id, params, status="FINISHED"):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=status, run_name=run_id),
                           data=SimpleNamespace(params=params, metrics={}, tags={}))


@pytest.mark.parametrize("kwargs, fragment", [
    ({"metric": "val_dic"}, "Received: metric=val_dic"),
    ({"metric": "loss"}, "Received: metric=loss"),
    ({"group_by": ["model.filtres"]}, "Received: group_by=model.filtres"),
    ({"baseline": "model.filters=99"}, "Received: baseline=model.filters=99"),
])
def test_unknown_metrics_keys_and_baselines_fail_in_one_line(kwargs, fragment):
    runs = [_fake_run("a1", {"model.filters": "16"}), _fake_run("b1", {"model.filters": "8"})]
    per_image = {"a1": {"x": 0.5, "y": 0.6}, "b1": {"x": 0.4, "y": 0.5}}
    with pytest.raises(ConfigError, match=fragment):
        compare(runs, kwargs.get("metric", "iou"), kwargs.get("group_by"), per_image,
                baseline=kwargs.get("baseline"))


def test_no_finished_run_fails():
    with pytest.raises(ConfigError, match="no FINISHED training run"):
        compare([_fake_run("r1", {"model.filters": "8"}, status="RUNNING")], "iou", None, {})


class Store:
    """A real MLflow store filled by hand: training runs with params, Keras' best_val_iou and a per-image table,
    as training logs them; then `compare` over the experiment, as a user types it."""

    def __init__(self, tmp_path):
        from mlflow.tracking import MlflowClient

        self.tmp_path, self.uri = tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.experiment_id = self.client.create_experiment("constructed", str(tmp_path / "artifacts"))

    def run(self, params: dict, scores: dict[str, float], best_val_iou: float = 0.5, score: str = "iou",
            status: str = "FINISHED") -> str:
        run = self.client.create_run(self.experiment_id, run_name=",".join(f"{k}={v}" for k, v in params.items()))
        for key, value in params.items():
            self.client.log_param(run.info.run_id, key, value)
        self.client.log_metric(run.info.run_id, "best_val_iou", best_val_iou)
        rows = ["id," + ",".join(SCORE_COLUMNS)]
        for image_id, value in scores.items():
            rows.append(f"{image_id}," + ",".join(f"{value:.9f}" if name == score else "0.5" for name in SCORE_COLUMNS))
        self.client.log_text(run.info.run_id, "\n".join(rows) + "\n", "val_per_image.csv")
        self.client.set_terminated(run.info.run_id, status)
        return run.info.run_id

    def compare(self, main, *options) -> list[dict[str, str]]:
        import csv

        report = self.tmp_path / f"report-{len(list(self.tmp_path.glob('report-*')))}"
        result = main("compare", "experiment=constructed", f"uri={self.uri}", f"report={report}", *options,
                      cwd=self.tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        self.stdout = result.stdout
        with open(report / "comparison.csv") as table:
            return list(csv.DictReader(table))


IDS = [f"img{i:02d}" for i in range(30)]


def _values(seed: int, low: float = 0.5, high: float = 0.9) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, len(IDS))


def _expected(group: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    return float(np.mean(group - reference)), float(stats.wilcoxon(group - reference).pvalue)


def test_a_better_group_that_keras_val_iou_ranks_second_is_ranked_first(main, tmp_path):
    store = Store(tmp_path)
    narrow = _values(0, 0.4, 0.7)
    wide = narrow + 0.1 + np.random.default_rng(1).normal(0, 0.02, len(IDS))
    store.run({"model.filters": "8"}, dict(zip(IDS, narrow)), best_val_iou=0.9)  # Keras' pooled IoU says 8 wins
    store.run({"model.filters": "16"}, dict(zip(IDS, wide)), best_val_iou=0.5)
    first, second = store.compare(main)
    assert (first["group"], first["verdict"], first["diff"]) == ("model.filters=16", "reference", "")
    diff, p_value = _expected(narrow, wide)
    assert second["group"] == "model.filters=8" and second["verdict"] == "worse"
    assert float(second["diff"]) == pytest.approx(diff, abs=1e-6) and float(second["p_value"]) == pytest.approx(
        p_value, rel=1e-3)
    assert float(second["diff_ci95_low"]) < diff < float(second["diff_ci95_high"]) < 0
    assert float(first["mean"]) == pytest.approx(wide.mean(), abs=1e-6) and first["images"] == "30"
    assert list(first)[:13] == ["rank", "group", "runs", "images", "mean", "ci95_low", "ci95_high", "diff",
                                "diff_ci95_low", "diff_ci95_high", "p_value", "mdd", "verdict"]


def test_a_worse_and_an_identical_group_against_a_chosen_baseline(main, tmp_path):
    store = Store(tmp_path)
    base = _values(2)
    worse = base - 0.15 + np.random.default_rng(3).normal(0, 0.03, len(IDS))
    store.run({"optim.lr": "0.001"}, dict(zip(IDS, base)))
    store.run({"optim.lr": "0.01"}, dict(zip(IDS, worse)))
    store.run({"optim.lr": "0.002"}, dict(zip(IDS, base)))  # the same per-image scores
    rows = {row["group"]: row for row in store.compare(main)}
    assert rows["optim.lr=0.002"]["verdict"] == "no detectable difference"
    assert float(rows["optim.lr=0.002"]["diff"]) == 0.0 and float(rows["optim.lr=0.002"]["mdd"]) == 0.0
    diff, p_value = _expected(worse, base)
    assert rows["optim.lr=0.01"]["verdict"] == "worse" and float(rows["optim.lr=0.01"]["diff"]) == pytest.approx(
        diff, abs=1e-6)
    assert float(rows["optim.lr=0.01"]["p_value"]) == pytest.approx(holm([p_value, 1.0])[0], rel=1e-3)
    against_worse = {row["group"]: row for row in store.compare(main, "baseline=optim.lr=0.01")}
    assert against_worse["optim.lr=0.01"]["verdict"] == "reference"
    assert against_worse["optim.lr=0.001"]["verdict"] == "better"
    assert float(against_worse["optim.lr=0.001"]["diff"]) == pytest.approx(-diff, abs=1e-6)


def test_hd95_is_lower_is_better(main, tmp_path):
    store = Store(tmp_path)
    near = _values(4, 2.0, 6.0)
    far = near + 3.0 + np.random.default_rng(5).normal(0, 0.5, len(IDS))
    store.run({"loss.name": "dice"}, dict(zip(IDS, far)), best_val_iou=0.9, score="hd95")
    store.run({"loss.name": "bce"}, dict(zip(IDS, near)), best_val_iou=0.1, score="hd95")
    first, second = store.compare(main, "metric=val_hd95")
    assert first["group"] == "loss.name=bce" and second["group"] == "loss.name=dice"
    assert second["verdict"] == "worse" and float(second["diff"]) == pytest.approx(np.mean(far - near), abs=1e-6)
    assert float(second["diff"]) > 0 and "mean per-image hd95" in store.stdout


def test_a_run_without_a_key_forms_its_own_absent_group(main, tmp_path):
    store = Store(tmp_path)
    values = _values(6)
    store.run({"model.filters": "8"}, dict(zip(IDS, values)))  # logged before model.norm existed
    store.run({"model.filters": "8", "model.norm": "group"}, dict(zip(IDS, values + 0.05)))
    rows = store.compare(main)
    assert [(row["group"], row["model.norm"]) for row in rows] == [("model.norm=group", "group"),
                                                                  ("model.norm=(absent)", "(absent)")]
    assert rows[1]["verdict"] == "worse" and float(rows[1]["diff"]) == pytest.approx(-0.05, abs=1e-6)


def test_seeds_on_one_split_are_averaged_per_image_and_folds_are_pooled(main, tmp_path):
    store = Store(tmp_path)
    truth = _values(7, 0.4, 0.8)
    seed_one = truth + np.random.default_rng(8).normal(0, 0.05, len(IDS))
    seed_two = truth + np.random.default_rng(9).normal(0, 0.05, len(IDS))
    for seed, values in ((1, seed_one), (2, seed_two)):
        store.run({"model.filters": "8", "train.seed": str(seed)}, dict(zip(IDS, values)))
    folds = truth + 0.08
    for fold in range(3):  # each fold scores its own ten images
        part = slice(10 * fold, 10 * fold + 10)
        store.run({"model.filters": "16", "dataset.fold": str(fold)}, dict(zip(IDS[part], folds[part])))
    first, second = store.compare(main)
    assert (first["group"], first["runs"], first["images"]) == ("model.filters=16", "3", "30")
    assert (second["group"], second["runs"], second["images"]) == ("model.filters=8", "2", "30")
    averaged = (seed_one + seed_two) / 2
    diff, _ = _expected(averaged, folds)
    assert float(second["diff"]) == pytest.approx(diff, abs=1e-6) and second["verdict"] == "worse"
    assert float(second["mean"]) == pytest.approx(averaged.mean(), abs=1e-6)


def test_a_second_report_into_the_same_folder_needs_overwrite_true(main, tmp_path):
    store = Store(tmp_path)
    store.run({"model.filters": "8"}, dict(zip(IDS, _values(4))))
    store.run({"model.filters": "16"}, dict(zip(IDS, _values(5))))
    args = ("compare", "experiment=constructed", f"uri={store.uri}", f"report={tmp_path / 'report'}")
    assert main(*args, cwd=tmp_path).returncode == 0
    before = (tmp_path / "report" / "comparison.csv").read_text()
    refused = main(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "pass overwrite=true" in error_line(refused)
    assert (tmp_path / "report" / "comparison.csv").read_text() == before
    store.run({"model.filters": "32"}, dict(zip(IDS, _values(6))))
    assert main(*args, "overwrite=true", cwd=tmp_path).returncode == 0
    assert "model.filters=32" in (tmp_path / "report" / "comparison.csv").read_text()
