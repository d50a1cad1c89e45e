"""Hydra glue for the commands: config discovery, up-front validation, one-line errors, exit statuses."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


def conf_dir() -> Path:
    """The packaged configs (a wheel install) or the repo's conf/ (a source or editable install)."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


def fail(message: str) -> None:
    """One line on stderr, exit status 2, no traceback."""
    print(f"skinexp: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def one_line(error: BaseException) -> str:
    """A composition error as one line: Hydra's message joined with its cause."""
    parts = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    cause = error.__cause__
    if cause is not None:
        parts += [line.strip() for line in str(cause).strip().splitlines()[:1] if line.strip()]
    return "; ".join(dict.fromkeys(p for p in parts if not p.startswith(("full_key", "object_type", "reference_type"))))


def parse_options(command: str, args: list[str], defaults: dict[str, str]) -> dict[str, str]:
    """`key=value` arguments of the commands that need no Hydra config; unknown keys fail with one line."""
    options = dict(defaults)
    if {"-h", "--help"} & set(args):
        print(f"usage: python -m skinexp {command} " + " ".join(f"[{k}={v or '...'}]" for k, v in defaults.items()))
        sys.exit(0)
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in options:
            fail(f"{command} takes {' '.join(k + '=...' for k in options)}. Received: {arg}")
        options[key] = value
    return options


def _register() -> None:
    from omegaconf import OmegaConf

    from skinexp.config import register_configs, register_inference_configs

    register_configs()
    register_inference_configs()
    if not OmegaConf.has_resolver("skinexp_pid"):
        # The pid keeps two jobs started in the same second in different output directories; cached so that
        # launcher workers (joblib, Ray) resolve the sweep directory to the launching process's pid.
        OmegaConf.register_new_resolver("skinexp_pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("skinexp_or"):
        OmegaConf.register_new_resolver("skinexp_or", lambda value, default: default if value is None else value)


def compose(config_name: str, overrides: list[str]):
    """Compose a config the way the command line would (no Hydra run), for checks and tests."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    _register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=overrides)


def precheck(config_name: str, args: list[str], validate: Callable[[Any], None]) -> None:
    """Compose and validate a single run's config before Hydra starts it, so errors cost no TensorFlow import."""
    from skinexp.config import ConfigError

    try:
        cfg = compose(config_name, args)
        validate(cfg)
    except ConfigError as error:
        fail(str(error))
    except Exception as error:  # Hydra and OmegaConf composition errors
        fail(one_line(error))


def run_hydra(command: str, config_name: str, task: Callable[[Any], Any], args: list[str],
              validate: Callable[[Any], None]) -> int:
    """Run `task` under @hydra.main with Hydra's own command line (-m, --cfg, --help, launchers, sweepers)."""
    import hydra

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    _register()
    if not any(arg.startswith("-") for arg in args):
        precheck(config_name, args, validate)
    sys.argv = [f"skinexp {command}", *args]
    hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(task)()
    return 0


def _job(name: str) -> Callable[[Any], Any]:
    """The Hydra task `skinexp.jobs.<name>`, imported only when a job runs: MLflow alone takes 1.5 s to import,
    which `--help`, `--cfg` and rejected configs should not pay."""

    def task(cfg):
        from skinexp import jobs

        return getattr(jobs, name)(cfg)

    return task


def train_command(args: list[str]) -> int:
    from skinexp.config import validate_train

    return run_hydra("train", "train", _job("train_job"), args, validate_train)


def ui_command(args: list[str]) -> int:
    from skinexp.ui import ui_command as run_ui

    return run_ui(args)


def evaluate_command(args: list[str]) -> int:
    from skinexp.config import validate_inference

    return run_hydra("evaluate", "evaluate", _job("evaluate_job"), args, validate_inference)


def predict_command(args: list[str]) -> int:
    from skinexp.config import validate_inference

    return run_hydra("predict", "predict", _job("predict_job"), args, validate_inference)


def rerun_command(args: list[str]) -> int:
    if not args or "=" in args[0] or args[0].startswith("-"):
        fail(f"usage: python -m skinexp rerun <run id> [overrides]. Received: {' '.join(args) or '(nothing)'}")
    return train_command([f"rerun_of={args[0]}", *args[1:]])


def runs_command(args: list[str]) -> int:
    from skinexp.resume import runs_command as run_runs

    return run_runs(args)


def compare_command(args: list[str]) -> int:
    from skinexp.sweeps import compare

    return compare(args)


def data_command(args: list[str]) -> int:
    from skinexp.datacmd import data_command as run_data

    return run_data(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": train_command,
    "evaluate": evaluate_command,
    "predict": predict_command,
    "data": data_command,
    "compare": compare_command,
    "rerun": rerun_command,
    "runs": runs_command,
    "ui": ui_command,
}
