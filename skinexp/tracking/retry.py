"""Calls to a remote tracking server that outlive a restart of it: retried with backoff for a bounded time.

MLflow's own HTTP retries are off for remote stores (`store.prepare_store`), so that this module alone decides how
long a call waits: up to `tracking.retry_seconds` of one outage, then one TrackingError line. A refused login or
permission (HTTP 401 / 403) is never retried. Local stores (SQLite, folders) are called once, as before.

Retrying is only safe for calls that mean the same thing twice: callers pass fixed payloads (metrics with their
timestamp, which the server deduplicates; artifacts under fixed names; tags; the final status).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional, TypeVar

from skinexp.errors import ConfigError, PermissionRefused, TrackingError

T = TypeVar("T")
RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REFUSED_STATUS = frozenset({401, 403})
# MLflow's JSON error codes for the same two cases.
RETRIED_CODES = frozenset({"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})
REFUSED_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "UNAUTHORIZED", "CUSTOMER_UNAUTHORIZED"})
FIRST_WAIT, LONGEST_WAIT = 0.5, 10.0


@dataclass
class Policy:
    """How long one outage of the server at `uri` may last (0: no retries, a local store)."""

    uri: str = ""
    seconds: float = 0.0
    down_since: Optional[float] = None  # the outage in progress, if any
    gone: bool = False  # an outage outlasted `seconds`: later calls fail at once
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


_policy = Policy()


def configure(uri: str, seconds: float) -> None:
    """Set once per process by `store.prepare_store`: remote URIs get `seconds` of retries, others none."""
    global _policy
    if not seconds >= 0:
        raise ConfigError(f"tracking.retry_seconds must be 0 or more. Received: tracking.retry_seconds={seconds}")
    remote = uri.startswith(("http://", "https://"))
    _policy = Policy(uri=uri, seconds=float(seconds) if remote else 0.0, log=_policy.log)


def server_gone() -> bool:
    """Whether the server stayed away longer than the retry budget (so ending a run cannot reach it either)."""
    return _policy.gone


def http_status(error: BaseException) -> Optional[int]:
    """The HTTP status an MLflow or requests error carries, when it carries one."""
    response = getattr(error, "response", None)
    if getattr(response, "status_code", None) is not None:
        return int(response.status_code)
    text = str(error)
    marker = "failed with error code "
    if marker in text:
        digits = text.split(marker, 1)[1][:3]
        if digits.isdigit():
            return int(digits)
    return None


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_refused(error: BaseException) -> bool:
    """A 401 / 403: wrong credentials or a missing permission. Retrying cannot help."""
    return http_status(error) in REFUSED_STATUS or getattr(error, "error_code", None) in REFUSED_CODES


def is_transient(error: BaseException) -> bool:
    """Connection refused or reset, a timeout, or a status a restarting server or its database answers."""
    import requests

    if is_refused(error):
        return False
    for link in _chain(error):
        if isinstance(link, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                             ConnectionError, TimeoutError)):
            return True
    status = http_status(error)
    if status is not None:
        return status in RETRIED_STATUS
    # A JSON error from the server itself (RestException): its code says what happened.
    return type(error).__name__ == "RestException" and getattr(error, "error_code", None) in RETRIED_CODES


def refused_error(error: BaseException, what: str) -> TrackingError:
    """One line for a 401 (the login) or a 403 (the user may not do `what`)."""
    import os

    status = http_status(error) or (401 if getattr(error, "error_code", "") == "UNAUTHENTICATED" else 403)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if status == 401:
        why = "refused the login (HTTP 401: wrong or missing MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
    else:
        why = f"refused {what} for user {user or '(none)'} (HTTP 403: no permission; an admin grants it)"
    kind = TrackingError if status == 401 else PermissionRefused
    return kind(f"the tracking server at {_policy.uri} {why}. "
                f"Received: tracking.uri={_policy.uri} with MLFLOW_TRACKING_USERNAME={user or '(unset)'}")


def call(function: Callable[..., T], *args, what: str = "the request", **kwargs) -> T:
    """`function(*args, **kwargs)`, retried while the server is away, for up to the policy's seconds per outage.

    Raises TrackingError (one line) for a refused login or permission, and once an outage outlasts the budget.
    """
    policy = _policy
    wait = FIRST_WAIT
    while True:
        try:
            result = function(*args, **kwargs)
        except Exception as error:
            if is_refused(error) and policy.uri:
                raise refused_error(error, what) from None
            if policy.seconds <= 0 or not is_transient(error):
                raise
            if policy.gone:
                raise _gone(policy) from None
            now = time.monotonic()
            if policy.down_since is None:
                policy.down_since = now
                policy.log(f"skinexp: warning: the tracking server at {policy.uri} does not answer "
                           f"({_reason(error)}); retrying for up to {policy.seconds:.0f} s (tracking.retry_seconds)")
            if now - policy.down_since >= policy.seconds:
                policy.gone = True
                raise _gone(policy) from None
            time.sleep(min(wait, max(0.0, policy.down_since + policy.seconds - now)))
            wait = min(wait * 2, LONGEST_WAIT)
            continue
        if policy.down_since is not None:
            policy.log(f"skinexp: the tracking server at {policy.uri} answers again after "
                       f"{time.monotonic() - policy.down_since:.0f} s")
            policy.down_since = None
        return result


def _reason(error: BaseException) -> str:
    for link in _chain(error):
        if type(link).__module__.startswith(("requests", "urllib3")) or isinstance(link, OSError):
            return type(link).__name__
    status = http_status(error)
    return f"HTTP {status}" if status else type(error).__name__


def _gone(policy: Policy) -> TrackingError:
    import mlflow

    active = mlflow.active_run()
    run_id = active.info.run_id if active else "<run id>"
    return TrackingError(
        f"the tracking server at {policy.uri} did not answer for {policy.seconds:.0f} s (tracking.retry_seconds); "
        f"the run stays RUNNING there and its last finished epoch is kept on disk: once the server is back, "
        f"continue it with `python -m skinexp train resume={run_id}`. Received: tracking.uri={policy.uri}")
