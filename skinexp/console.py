"""What a command prints besides its results: a copy of the console into the run's log file, and progress
bars over images for the long parts of evaluate, predict and `data check` (on a terminal only)."""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional, TextIO


class _Tee:
    """A text stream that writes to `stream` and, while a job runs (`copy` set), appends the same text to its log.

    Installed once as `sys.stdout` / `sys.stderr` and never swapped back: libraries bind those streams when they
    are imported (logging handlers, absl, alembic, OpenTelemetry's exporters), and a job may be the first to
    import them. Swapping in a fresh copy per job left them holding a copy whose log file the job had closed,
    so the next job of a sweep died writing to it. A job now only attaches and detaches its file.
    """

    def __init__(self, stream: TextIO):
        self._stream, self._copy = stream, None
        self._lock = threading.Lock()

    def attach(self, copy: Optional[TextIO]) -> Optional[TextIO]:
        """Copy to `copy` from now on (None: to nothing); returns the file copied to before."""
        with self._lock:
            previous, self._copy = self._copy, copy
        return previous

    def write(self, text: str) -> int:
        with self._lock:
            if self._copy is not None:
                self._copy.write(text)
                self._copy.flush()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ... of the real stream
        return getattr(self._stream, name)


def _installed_tee(name: str) -> _Tee:
    stream = getattr(sys, name)
    if not isinstance(stream, _Tee):
        stream = _Tee(stream)
        setattr(sys, name, stream)
    return stream


@contextlib.contextmanager
def copied_to(path: Path) -> Iterator[Path]:
    """Everything printed on stdout and stderr meanwhile is also appended to `path` (created with its folder).

    On exit the file is detached from both streams and closed: nothing that printed meanwhile keeps it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as copy:
        tees = [_installed_tee("stdout"), _installed_tee("stderr")]
        previous = [tee.attach(copy) for tee in tees]
        try:
            yield path
        finally:
            for tee, before in zip(tees, previous):
                tee.attach(before)


# TensorFlow's C++ start-up lines, written to file descriptor 2 while `import tensorflow` loads its libraries,
# before TF_CPP_MIN_LOG_LEVEL takes effect (absl's pre-init warning, oneDNN's and the CPU-feature guard's notes).
TENSORFLOW_CHATTER = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IWE]\d{4} [\d:. ]+\d+ (port|cpu_feature_guard|cpu_utils|cuda_dnn|cuda_fft|cuda_blas|cuda_executor|"
    r"gpu_device|dso_loader|cudart_stub)\.cc:\d+\]"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow")


@contextlib.contextmanager
def held_stderr_descriptor(chatter: re.Pattern = TENSORFLOW_CHATTER) -> Iterator[None]:
    """File descriptor 2 goes to a temporary file meanwhile; on exit, every line of it that `chatter` does not
    match is written to the real descriptor 2, in order."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not chatter.match(line)]
            if kept:
                os.write(2, "".join(kept).encode())


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `tensorflow` as the other finders do, and runs its first import under `held_stderr_descriptor`."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders answer from here on
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with held_stderr_descriptor():
            self._loader.exec_module(module)


def quiet_tensorflow_start_up() -> None:
    """Keep TensorFlow's start-up lines off stderr, unless the user asked for them with TF_CPP_MIN_LOG_LEVEL=0.

    Unset, the level becomes 3 (errors only) for what TensorFlow logs once started; the lines it writes while
    loading, which that level does not reach, are held back by the first `import tensorflow`, wherever it
    happens. oneDNN stays on: its bf16 kernels are what make `train.precision=auto` fast."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):  # unset or empty, as a user's shell has it
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def is_terminal(stream: Optional[TextIO] = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """`label [#####     ] 120/564 35.2 img/s ETA 12s`, redrawn in place on a terminal; silent elsewhere
    (logs, CI and batch jobs get the command's one-line summary instead).

    Not `keras.utils.Progbar`: importing it imports Keras and TensorFlow, which `data check` and image decoding
    must not pay, and it writes to stdout (where results go) from one thread, while decoding threads advance this.
    """

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
