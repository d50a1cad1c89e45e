"""The commands: each takes its command-line arguments and returns an exit status, or raises a
`skinexp.errors` error for the entry point (`skinexp.__main__`, the only importer of this module) to report."""
from __future__ import annotations

from collections.abc import Callable

from skinexp.errors import ConfigError


def train_command(args: list[str]) -> int:
    from skinexp.cli.hydra_app import run_hydra
    from skinexp.config.checks import check_train

    # `experiment` sits in the defaults list (as `null`), so Hydra would refuse to append it with `+`.
    args = [arg[1:] if arg.startswith("+experiment=") else arg for arg in args]
    # `cv=5` names the option `cv/5fold`: Hydra reads a bare 5 as a number, which cannot name a config.
    args = [f"{arg}fold" if arg.startswith("cv=") and arg[3:].isdigit() else arg for arg in args]
    return run_hydra("train", "train", "train_job", args, check_train)


def _quoted_group(args: list[str]) -> list[str]:
    """`group=model.filters=6` (a group name as `compare` prints it) quoted for Hydra, which splits on `=`."""
    return [f"group='{arg[6:]}'" if arg.startswith("group=") and "=" in arg[6:] and arg[6:7] not in "'\"" else arg
            for arg in args]


def evaluate_command(args: list[str]) -> int:
    from skinexp.cli.hydra_app import run_hydra
    from skinexp.config.checks import check_inference

    return run_hydra("evaluate", "evaluate", "evaluate_job", _quoted_group(args), check_inference)


def predict_command(args: list[str]) -> int:
    from skinexp.cli.hydra_app import run_hydra
    from skinexp.config.checks import check_inference

    return run_hydra("predict", "predict", "predict_job", _quoted_group(args), check_inference)


RERUN_USAGE = ("usage: python -m skinexp rerun <run id> [overrides]: train again from a logged run's own config "
               "(its recorded train.steps when it was budgeted); overrides change it, as for train")


def rerun_command(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print(RERUN_USAGE)
        return 0
    if not args or "=" in args[0] or args[0].startswith("-"):
        raise ConfigError(f"usage: python -m skinexp rerun <run id> [overrides]. "
                          f"Received: {' '.join(args) or '(nothing)'}")
    return train_command([f"rerun_of={args[0]}", *args[1:]])


def data_command(args: list[str]) -> int:
    from skinexp.data.command import data_command as run

    return run(args)


def compare_command(args: list[str]) -> int:
    from skinexp.comparison.command import compare_command as run

    return run(args)


def runs_command(args: list[str]) -> int:
    from skinexp.cli.runs import runs_command as run

    return run(args)


def ui_command(args: list[str]) -> int:
    from skinexp.team.ui import ui_command as run

    return run(args)


def server_command(args: list[str]) -> int:
    if args and args[0] == "user":
        from skinexp.team.users import user_command

        return user_command(args[1:])
    from skinexp.team.server import server_command as run

    return run(args)


def register_command(args: list[str]) -> int:
    from skinexp.registry.register import register_command as run

    return run(args)


def serve_command(args: list[str]) -> int:
    from skinexp.registry.serve import serve_command as run

    return run(args)


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": train_command,
    "evaluate": evaluate_command,
    "predict": predict_command,
    "data": data_command,
    "compare": compare_command,
    "rerun": rerun_command,
    "runs": runs_command,
    "ui": ui_command,
    "register": register_command,
    "serve": serve_command,
    "server": server_command,
}
