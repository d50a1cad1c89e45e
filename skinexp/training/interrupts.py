"""How training takes SIGINT and SIGTERM: they end a run KILLED, never inside an epoch's end."""
from __future__ import annotations

import signal
import threading

import keras

from skinexp.errors import Terminated


class Interrupts:
    """Training's SIGINT and SIGTERM handlers: SIGINT raises `KeyboardInterrupt`, SIGTERM `Terminated`; one that
    arrives while `deferring` (an epoch's end, see `DeferInterrupts`) is held and raised when that ends; a second
    one is raised at once.

    A context manager that installs the handlers in the main thread (elsewhere Python cannot) and puts the
    previous ones back; a signal the process was started ignoring (a worker left to its parent) stays ignored.
    Blocking the signals with `pthread_sigmask` would not do: the mask is per thread, the kernel hands a
    process-directed signal to any of TensorFlow's threads, and Python then runs the handler in the main thread
    at its next bytecode, wherever that is.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.deferring = False
        self.pending: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS
                              if signal.getsignal(signum) is not signal.SIG_IGN}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous, self.deferring, self.pending = {}, False, None

    def _handle(self, signum, frame) -> None:
        if self.deferring and self.pending is None:
            self.pending = signum
            return
        self._raise(signum)  # a second one while deferring too: an escape if the epoch's end hangs

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGTERM:
            raise Terminated("terminated (SIGTERM)")
        raise KeyboardInterrupt

    def defer(self) -> None:
        self.deferring = True

    def release(self) -> None:
        """Ends the deferral and raises the interrupt held meanwhile, if any."""
        self.deferring = False
        signum, self.pending = self.pending, None
        if signum is not None:
            self._raise(signum)


class DeferInterrupts(keras.callbacks.Callback):
    """Holds SIGINT/SIGTERM through an epoch's end: `defer=True` as the first callback, `defer=False` after the
    end-of-epoch work. An interrupt then never falls between keeping an epoch's state and logging its metrics,
    so resuming neither skips nor repeats a step."""

    def __init__(self, interrupts: Interrupts, defer: bool):
        super().__init__()
        self.interrupts, self.defer = interrupts, defer

    def on_epoch_end(self, epoch, logs=None):
        if self.defer:
            self.interrupts.defer()
        else:
            self.interrupts.release()
