"""compare.leaderboard, to_csv and to_markdown on hand-made runs shaped like MLflow's."""
from __future__ import annotations

import csv
import io
import math
from types import SimpleNamespace

from skinexp.leaderboard import leaderboard, to_csv, to_markdown


def _run(run_id: str, status: str = "FINISHED", params: dict | None = None, metrics: dict | None = None,
         tags: dict | None = None) -> SimpleNamespace:
    params = {"dataset.name": "synthetic", "tracking.run_name": run_id, **(params or {})}
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, run_name=f"name-{run_id}", status=status),
                           data=SimpleNamespace(params=params, metrics=metrics or {}, tags=tags or {}))


def _sweep() -> list[SimpleNamespace]:
    return [
        _run("a", params={"model.filters": "8"}, metrics={"best_val_iou": 0.7, "val_iou": 0.65, "best_epoch": 3.0}),
        _run("b", params={"model.filters": "16"}, metrics={"best_val_iou": 0.9, "val_iou": 0.2}),
        _run("failed", "FAILED", params={"model.filters": "32"}, metrics={"best_val_iou": 0.95},
             tags={"failure_reason": "TrainingDiverged: loss became NaN at epoch 2\nTraceback ..."}),
        _run("c", params={"model.filters": "4"}, metrics={"val_iou": 0.8, "val_loss": 0.25}),  # no best_: the last
        _run("nan", params={"model.filters": "64"}, metrics={"best_val_iou": math.nan}),
    ]


def test_finished_runs_rank_by_best_metric_descending_failed_and_nan_last():
    table = leaderboard(_sweep(), "val_iou")
    assert [row["run_id"] for row in table[:3]] == ["b", "c", "a"]
    assert {row["run_id"] for row in table[3:]} == {"failed", "nan"}
    assert [row["score"] for row in table[:3]] == [0.9, 0.8, 0.7]  # best_val_iou, else val_iou


def test_a_loss_ranks_ascending():
    runs = [_run("x", metrics={"best_val_loss": 0.3}), _run("y", metrics={"best_val_loss": 0.2}),
            _run("z", metrics={"val_loss": 0.5}), _run("broken", "FAILED", metrics={"best_val_loss": 0.1})]
    assert [row["run_id"] for row in leaderboard(runs, "val_loss")] == ["y", "x", "z", "broken"]


def test_only_params_that_differ_are_shown_and_missing_ones_are_blank():
    runs = _sweep() + [_run("bare")]
    table = leaderboard(runs, "val_iou")
    assert all(set(row["params"]) == {"model.filters"} for row in table)  # not dataset.name, not the run name
    assert next(row for row in table if row["run_id"] == "bare")["params"] == {"model.filters": ""}
    assert next(row for row in table if row["run_id"] == "failed")["failure_reason"].startswith("TrainingDiverged")


def test_csv_has_a_header_and_one_formatted_row_per_run():
    rows = list(csv.reader(io.StringIO(to_csv(leaderboard(_sweep(), "val_iou")))))
    assert rows[0] == ["rank", "run_name", "status", "score", "model.filters", "best_val_iou", "val_loss",
                       "best_epoch", "run_id", "failure_reason"]
    assert len(rows) == 6
    assert rows[1] == ["1", "name-b", "FINISHED", "0.9000", "16", "0.9000", "", "", "b", ""]
    assert rows[2] == ["2", "name-c", "FINISHED", "0.8000", "4", "", "0.2500", "", "c", ""]
    assert rows[3] == ["3", "name-a", "FINISHED", "0.7000", "8", "0.7000", "", "3", "a", ""]
    failed = next(row for row in rows if row[-2] == "failed")
    assert failed[2] == "FAILED" and failed[-1] == "TrainingDiverged: loss became NaN at epoch 2"  # first line only


def test_markdown_has_a_header_a_rule_and_a_row_per_run():
    lines = to_markdown(leaderboard(_sweep(), "val_iou")).splitlines()
    assert len(lines) == 2 + 5
    assert lines[0].startswith("| rank | run_name | status | score | model.filters |")
    assert lines[1] == "|" + "---|" * 10
    assert lines[2].startswith("| 1 | name-b | FINISHED | 0.9000 | 16 |")
