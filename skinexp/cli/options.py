"""`key=value` options of the commands that take no Hydra config (compare, runs, ui)."""
from __future__ import annotations

import socket

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
            from skinexp.config.checks import redact_uri

            raise ConfigError(f"{command} takes {' '.join(k + '=...' for k in options)}. "
                              f"Received: {key}{sep}{redact_uri(value)}")
        options[key] = value
    return options


def check_port_free(command: str, host: str, port_text: str, hint: str = "pick another port") -> int:
    """`port=` as an int once nothing listens on it there, so a busy port is one line and not a server's
    traceback; ConfigError naming the command and the value otherwise."""
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{command} port must be a number from 1 to 65535. Received: port={port_text}")
    port = int(port_text)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn does: connections of a previous server left in TIME_WAIT must not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot serve on {host}:{port} ({error.strerror}); stop what uses it or {hint}. "
                              f"Received: port={port}") from None
    return port
