"""Sweeps as MLflow parent runs: a Hydra callback opens the parent before the jobs and closes it with a leaderboard.

Jobs find their parent through the SKINEXP_PARENT_RUN_ID variable (not MLFLOW_RUN_ID, which would make
every job resume the parent itself), so it works for in-process, joblib and submitit launchers alike.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback

from skinexp.errors import PastHydra, SweepFailed

SWEEP_KEYS_ENV = "SKINEXP_SWEEP_KEYS"


def swept_keys(config) -> list[str]:
    """Keys varied by the sweep: command-line sweep overrides and an Optuna search space."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
            if o.is_sweep_override()]
    params = config.hydra.sweeper.get("params") or {}
    return list(dict.fromkeys([*keys, *params.keys()]))


class SweepTracker(Callback):
    """Opens the sweep's MLflow parent run on multirun start; logs the leaderboard and closes it at the end: FINISHED
    when a job finished, else FAILED, and the command fails (SweepFailed, exit status 2)."""

    def __init__(self) -> None:
        self.parent_run_id: Optional[str] = None

    def on_multirun_start(self, config, **kwargs: Any) -> None:
        from skinexp import tracking
        from skinexp.search.sweeper import search_can_run

        if not search_can_run(config):  # the sweeper refuses it next, in one line; no parent run left behind
            return
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
        from skinexp.comparison.command import compare_sweep
        from skinexp.comparison.leaderboard import leaderboard, leaderboard_csv, leaderboard_markdown

        if self.parent_run_id is None:
            return
        children = tracking.child_runs(self.parent_run_id)
        table = leaderboard(children)
        finished = sum(row["status"] == "FINISHED" for row in table)
        metrics = {"jobs_total": len(table), "jobs_finished": finished, "jobs_failed": len(table) - finished}
        failed = None
        if table and not finished:
            failed = SweepFailed(f"every job of sweep {self.parent_run_id} failed, so it has nothing to compare; "
                                 f"each job's line above says why, and so does its FAILED run's failure_reason "
                                 f"under the parent. Received: {len(table)} of {len(table)} jobs failed")
        tags = {"failure_reason": str(failed)} if failed else {}
        best = next((row for row in table if row["status"] == "FINISHED" and not math.isnan(row["score"])), None)
        if best is not None:
            tags = {"best_child_run_id": best["run_id"], "best_child_run_name": best["run_name"]}
            metrics.update({f"best_{key}": value for key, value in best["metrics"].items()})
            metrics["best_val_image_iou"] = best["score"]  # what the leaderboard ranked
        tracking.finish_parent_run(self.parent_run_id, metrics, tags, {
            "leaderboard.csv": leaderboard_csv(table), "leaderboard.md": leaderboard_markdown(table)},
            status="FAILED" if failed else "FINISHED")
        if failed:
            os.environ.pop(tracking.PARENT_RUN_ENV, None)
            print(leaderboard_markdown(table), flush=True)
            raise PastHydra(failed)  # Hydra would turn an Exception from a callback into a warning
        try:  # the report must not fail a sweep that trained
            report = compare_sweep(self.parent_run_id, Path(config.hydra.sweep.dir) / "comparison")
            if report is not None:
                print(f"skinexp: sweep report {report}", flush=True)
        except Exception as error:
            print(f"skinexp: warning: the sweep's comparison report failed: {type(error).__name__}: {error}",
                  flush=True)
        os.environ.pop(tracking.PARENT_RUN_ENV, None)
        print(f"skinexp: sweep {self.parent_run_id}: {finished} finished, {len(table) - finished} failed\n"
              f"{leaderboard_markdown(table)}", flush=True)


def end_unfinished_sweep(error: BaseException) -> None:
    """A sweep that stopped before its end (a job that did not compose, an interrupt) ends its parent run
    FAILED or KILLED instead of leaving it RUNNING."""
    from skinexp import tracking

    parent_run_id = os.environ.pop(tracking.PARENT_RUN_ENV, None)
    if parent_run_id is None:
        return
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    tracking.end_parent_run(parent_run_id, status, f"{type(error).__name__}: {error}")
