"""Comparisons you can trust: folds as a partition, the interval and the paired test against SciPy and hand
values, verdicts and notes on a fixed table of runs, and `compare` over a real sweep."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import TINY, error_line
from skinexp.comparison import compare, pooled_per_image, to_csv, to_markdown
from skinexp.data.sources import fold_of
from skinexp.errors import ConfigError
from skinexp.stats import holm, mean_interval, paired_p_value


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


def test_the_interval_is_student_t_over_runs():
    from scipy import stats

    values = [0.80, 0.83, 0.78, 0.81]
    mean, sd, low, high = mean_interval(values)
    expected = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(0.805) and sd == pytest.approx(np.std(values, ddof=1))
    assert (low, high) == pytest.approx(expected)
    single = mean_interval([0.7])
    assert single[0] == 0.7 and all(math.isnan(v) for v in single[1:])


def test_the_paired_test_is_scipys_wilcoxon_and_holm_is_step_down():
    from scipy import stats

    a = [0.9, 0.8, 0.85, 0.7, 0.95, 0.6, 0.88]
    b = [0.7, 0.75, 0.8, 0.72, 0.9, 0.5, 0.8]
    assert paired_p_value(a, b) == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert paired_p_value(a, a) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def _run(run_id, filters, seed, score, status="FINISHED"):
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, status=status, run_name=run_id),
                           data=SimpleNamespace(params={"model.filters": str(filters), "train.seed": str(seed),
                                                        "tracking.run_name": run_id, "optim.lr": "0.001"},
                                                metrics={"best_val_iou": score}, tags={}))


def test_groups_verdicts_and_notes_on_a_fixed_table():
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(20)]
    good = {i: 0.8 + 0.1 * rng.random() for i in ids}
    runs = [_run("a1", 16, 1, 0.85), _run("a2", 16, 2, 0.86), _run("a3", 16, 3, 0.84),
            _run("b1", 8, 1, 0.70), _run("b2", 8, 2, 0.72), _run("c1", 4, 1, 0.845),
            _run("d1", 32, 1, 0.5), _run("r1", 64, 1, 0.99, status="RUNNING")]
    per_image = {"a1": good, "a2": good, "a3": good, "b1": {i: v - 0.2 for i, v in good.items()},
                 "b2": {i: v - 0.1 for i, v in good.items()},
                 "c1": {i: v + (0.01 if k % 2 else -0.01) for k, (i, v) in enumerate(good.items())},
                 "d1": {"other": 0.5}}
    result = compare(runs, "val_iou", None, per_image)
    by_name = {group.name: group for group in result.groups}
    assert [group.name for group in result.groups] == ["model.filters=16", "model.filters=4", "model.filters=8",
                                                      "model.filters=32"]
    assert by_name["model.filters=16"].verdict == "best" and len(by_name["model.filters=16"].runs) == 3
    assert by_name["model.filters=8"].verdict == "worse"  # 20 images, every one worse
    pooled = [float(np.mean([good[i] - 0.2, good[i] - 0.1])) for i in ids]  # its two seeds, averaged per image
    holm_factor = 2  # the smaller of two raw p-values, times the two comparisons that were tested
    best = [float(np.mean([good[i]] * 3)) for i in ids]  # three seeds of the best config, averaged per image
    assert by_name["model.filters=8"].p_value == pytest.approx(holm_factor * paired_p_value(best, pooled), rel=1e-9)
    assert by_name["model.filters=4"].verdict == "within noise"
    assert by_name["model.filters=32"].verdict == "unpaired" and by_name["model.filters=32"].p_value is None
    assert any("1 run(s) still RUNNING" in note for note in result.notes)
    assert any("Holm-corrected for 2 comparisons" in note for note in result.notes)
    header, first, *rest = to_csv(result).splitlines()
    assert header == "rank,group,n,mean,sd,ci95_low,ci95_high,p_value,verdict,model.filters"
    assert first.startswith("1,model.filters=16,3,0.8500,0.0100,") and first.endswith(",,best,16")
    single = next(row for row in rest if ",model.filters=4," in row).split(",")
    assert single[2:7] == ["1", "0.8450", "", "", ""]  # one run: no spread, no interval
    assert "| n=1 | n=1 |" in to_markdown(result)


def test_pooling_averages_repeats_of_an_image():
    assert pooled_per_image([{"a": 0.5, "b": 1.0}, {"a": 0.7}]) == {"a": pytest.approx(0.6), "b": 1.0}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"metric": "val_dic"}, "Received: metric=val_dic"),
    ({"group_by": ["model.filtres"]}, "Received: group_by=model.filtres"),
])
def test_unknown_metrics_and_keys_fail_in_one_line(kwargs, fragment):
    runs = [_run("a1", 16, 1, 0.85)]
    with pytest.raises(ConfigError, match=fragment):
        compare(runs, kwargs.get("metric", "val_iou"), kwargs.get("group_by"), {})


def test_no_finished_run_fails():
    with pytest.raises(ConfigError, match="no FINISHED training run"):
        compare([_run("r1", 8, 1, 0.5, status="RUNNING")], "val_iou", None, {})
