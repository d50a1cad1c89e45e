"""`key=value` options of the commands that take no Hydra config (compare, runs, ui, register, serve, server).

Each command states its options as a dataclass: OmegaConf's structured config (struct mode) types each value and
refuses an unknown key; we only turn its exceptions (which carry the key and the value) into one line.
"""
from __future__ import annotations

import dataclasses
import socket
from typing import TypeVar

from skinexp.errors import ConfigError

Options = TypeVar("Options")
_KINDS = {int: "a whole number", float: "a number", bool: "true or false"}


def wants_help(args: list[str]) -> bool:
    return bool({"-h", "--help"} & set(args))


def usage(command: str, schema: type, flags: str = "") -> str:
    options = " ".join(f"[{field.name}={_default(field) or '...'}]" for field in dataclasses.fields(schema))
    return f"usage: python -m skinexp {command} {flags + ' ' if flags else ''}{options}"


def _default(field: dataclasses.Field) -> str:
    value = field.default_factory() if field.default is dataclasses.MISSING else field.default
    return str(value)


def parse_options(command: str, args: list[str], schema: type[Options]) -> Options:
    """The `schema` dataclass with its defaults updated by `key=value` arguments, each converted to its field's
    type; ConfigError naming the argument for a missing `=`, an unknown key or a value of the wrong type."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    from skinexp.config.checks import redact_uri

    options = OmegaConf.structured(schema)
    for arg in args:
        key, sep, value = arg.partition("=")
        try:
            if not sep:
                raise ConfigKeyError(key)
            options[key] = value
        except (ConfigKeyError, ConfigAttributeError):
            takes = " ".join(f"{field.name}=..." for field in dataclasses.fields(schema))
            raise ConfigError(f"{command} takes {takes}. Received: {key}{sep}{redact_uri(value)}") from None
        except ValidationError as error:
            kind = _KINDS.get(type(options[error.full_key]), "of another type")
            raise ConfigError(f"{command} {error.full_key} must be {kind}. Received: {key}={error.value}") from None
    return OmegaConf.to_object(options)


def check_port_free(command: str, host: str, port: int, hint: str = "pick another port") -> int:
    """`port` once nothing listens on it there, so a busy port is one line and not a server's traceback;
    ConfigError naming the command and the value otherwise."""
    if not 0 < port < 65536:
        raise ConfigError(f"{command} port must be a number from 1 to 65535. Received: port={port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As uvicorn does: connections of a previous server left in TIME_WAIT must not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot serve on {host}:{port} ({error.strerror}); stop what uses it or {hint}. "
                              f"Received: port={port}") from None
    return port
