"""The retry policy for remote tracking servers, on hand-made errors (no server): what is retried, for how long,
what is never retried, and that a run whose creation reached the server is not created twice (a real SQLite store)."""
from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from skinexp.errors import ConfigError, TrackingError
from skinexp.tracking import retry

URI = "http://127.0.0.1:9"


class Clock:
    """Stands in for time.monotonic / time.sleep: sleeping advances it, so a 300 s budget takes no time."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(retry.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(retry.time, "sleep", clock.sleep)
    lines: list[str] = []
    retry.configure(URI, 300)
    monkeypatch.setattr(retry._policy, "log", lines.append)
    clock.lines = lines
    yield clock
    retry.configure("sqlite:///unused.db", 0)


def failing(errors: list[BaseException], result="ok"):
    """A call that raises each of `errors` once, then returns `result`."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    call.calls = calls
    return call


def connection_refused() -> MlflowException:
    # How MLflow reports a refused connection with its own retries off: the requests error as the context.
    try:
        try:
            raise requests.ConnectionError("[Errno 111] Connection refused")
        except requests.ConnectionError:
            # MLflow chains it implicitly (no `from`), so the requests error is only the context.
            raise MlflowException(f"API request to {URI}/api/2.0/mlflow/runs/log-batch failed with exception ...")  # noqa: B904
    except MlflowException as error:
        return error


def test_connection_refused_then_back_is_retried_with_doubling_waits(clock):
    call = failing([connection_refused() for _ in range(5)])
    assert retry.call(call) == "ok"
    assert len(call.calls) == 6
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert "does not answer (ConnectionError); retrying for up to 300 s" in clock.lines[0]
    assert "answers again after 16 s" in clock.lines[1]


def test_an_outage_longer_than_the_budget_is_one_error_and_later_calls_fail_at_once(clock):
    with pytest.raises(TrackingError, match=r"did not answer for 300 s \(tracking.retry_seconds\).*resume=") as error:
        retry.call(failing([connection_refused()] * 1000))
    assert str(error.value).endswith(f"Received: tracking.uri={URI}")
    assert sum(clock.sleeps) == pytest.approx(300)
    assert max(clock.sleeps) == retry.LONGEST_WAIT
    assert retry.server_gone()
    waited = len(clock.sleeps)
    with pytest.raises(TrackingError):
        retry.call(failing([connection_refused()]))
    assert len(clock.sleeps) == waited  # no second 300 s for the run's ending


@pytest.mark.parametrize("status", [502, 503, 504, 500])
def test_gateway_and_server_errors_are_retried(clock, status):
    error = MlflowException(f"API request to endpoint /x failed with error code {status} != 200. Response body: ''")
    assert retry.call(failing([error])) == "ok"


def test_a_database_error_the_server_reports_as_json_is_retried(clock):
    assert retry.call(failing([RestException({"error_code": "INTERNAL_ERROR", "message": "db down"})])) == "ok"


@pytest.mark.parametrize("error, status", [
    (MlflowException("API request to endpoint /x failed with error code 401 != 200. Response body: 'no'"), 401),
    (RestException({"error_code": "PERMISSION_DENIED", "message": "Permission denied"}), 403),
])
def test_a_refused_login_or_permission_is_never_retried(clock, monkeypatch, error, status):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "reader")
    call = failing([error])
    with pytest.raises(TrackingError, match=rf"at {URI} refused .*\(HTTP {status}") as raised:
        retry.call(call, what="creating a run")
    assert len(call.calls) == 1 and clock.sleeps == []
    assert str(raised.value).endswith(f"Received: tracking.uri={URI} with MLFLOW_TRACKING_USERNAME=reader")


def test_other_errors_pass_through_untouched(clock):
    bad = MlflowException("Invalid value for param", error_code="INVALID_PARAMETER_VALUE")
    with pytest.raises(MlflowException, match="Invalid value"):
        retry.call(failing([bad]))
    with pytest.raises(ValueError):
        retry.call(failing([ValueError("a bug")]))
    assert clock.sleeps == []


def test_a_local_store_is_called_once(clock):
    retry.configure("sqlite:///runs/mlflow.db", 300)
    call = failing([connection_refused()])
    with pytest.raises(MlflowException):
        retry.call(call)
    assert len(call.calls) == 1


def test_a_negative_budget_is_a_config_error():
    with pytest.raises(ConfigError, match=r"Received: tracking.retry_seconds=-1"):
        retry.configure(URI, -1)


def test_a_run_created_before_the_answer_was_lost_is_found_not_created_twice(clock, tmp_path):
    """The server created the run but the answer never came back (it died first): the retry finds it by its token."""
    import mlflow

    from skinexp.tracking.active import START_TAG, create_once

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = mlflow.MlflowClient()
    experiment_id = store.create_experiment("e")
    attempts = []

    def create(token):
        attempts.append(token)
        run = store.create_run(experiment_id, tags=token)
        if len(attempts) == 1:
            raise connection_refused()
        return run.info.run_id

    run_id = create_once(experiment_id, create, lambda found: found)
    assert len(attempts) == 1  # the second attempt looked first and found it
    (only,) = store.search_runs([experiment_id])
    assert only.info.run_id == run_id and START_TAG in only.data.tags
