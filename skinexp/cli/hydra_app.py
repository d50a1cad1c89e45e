"""Running a command as a Hydra app: Hydra's own command line (-m, --cfg, --help, launchers, sweepers), with
the config checked before Hydra starts so a bad value costs no TensorFlow import."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skinexp.config.compose import compose, composition_errors, conf_dir, explain, register
from skinexp.errors import ConfigError, PastHydra, SkinexpError


def _discard_run_dir() -> None:
    from hydra.core.hydra_config import HydraConfig

    from skinexp.outputs import remove_if_only_bookkeeping

    hydra_cfg = HydraConfig.get()
    remove_if_only_bookkeeping(Path(hydra_cfg.runtime.output_dir), (f"{hydra_cfg.job.name}.log",))


def _task(job_name: str, started: list[bool]) -> Callable[[Any], Any]:
    """The Hydra task `skinexp.cli.jobs.<job_name>`, imported only when a job runs: MLflow alone takes 1.5 s to
    import, which `--help`, `--cfg` and rejected configs should not pay."""

    def task(cfg):
        from skinexp import console
        from skinexp.cli import jobs

        console.quiet_tensorflow_start_up()  # again in a launcher's worker process, where main() did not run

        started.append(True)
        try:
            return getattr(jobs, job_name)(cfg)
        except SkinexpError as error:
            if not getattr(error, "run_id", None):  # refused before any run: no empty folder left behind
                _discard_run_dir()
            raise PastHydra(error) from error

    return task


def _without_search_dimensions(args: list[str]) -> list[str]:
    """The overrides a single run composes with: under `hparams_search=` (a sweep without `-m`) a search dimension
    is left to the sweeper, which checks it before any trial."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not any(arg.startswith("hparams_search=") for arg in args):
        return args

    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except composition_errors():
        return args  # compose says what does not parse
    return [override.input_line for override in parsed if not override.is_sweep_override()]


def run_hydra(command: str, config_name: str, job_name: str, args: list[str],
              check: Callable[[Any], None]) -> int:
    """Compose and `check` a single run up front, then run `jobs.<job_name>` under `@hydra.main`.

    Errors reach the caller as they were raised (Hydra's own error printing is off); a config that does not
    compose raises ConfigError.
    """
    import hydra

    register()
    if not any(arg.startswith("-") for arg in args):
        check(compose(config_name, _without_search_dimensions(args)))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing a trimmed traceback and exiting 1
    sys.argv = [f"skinexp {command}", *args]
    started: list[bool] = []
    try:
        hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(
            _task(job_name, started))()
    except PastHydra as carried:  # from a job, or from the sweep's end (every job failed)
        raise carried.error from None
    except BaseException as error:
        from skinexp.training.sweeps import end_unfinished_sweep

        end_unfinished_sweep(error)
        if isinstance(error, composition_errors()) and not started:  # inside a job it is a bug, not a config
            raise ConfigError(explain(error, config_name, args)) from None
        raise
    return 0
