"""How a search meets SIGINT and SIGTERM: both raise (KeyboardInterrupt, `Terminated`) anywhere in the sweep, and
neither lands inside a write to the study.

Training holds the signals through each epoch's end itself (`skinexp.training.interrupts.Interrupts`, a Keras
module the sweeper does not import); these cover the rest of a search in the main thread.
"""
from __future__ import annotations

import contextlib
import signal
import threading

from skinexp.errors import Terminated

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _installable(handler) -> bool:
    """A Python-level handler we may replace and put back (not one the process was started ignoring, nor one
    installed outside Python, which `signal.getsignal` returns as None)."""
    return handler is not None and handler is not signal.SIG_IGN


@contextlib.contextmanager
def sigterm_raises():
    """SIGTERM raises `Terminated`, as Ctrl-C raises KeyboardInterrupt, so a trial stopped outside its epochs
    (loading data, scoring the kept checkpoint, between trials) still ends FAIL with its run KILLED instead of a
    process gone with both RUNNING."""
    if threading.current_thread() is not threading.main_thread() or \
            not _installable(signal.getsignal(signal.SIGTERM)):
        yield
        return

    def terminate(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held():
    """SIGINT and SIGTERM held while a write to the study is under way, then delivered to the handler they would
    have met. An exception raised inside Optuna's journal append (its file lock held) or a database transaction
    would leave the lock behind or turn the interrupt into another error, and the trial into a failed job."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    previous = {signum: handler for signum, handler in previous.items() if _installable(handler)}
    for signum in previous:
        signal.signal(signum, lambda received, frame: held.append(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])
