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


def remove_if_only_bookkeeping(directory: Path, log_names: tuple[str, ...]) -> bool:
    """Remove a command's own output folder when it holds nothing but Hydra's `.hydra/` and the command's logs
    (a command refused before it made anything); True when removed. Anything else in it keeps it."""
    import shutil

    if not directory.is_dir():
        return False
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if path.is_file() and relative.parts[0] != ".hydra" and relative.name not in log_names:
            return False
    shutil.rmtree(directory, ignore_errors=True)
    return True
