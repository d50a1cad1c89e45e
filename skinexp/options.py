"""`key=value` options of the commands that take no Hydra config (compare, runs, ui)."""
from __future__ import annotations

from skinexp.errors import ConfigError


def wants_help(args: list[str]) -> bool:
    return bool({"-h", "--help"} & set(args))


def usage(command: str, defaults: dict[str, str], flags: str = "") -> str:
    options = " ".join(f"[{key}={value or '...'}]" for key, value in defaults.items())
    return f"usage: python -m skinexp {command} {flags + ' ' if flags else ''}{options}"


def parse_options(command: str, args: list[str], defaults: dict[str, str]) -> dict[str, str]:
    """The defaults updated by `key=value` arguments; ConfigError naming the argument for anything else."""
    options = dict(defaults)
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in options:
            raise ConfigError(f"{command} takes {' '.join(k + '=...' for k in options)}. Received: {arg}")
        options[key] = value
    return options
