"""Sweeps as MLflow parent runs: a Hydra callback opens the parent before the jobs and closes it with a leaderboard.

Jobs find their parent through the SKINEXP_PARENT_RUN_ID variable (not MLFLOW_RUN_ID, which would make
every job resume the parent itself), so it works for in-process, joblib and submitit launchers alike.
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback

SWEEP_KEYS_ENV = "SKINEXP_SWEEP_KEYS"
_IGNORED_PARAMS = ("tracking.run_name", "resume")


def swept_keys(config) -> list[str]:
    """Keys varied by the sweep: command-line sweep overrides and an Optuna search space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
            if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    return list(dict.fromkeys([*keys, *params.keys()]))


class SweepTracker(Callback):
    """Opens the sweep's MLflow parent run on multirun start; logs the leaderboard and closes it at the end."""

    def __init__(self) -> None:
        self.parent_run_id: Optional[str] = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from skinexp import tracking

        # Creating the store here, once, keeps parallel jobs from racing through SQLite migrations.
        _, experiment_id = tracking.prepare_store(config.tracking, Path(config.hydra.runtime.cwd))
        overrides = list(config.hydra.overrides.task)
        keys = swept_keys(config)
        name = config.tracking.run_name or "sweep " + " ".join(
            o for o in overrides if o.split("=")[0].lstrip("+~") in keys) or "sweep"
        self.parent_run_id = tracking.start_parent_run(experiment_id, name, overrides)
        os.environ[tracking.PARENT_RUN_ENV] = self.parent_run_id
        os.environ[SWEEP_KEYS_ENV] = ",".join(keys)
        print(f"skinexp: sweep parent run {self.parent_run_id} ({name})", flush=True)

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        from skinexp import tracking

        if self.parent_run_id is None:
            return
        children = tracking.child_runs(self.parent_run_id)
        table = leaderboard(children)
        finished = sum(row["status"] == "FINISHED" for row in table)
        metrics = {"jobs_total": len(table), "jobs_finished": finished, "jobs_failed": len(table) - finished}
        tags = {}
        best = next((row for row in table if row["status"] == "FINISHED" and not math.isnan(row["score"])), None)
        if best is not None:
            tags = {"best_child_run_id": best["run_id"], "best_child_run_name": best["run_name"]}
            metrics.update({f"best_{key}": value for key, value in best["metrics"].items()})
        tracking.finish_parent_run(self.parent_run_id, metrics, tags, {
            "leaderboard.csv": to_csv(table), "leaderboard.md": to_markdown(table)})
        os.environ.pop(tracking.PARENT_RUN_ENV, None)
        print(f"skinexp: sweep {self.parent_run_id}: {finished} finished, {len(table) - finished} failed\n"
              f"{to_markdown(table)}", flush=True)


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
        return (bad, row["score"] if lower_is_better else -row["score"] if not math.isnan(row["score"]) else 0)

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


def compare(args: list[str]) -> int:
    """`python -m skinexp compare [sweep=<parent run id | name>] [experiment=skinexp] [metric=val_iou] [uri=...]`."""
    import mlflow

    from skinexp import tracking
    from skinexp.cli import fail, parse_options

    options = parse_options("compare", args, {"sweep": "", "experiment": "skinexp", "metric": "val_iou",
                                              "uri": "sqlite:///runs/mlflow.db"})
    uri = tracking.resolve_uri(options["uri"], Path.cwd())
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        fail(f"no MLflow store here; train first or pass uri=. Received: uri={options['uri']}")
    mlflow.set_tracking_uri(uri)
    try:
        parent = tracking.find_sweep(options["experiment"], options["sweep"] or None)
    except tracking.TrackingError as error:
        fail(str(error))
    table = leaderboard(tracking.child_runs(parent.info.run_id), options["metric"])
    finished = sum(row["status"] == "FINISHED" for row in table)
    print(f"sweep {parent.info.run_name} ({parent.info.run_id}, {parent.info.status}): {len(table)} jobs, "
          f"{finished} finished, {len(table) - finished} failed; ranked by best {options['metric']}\n")
    print(to_markdown(table))
    return 0
