"""What a command prints besides its results: a copy of the console into the run's log file, and progress
bars over images for the long parts of evaluate, predict and `data check` (on a terminal only)."""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, TextIO


class _Tee:
    """A text stream that writes to `stream` and appends the same text to `copy`."""

    def __init__(self, stream: TextIO, copy: TextIO):
        self._stream, self._copy = stream, copy

    def write(self, text: str) -> int:
        self._copy.write(text)
        self._copy.flush()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()
        self._copy.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._stream, name)


@contextlib.contextmanager
def copied_to(path: Path) -> Iterator[Path]:
    """Everything printed on stdout and stderr meanwhile is also appended to `path` (created with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as copy:
        previous = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, copy), _Tee(sys.stderr, copy)
        try:
            yield path
        finally:
            sys.stdout, sys.stderr = previous


def is_terminal(stream: Optional[TextIO] = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """`label [#####     ] 120/564 35.2 img/s ETA 12s`, redrawn in place on a terminal; silent elsewhere
    (logs, CI and batch jobs get the command's one-line summary instead)."""

    WIDTH = 24

    def __init__(self, total: int, label: str, stream: Optional[TextIO] = None, unit: str = "img"):
        self.total, self.label, self.unit, self.done = total, label, unit, 0
        self.stream = stream if stream is not None else sys.stderr
        self.shown = is_terminal(self.stream) and total > 0
        self._start = time.perf_counter()
        self._lock = threading.Lock()  # decoding threads advance it together

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done = min(self.total, self.done + count)
            if self.shown:
                self.stream.write("\r" + self.line())
                self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = self.done / elapsed
        filled = round(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (f"{self.label} [{'#' * filled}{' ' * (self.WIDTH - filled)}] {self.done}/{self.total} "
                f"{rate:.1f} {self.unit}/s ETA {eta:.0f}s")

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
