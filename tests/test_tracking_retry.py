"""The retry policy for remote tracking servers, on hand-made errors (no server): what is retried, for how long,
what is never retried, and that a run whose creation reached the server is not created twice (a real SQLite store)."""
from __future__ import annotations

import pytest
import requests
from mlflow.exceptions import MlflowException, RestException

from skinexp.errors import ConfigError, TrackingError
from skinexp.tracking import retry

# The slow tests share one real `mlflow server` (module fixture), started once, in one worker.
pytestmark = pytest.mark.xdist_group("tracking_retry")

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


# --- Idempotent retries against a real `mlflow server` behind a proxy that loses or delays answers (slow) ----------

@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` (SQLite store, proxied artifacts) on 127.0.0.1, one worker, for the module."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from browser import unused_port

    folder = tmp_path_factory.mktemp("mlflow-server")
    port = unused_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(folder / "server.log", "w") as log:
        process = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                                    "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
                                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture
def lossy(mlflow_server, monkeypatch):
    """A fresh proxy in front of the server with the client pointed at it: 60 s of retries, 3 s per request."""
    import mlflow
    from proxy import Proxy

    proxy = Proxy(mlflow_server).start()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    mlflow.set_tracking_uri(proxy.url)
    retry.configure(proxy.url, 60)
    monkeypatch.setattr(retry._policy, "log", lambda line: None)
    store = mlflow.MlflowClient(proxy.url)
    proxy.experiment_id = store.create_experiment(f"lossy-{id(proxy)}")
    proxy.store = store
    yield proxy
    while mlflow.active_run():
        mlflow.end_run()
    proxy.stop()
    retry.configure("sqlite:///unused.db", 0)


def _rule(proxy, method: str, path: str, action: str = "drop", seconds: float = 0.0):
    from proxy import Rule

    rule = Rule(method, path, action, seconds=seconds)
    proxy.rules.append(rule)
    return rule


@pytest.mark.slow
def test_a_lost_answer_to_a_sample_mask_upload_leaves_one_image_per_step(lossy):
    import numpy as np

    from skinexp.tracking import active

    dropped = _rule(lossy, "PUT", "images/samples+step+2")
    with active.run(lossy.experiment_id, "images") as run:
        for step in (1, 2, 3):
            active.log_image(np.full((16, 24, 3), 40 * step, np.uint8), key="samples", step=step)
    assert dropped.hits == 1
    names = sorted(item.path for item in lossy.store.list_artifacts(run.info.run_id, "images"))
    assert len(names) == 6, names  # one .png and one +compressed.webp per step
    for step in (1, 2, 3):
        assert sum(f"samples+step+{step}+" in name for name in names) == 2, names
    finished = lossy.store.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["mlflow.loggedImages"] == "True"


@pytest.mark.slow
def test_a_lost_answer_while_logging_models_and_bytes_leaves_one_of_each_and_a_finished_run(lossy, tmp_path):
    import keras
    import numpy as np

    from skinexp.tracking import active, models

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(1, 1, activation="sigmoid")])
    checkpoint = tmp_path / "best.keras"
    model.save(checkpoint)
    sample = np.zeros((1, 8, 8, 3), np.float32)
    rules = [_rule(lossy, "PUT", "/artifacts/MLmodel"), _rule(lossy, "PUT", "/artifacts/MLmodel"),
             _rule(lossy, "PUT", "data/val_masks.npz")]
    with active.run(lossy.experiment_id, "models") as run:
        active.log_keras_model(model, sample, model.predict(sample, verbose=0))
        models.log_segmenter(checkpoint, 0.5)
        active.log_bytes(b"masks", "data/val_masks.npz")
    assert [rule.hits for rule in rules] == [1, 1, 1]
    logged = lossy.store.search_logged_models([lossy.experiment_id],
                                              f"source_run_id = '{run.info.run_id}'", max_results=10)
    assert sorted(model.name for model in logged) == ["model", "segmenter"]
    assert lossy.store.get_run(run.info.run_id).info.status == "FINISHED"
    assert [item.path for item in lossy.store.list_artifacts(run.info.run_id, "data")] == ["data/val_masks.npz"]
    import mlflow

    segmenter = next(model for model in logged if model.name == "segmenter")
    loaded = mlflow.pyfunc.load_model(f"models:/{segmenter.model_id}")
    assert loaded.metadata.get_input_schema().input_names() == ["image"]


@pytest.mark.slow
def test_a_run_whose_creation_the_server_commits_late_is_one_run(lossy):
    """The first create waits 5 s before it reaches the server; the client gives up after 3 s, finds no run and
    creates one; then the first create lands. The experiment shows one run, FINISHED."""
    import time

    from skinexp.tracking import active

    held = _rule(lossy, "POST", "/runs/create", action="hold", seconds=5)
    with active.run(lossy.experiment_id, "slow") as run:
        time.sleep(4)  # the held create reaches the server meanwhile
    assert held.hits == 1
    runs = lossy.store.search_runs([lossy.experiment_id])
    assert [only.info.run_id for only in runs] == [run.info.run_id]
    assert runs[0].info.status == "FINISHED"
    from mlflow.entities import ViewType

    every = lossy.store.search_runs([lossy.experiment_id], run_view_type=ViewType.ALL)
    assert len(every) == 2
    twin = next(other for other in every if other.info.run_id != run.info.run_id)
    assert twin.info.lifecycle_stage == "deleted" and twin.data.tags["skinexp.duplicate_of"] == run.info.run_id


@pytest.mark.slow
def test_a_lost_answer_to_a_comparison_run_creation_is_one_comparison_run(lossy):
    from skinexp.tracking import comparisons

    dropped = _rule(lossy, "POST", "/runs/create")
    run_id = comparisons.start_comparison_run(lossy.experiment_id, "compare", ["a", "b"])
    comparisons.end_run(run_id)
    assert dropped.hits == 1
    runs = lossy.store.search_runs([lossy.experiment_id])
    assert [run.info.run_id for run in runs] == [run_id]
    assert runs[0].data.tags[comparisons.COMPARISON_TAG] == "true" and runs[0].info.status == "FINISHED"
