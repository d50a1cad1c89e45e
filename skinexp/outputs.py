"""The one guard that keeps a command from replacing what a user already has."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from skinexp.errors import ConfigError


def refuse_existing(paths: Iterable[Path], output: Path, overwrite: bool, key: str = "output") -> None:
    """ConfigError naming the first of `paths` that exists, unless `overwrite`."""
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} already exists; pass overwrite=true to replace it, or choose another "
                          f"{key}. Received: {len(existing)} existing file(s) in {key}={output}")
