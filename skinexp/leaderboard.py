"""Leaderboards: a sweep's jobs ranked by one metric, failed jobs last (the sweep's parent run logs it)."""
from __future__ import annotations

import csv
import io
import math
from typing import Any

_IGNORED_PARAMS = ("tracking.run_name", "resume")
SHOWN_METRICS = ("best_val_iou", "val_dice", "val_loss", "best_epoch")


def leaderboard(runs: list, metric: str = "val_iou") -> list[dict[str, Any]]:
    """Rows sorted by the best value of `metric` (descending; losses ascending), failed runs last.

    Each row: run_id, run_name, status, score, params (only those that differ between runs), metrics,
    failure_reason.
    """
    all_params = [run.data.params for run in runs]
    keys = sorted({k for params in all_params for k in params} - set(_IGNORED_PARAMS))
    differing = [k for k in keys if len({params.get(k) for params in all_params}) > 1]
    lower_is_better = metric.endswith("loss")
    rows = []
    for run in runs:
        metrics = run.data.metrics
        score = metrics.get(f"best_{metric}", metrics.get(metric, math.nan))
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
    return params, metrics, ["rank", "run_name", "status", "score", *params, *metrics, "run_id", "failure_reason"]


def _cells(rank: int, row: dict[str, Any], params: list[str], metrics: list[str]) -> list[str]:
    def fmt(value):
        return f"{value:.4f}" if isinstance(value, float) and not float(value).is_integer() else (
            str(int(value)) if isinstance(value, float) else str(value))

    return [str(rank), row["run_name"], row["status"], fmt(row["score"]), *[row["params"][p] for p in params],
            *[fmt(row["metrics"][m]) if m in row["metrics"] else "" for m in metrics], row["run_id"],
            row["failure_reason"].splitlines()[0][:120] if row["failure_reason"] else ""]


def to_csv(table: list[dict[str, Any]]) -> str:
    params, metrics, header = _columns(table)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for rank, row in enumerate(table, 1):
        writer.writerow(_cells(rank, row, params, metrics))
    return out.getvalue()


def to_markdown(table: list[dict[str, Any]]) -> str:
    params, metrics, header = _columns(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in enumerate(table, 1):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in _cells(rank, row, params, metrics)) + " |")
    return "\n".join(lines)
