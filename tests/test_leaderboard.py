"""The sweep leaderboard on hand-made runs shaped like MLflow's: ranked by each run's mean per-image score at
threshold 0.5 (`val_image_<score>`, the quantity `compare` ranks), not by Keras' best_val_iou."""
from __future__ import annotations

import csv
import io
import math
from types import SimpleNamespace

from skinexp.comparison.leaderboard import leaderboard, leaderboard_csv, leaderboard_markdown


def _run(run_id: str, status: str = "FINISHED", params: dict | None = None, metrics: dict | None = None,
         tags: dict | None = None) -> SimpleNamespace:
    params = {"dataset.name": "synthetic", "tracking.run_name": run_id, "dataset.root": f"/data/{run_id}",
              **(params or {})}
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, run_name=f"name-{run_id}", status=status),
                           data=SimpleNamespace(params=params, metrics=metrics or {}, tags=tags or {}))


def _sweep() -> list[SimpleNamespace]:
    return [
        _run("a", params={"model.filters": "8"},
             metrics={"val_image_iou": 0.7, "best_val_iou": 0.95, "best_epoch": 3.0}),
        _run("b", params={"model.filters": "16"}, metrics={"val_image_iou": 0.9, "best_val_iou": 0.2}),
        _run("failed", "FAILED", params={"model.filters": "32"}, metrics={"val_image_iou": 0.95},
             tags={"failure_reason": "TrainingDiverged: loss became NaN at epoch 2\nTraceback ..."}),
        _run("c", params={"model.filters": "4"}, metrics={"val_image_iou": 0.8}),
        _run("old", params={"model.filters": "64"}, metrics={"best_val_iou": 0.99}),  # trained before val_image_iou
    ]


def test_finished_runs_rank_by_mean_per_image_iou_failed_and_unscored_last():
    table = leaderboard(_sweep())
    assert [row["run_id"] for row in table[:3]] == ["b", "c", "a"]  # Keras' best_val_iou would put a first
    assert {row["run_id"] for row in table[3:]} == {"failed", "old"}
    assert [row["score"] for row in table[:3]] == [0.9, 0.8, 0.7]


def test_hd95_ranks_ascending():
    runs = [_run("x", metrics={"val_image_hd95": 3.0}), _run("y", metrics={"val_image_hd95": 2.0}),
            _run("broken", "FAILED", metrics={"val_image_hd95": 1.0})]
    assert [row["run_id"] for row in leaderboard(runs, "val_hd95")] == ["y", "x", "broken"]


def test_only_config_params_that_differ_are_shown_and_missing_ones_are_blank():
    runs = _sweep() + [_run("bare")]
    table = leaderboard(runs)
    assert all(set(row["params"]) == {"model.filters"} for row in table)  # not the data path, not the run name
    assert next(row for row in table if row["run_id"] == "bare")["params"] == {"model.filters": ""}
    assert next(row for row in table if row["run_id"] == "failed")["failure_reason"].startswith("TrainingDiverged")


def test_csv_has_a_header_and_one_formatted_row_per_run():
    rows = list(csv.reader(io.StringIO(leaderboard_csv(leaderboard(_sweep())))))
    assert rows[0] == ["rank", "run_name", "status", "mean_per_image", "model.filters", "best_val_iou", "best_epoch",
                       "run_id", "failure_reason"]
    assert len(rows) == 6
    assert rows[1] == ["1", "name-b", "FINISHED", "0.9000", "16", "0.2000", "", "b", ""]
    assert rows[3] == ["3", "name-a", "FINISHED", "0.7000", "8", "0.9500", "3", "a", ""]
    failed = next(row for row in rows if row[-2] == "failed")
    assert failed[2] == "FAILED" and failed[-1] == "TrainingDiverged: loss became NaN at epoch 2"  # first line only


def test_markdown_has_a_header_a_rule_and_a_row_per_run():
    lines = leaderboard_markdown(leaderboard(_sweep())).splitlines()
    assert len(lines) == 2 + 5
    assert lines[0].startswith("| rank | run_name | status | mean_per_image | model.filters |")
    assert lines[1] == "|" + "---|" * 9
    assert lines[2].startswith("| 1 | name-b | FINISHED | 0.9000 | 16 |")
    assert not math.isnan(leaderboard(_sweep())[0]["score"])


def test_a_runs_derived_params_do_not_split_groups_or_show_as_config():
    from skinexp.comparison.grouping import group_runs

    runs = [_run("a", params={"model.filters": "8", "threshold": "0.5", "train.steps": "40"}),
            _run("b", params={"model.filters": "8", "threshold": "0.35", "train.steps": "41"})]
    assert list(group_runs(runs)) == [(("dataset.name", "synthetic"), ("model.filters", "8"))]
