"""Leaderboards: a sweep's jobs ranked by the comparison's quantity, each run's mean per-image score of its kept
checkpoint at threshold 0.5 (the metric `val_image_<score>` a training run logs), failed jobs last (the sweep's
parent run logs it)."""
from __future__ import annotations

import math
from typing import Any

from skinexp.comparison.table import SCORES, score_name
from skinexp.comparison.text import csv_text, markdown_text
from skinexp.config.naming import is_bookkeeping

SHOWN_METRICS = ("best_val_iou", "best_epoch", "best_threshold")


def run_metric(score: str) -> str:
    """The metric a training run logs for its mean per-image `score` at threshold 0.5."""
    return f"val_image_{score}"


def leaderboard(runs: list, metric: str = "iou") -> list[dict[str, Any]]:
    """Rows sorted by each run's mean per-image `metric` (highest first; hd95 lowest first), failed runs last.

    Each row: run_id, run_name, status, score, params (only those that differ between runs), metrics,
    failure_reason.
    """
    score_key = run_metric(score_name(metric))
    all_params = [run.data.params for run in runs]
    keys = sorted(k for k in {k for params in all_params for k in params} if not is_bookkeeping(k))
    differing = [k for k in keys if len({params.get(k) for params in all_params}) > 1]
    lower_is_better = not SCORES[score_name(metric)][2]
    rows = []
    for run in runs:
        metrics = run.data.metrics
        score = metrics.get(score_key, math.nan)
        rows.append({
            "run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status, "score": score,
            "params": {k: run.data.params.get(k, "") for k in differing},
            "metrics": {k: metrics[k] for k in SHOWN_METRICS if k in metrics},
            "failure_reason": run.data.tags.get("failure_reason", ""),
        })

    def order(row):
        bad = row["status"] != "FINISHED" or math.isnan(row["score"])
        if bad:  # failed or unscored runs last, in the order they ran
            return (True, 0.0)
        return (False, row["score"] if lower_is_better else -row["score"])

    return sorted(rows, key=order)


def _columns(table: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    params = list(table[0]["params"]) if table else []
    metrics = [m for m in SHOWN_METRICS if any(m in row["metrics"] for row in table)]
    return params, metrics, ["rank", "run_name", "status", "mean_per_image", *params, *metrics, "run_id",
                             "failure_reason"]


def _cells(rank: int, row: dict[str, Any], params: list[str], metrics: list[str]) -> list[str]:
    def fmt(value):
        return f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else (
            str(int(value)) if isinstance(value, float) else str(value))

    return [str(rank), row["run_name"], row["status"], fmt(row["score"]), *[row["params"][p] for p in params],
            *[fmt(row["metrics"][m]) if m in row["metrics"] else "" for m in metrics], row["run_id"],
            row["failure_reason"].splitlines()[0][:120] if row["failure_reason"] else ""]


def leaderboard_csv(table: list[dict[str, Any]]) -> str:
    params, metrics, header = _columns(table)
    return csv_text(header, [_cells(rank, row, params, metrics) for rank, row in enumerate(table, 1)])


def leaderboard_markdown(table: list[dict[str, Any]]) -> str:
    params, metrics, header = _columns(table)
    return markdown_text(header, [_cells(rank, row, params, metrics) for rank, row in enumerate(table, 1)])
