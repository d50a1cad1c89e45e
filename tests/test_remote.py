"""Remote tracking for real: a tiny run logged to a live `mlflow server` over HTTP, read back over HTTP."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from browser import Server, unused_port
from conftest import TINY, run_cli

EXPERIMENT = "remote"
EPOCHS = 2

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("remote")]  # one real `mlflow server` for the module: minutes


def _listed(client: MlflowClient, run_id: str, folder: str) -> set[str]:
    return {item.path for item in client.list_artifacts(run_id, folder)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `mlflow server` for the module: temp SQLite backend, proxied artifacts in a temp folder."""
    root = tmp_path_factory.mktemp("server")
    port = unused_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    launcher = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command = [*launcher, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]  # requests land on either worker
    # GenAI job execution is not what these tests are about; without it the server starts twice as fast.
    running = Server(command, port, cwd=root, log_path=root / "server.log",
                     env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        running.wait_ready(timeout=90)
        yield {"url": running.url, "artifacts": root / "artifacts", "process": running}
    finally:
        running.stop()


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """`python -m skinexp train` against the server; the run as the server reports it."""
    workdir = tmp_path_factory.mktemp("remote-train")
    result = run_cli("train", *TINY, f"train.epochs={EPOCHS}", "model.filters=6", f"tracking.uri={server['url']}",
                     f"tracking.experiment={EXPERIMENT}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:] + "\n" + server["process"].log()
    client = MlflowClient(server["url"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    return {"result": result, "client": client, "run": run, "experiment": experiment, "workdir": workdir}


def test_run_finished_and_tagged_for_the_model_training_view(trained):
    assert trained["run"].info.status == "FINISHED"
    assert trained["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_per_epoch_metrics_over_http(trained):
    client, run_id = trained["client"], trained["run"].info.run_id
    history = client.get_metric_history(run_id, "val_iou")
    assert [metric.step for metric in history] == list(range(1, EPOCHS + 1))
    by_step = {metric.step: metric.value for metric in history}
    assert trained["run"].data.metrics["best_val_iou"] == pytest.approx(max(by_step.values()))  # the same values
    assert trained["run"].data.metrics["best_epoch"] == max(by_step, key=by_step.get)


def test_params_over_http(trained):
    params = trained["run"].data.params
    assert params["model.filters"] == "6" and params["train.epochs"] == str(EPOCHS)
    assert params["tracking.uri"] == trained["client"].tracking_uri


def test_artifacts_are_proxied_by_the_server(trained, server):
    client, run = trained["client"], trained["run"]
    run_id = run.info.run_id
    assert "config/config.yaml" in _listed(client, run_id, "config")
    assert "checkpoints/best.keras" in _listed(client, run_id, "checkpoints")
    images = _listed(client, run_id, "images")
    sample_steps = {f.split("+step+")[1].split("+")[0] for f in images if f.startswith("images/samples+step+")}
    assert sample_steps == {str(step) for step in range(0, EPOCHS + 1)}  # step 0: the untrained model
    # Uploaded through the server, not written by the client to a path of its own.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list(server["artifacts"].rglob("best.keras"))
    config = client.download_artifacts(run_id, "config/config.yaml", str(trained["workdir"]))
    assert "filters: 6" in Path(config).read_text()


def test_summary_points_at_the_server_ui(trained, server):
    out = trained["result"].stdout
    run = trained["run"]
    assert f"{server['url']}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" in out


def test_unreachable_server_fails_fast_with_one_line(tmp_path):
    closed = unused_port()  # nothing listens there once the probe socket is closed
    started = time.monotonic()
    result = run_cli("train", *TINY, f"tracking.uri=http://127.0.0.1:{closed}", cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("skinexp: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith("skinexp: error: tracking.uri is unreachable")
    assert errors[0].endswith(f"Received: tracking.uri=http://127.0.0.1:{closed}")
    assert "Traceback" not in result.stderr
    assert elapsed < 60, f"took {elapsed:.0f} s"
