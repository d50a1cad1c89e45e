"""`python -m skinexp runs --stale [--fix] [uri=...] [experiment=...]`: runs left RUNNING by a process that is gone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skinexp import tracking
from skinexp.cli.options import parse_options, wants_help
from skinexp.config.schema import DEFAULT_TRACKING
from skinexp.errors import ConfigError


@dataclass
class RunsOptions:
    uri: str = DEFAULT_TRACKING.uri
    experiment: str = ""


def runs_command(args: list[str]) -> int:
    if wants_help(args):
        print(f"usage: python -m skinexp runs --stale [--fix] [uri={DEFAULT_TRACKING.uri}] [experiment=...]")
        return 0
    flags = {a for a in args if a.startswith("--")}
    if not flags <= {"--stale", "--fix"} or "--stale" not in flags:
        raise ConfigError(f"runs takes --stale [--fix] [uri=...] [experiment=...]. "
                          f"Received: {' '.join(args) or '(nothing)'}")
    options = parse_options("runs", [a for a in args if not a.startswith("--")], RunsOptions)
    tracking.open_store_uri(options.uri, Path.cwd(), "uri")
    fix = "--fix" in flags
    stale = tracking.stale_runs(options.experiment or None)
    for run in stale:
        print(f"{run.info.run_id}  {run.info.run_name}  started {run.info.start_time}  process "
              f"{run.data.tags.get('skinexp.pid')} is gone")
        if fix:
            tracking.mark_killed(run.info.run_id, "process gone (marked by `runs --stale --fix`)")
    verb = "marked KILLED" if fix else "left RUNNING by a process that is gone"
    print(f"skinexp: {len(stale)} runs {verb}" + ("" if fix or not stale else "; --fix marks them KILLED"))
    return 0
