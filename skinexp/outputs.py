"""The guards that keep a command from replacing what a user already has, and the one way outputs are written
(to a temporary name beside the target, moved into place when complete)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from skinexp.errors import ConfigError


def refuse_existing(paths: Iterable[Path], output: Path, overwrite: bool, key: str = "output") -> None:
    """ConfigError naming the first of `paths` that exists, unless `overwrite`."""
    existing = [path for path in paths if path.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{existing[0]} already exists; pass overwrite=true to replace it, or choose another "
                          f"{key}. Received: {len(existing)} existing file(s) in {key}={output}")


def refuse_input_as_output(source: Path, output: Path, targets: Iterable[Path] = (), *, source_key: str = "input",
                           key: str = "output") -> None:
    """ConfigError, whatever `overwrite` says, when writing `output` would replace what the command reads:
    `output` is `source` or lies inside it (after resolving links and `..`), or one of `targets` (the files about
    to be written) is `source` itself."""
    source_real, output_real = Path(source).resolve(), Path(output).resolve()
    clash = output_real == source_real or source_real in output_real.parents
    clash = clash or any(Path(target).resolve() == source_real for target in targets)
    if clash:
        raise ConfigError(f"{key} must not be the {source_key} or lie inside it (its files would be replaced while "
                          f"they are read); choose another {key}, even with overwrite=true. "
                          f"Received: {key}={output} with {source_key}={source}")


@contextmanager
def written_in_place(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; moved onto `path` when the block ends without an error, removed
    otherwise. A reader never sees half a file, and an interrupted command leaves the old file as it was."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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
