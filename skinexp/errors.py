"""The user-facing errors and exit statuses. Library code and commands raise these; only the entry point
(`skinexp.__main__`) turns them into the one `skinexp: error: ... Received: ...` line and an exit status.

This module imports nothing of the package, so every module may import it.
"""
from __future__ import annotations

from typing import Optional

EXIT_OK = 0
EXIT_USAGE = 2  # a known error: bad config, data, store, a diverged training
EXIT_SIGINT = 130  # Ctrl-C
EXIT_SIGTERM = 143  # SIGTERM (also what Slurm's scancel sends)


class SkinexpError(Exception):
    """A problem the user can fix; its message is one line that ends with `Received: ...`."""


class ConfigError(SkinexpError, ValueError):
    """A config value or command-line option that cannot work."""


class DataError(SkinexpError, ValueError):
    """Bad input data; the message names the file and what was found."""


class TrackingError(SkinexpError, RuntimeError):
    """The MLflow store cannot be used (missing, unreachable, refused)."""


class PermissionRefused(TrackingError):
    """The tracking server refused this user an action (HTTP 403): a READ-only user may read, not log."""


class TrainingDiverged(SkinexpError, RuntimeError):
    """The loss became NaN or infinite; the run ends FAILED."""


class TrialEnded(SkinexpError, RuntimeError):
    """An Optuna search ended this job's trial (FAIL, when the sweep was interrupted) while the job still trained
    elsewhere; the job stops and its run ends FAILED."""


class SweepFailed(SkinexpError, RuntimeError):
    """Every job of a sweep failed: the sweep produced nothing to compare, so the command fails (a sweep with at
    least one finished job succeeds; its failed jobs are FAILED runs under the parent)."""


class PastHydra(BaseException):
    """Carries a known error past Hydra, which turns an Exception from a job into a line of its own ("Error
    executing job with overrides: ...") and one from a callback into a warning; the command re-raises `error`."""

    def __init__(self, error: SkinexpError):
        super().__init__(str(error))
        self.error = error


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C: the run ends KILLED and the last finished epoch stays resumable."""


def exit_status(interrupt: KeyboardInterrupt) -> int:
    return EXIT_SIGTERM if isinstance(interrupt, Terminated) else EXIT_SIGINT


def interrupt_message(interrupt: KeyboardInterrupt) -> str:
    """What an interrupted command prints: what stopped, where, and how to continue.

    Training records `run_id`, `epochs_done` and `epochs` on the interrupt as it passes up; a caller above it may
    add `next_step` (an Optuna search: its study keeps the finished trials).
    """
    what = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted"
    run_id: Optional[str] = getattr(interrupt, "run_id", None)
    done, total = getattr(interrupt, "epochs_done", None), getattr(interrupt, "epochs", None)
    parts = [what + (f" after epoch {done} of {total}" if done is not None and total else "")]
    if run_id:
        parts.append(f"run {run_id} is KILLED")
        if getattr(interrupt, "resumable", False):
            parts.append(f"continue with: python -m skinexp train resume={run_id}")
    if getattr(interrupt, "next_step", None):
        parts.append(interrupt.next_step)
    return "skinexp: " + "; ".join(parts)
