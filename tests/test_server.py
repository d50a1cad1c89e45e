"""The team tracking server for real: `python -m skinexp server` on a private PostgreSQL cluster with MLflow's
basic-auth app, clients with and without the right login, a server SIGKILLed mid-training and restarted, and 16
jobs writing to it at once. Loopback only; `slow` (each test starts real servers), skipped without PostgreSQL."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

import pytest

from browser import unused_port
from conftest import TINY, error_line, run_cli, unavailable

ADMIN_PASSWORD = "admin-password-for-tests"
USERS = {"writer": "writer-password-1", "reader": "reader-password-1"}
EXPERIMENT = "skinexp"


def skip_without_server_deps() -> None:
    """Skip (with the reason; fail under CI=true) where PostgreSQL or the server extra is missing; the tests install
    nothing."""
    if find_spec("flask_wtf") is None or find_spec("psycopg") is None:
        unavailable("the `server` extra is missing (make install-server)")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and shutil.which("initdb") is None:
        unavailable("PostgreSQL is not installed (make test-deps installs Debian's postgresql as root)")


def login(user: str = "admin") -> dict[str, str]:
    password = ADMIN_PASSWORD if user == "admin" else USERS[user]
    return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}


def server_folder() -> Path:
    """A folder the `postgres` user can reach (pytest's own temp folders are closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="skinexp-server-"))
    folder.chmod(0o755)
    return folder


class TrackingServer:
    """`python -m skinexp server` in `cwd`, in its own session, as an admin would start it."""

    def __init__(self, cwd: Path, port: int, *args: str):
        self.cwd, self.port, self.url = cwd, port, f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"server-{time.monotonic_ns()}.out"
        env = {**os.environ, "SKINEXP_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD, "TF_CPP_MIN_LOG_LEVEL": "3"}
        with open(self.log_path, "w") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "skinexp", "server", f"port={port}", *args],
                                            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180) -> int:
        """Block until the ready line; the mlflow server's pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(r"ready at \S+ \(mlflow pid (\d+)\)", self.output())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.3)
        raise RuntimeError(f"no ready line within {timeout:.0f} s:\n{self.output()}")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def client(url: str):
    """An MLflow client for the server as the admin (MLflow reads the login from the environment at each call;
    `restore_login` puts the environment back after the module)."""
    from mlflow.tracking import MlflowClient

    os.environ.update(login())
    return MlflowClient(url)


@pytest.fixture(scope="module", autouse=True)
def restore_login():
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def postgres_pids(data_dir: Path) -> list[int]:
    """Processes of the cluster in `data_dir` that still run (its postmaster and children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "postgres" in command and str(data_dir) in command:
                pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def server():
    """One server for the module, with a writer (EDIT on the experiment) and a reader (READ)."""
    skip_without_server_deps()
    folder = server_folder()
    running = TrackingServer(folder, unused_port())
    try:
        running.wait_ready()
        admin = {**os.environ, "SKINEXP_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD}
        for user, permission in (("writer", "EDIT"), ("reader", "READ")):
            for args in (("add", user), ("grant", user, f"experiment={EXPERIMENT}", f"permission={permission}")):
                done = subprocess.run([sys.executable, "-m", "skinexp", "server", "user", *args, f"uri={running.url}"],
                                      cwd=folder, capture_output=True, text=True, timeout=120,
                                      env={**admin, "SKINEXP_SERVER_USER_PASSWORD": USERS[user]})
                assert done.returncode == 0, done.stderr[-2000:]
        yield {"server": running, "folder": folder, "url": running.url}
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def train(url: str, cwd: Path, user: str, *args: str, timeout: float = 600, sweep: bool = False):
    return run_cli("train", *(["-m"] if sweep else []), *TINY, "train.max_steps_per_epoch=2", f"tracking.uri={url}",
                   *args, cwd=cwd, timeout=timeout, env=login(user) if user else {"MLFLOW_TRACKING_USERNAME": "",
                                                                   "MLFLOW_TRACKING_PASSWORD": ""})


def run_count(url: str) -> int:
    experiment = client(url).get_experiment_by_name(EXPERIMENT)
    return len(client(url).search_runs([experiment.experiment_id])) if experiment else 0


def test_refuses_to_start_without_an_admin_password_or_with_mlflows_old_default(main, tmp_path, monkeypatch):
    monkeypatch.delenv("SKINEXP_SERVER_ADMIN_PASSWORD", raising=False)
    assert "set SKINEXP_SERVER_ADMIN_PASSWORD" in error_line(main("server", cwd=tmp_path))
    monkeypatch.setenv("SKINEXP_SERVER_ADMIN_PASSWORD", "password1234")
    assert "old default admin password" in error_line(main("server", cwd=tmp_path))
    assert not (tmp_path / "runs").exists()  # refused before anything was made


@pytest.mark.slow
def test_server_starts_and_stops_leaving_no_process_behind():
    skip_without_server_deps()
    folder = server_folder()
    try:
        running = TrackingServer(folder, unused_port())
        mlflow_pid = running.wait_ready()
        data_dir = folder / "runs" / "server" / "postgres"
        assert postgres_pids(data_dir), "the private cluster runs while the server does"
        import requests

        assert requests.get(running.url + "/health", timeout=5).status_code == 200
        assert requests.get(running.url + "/api/2.0/mlflow/experiments/search", timeout=5).status_code == 401
        started = time.monotonic()
        assert running.stop() == 0, running.output()
        assert time.monotonic() - started < 60
        assert not alive(mlflow_pid) and not postgres_pids(data_dir), running.output()
        assert "stopping the tracking server" in running.output()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _command_lines() -> dict[int, str]:
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return lines


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.slow
def test_no_secret_on_any_command_line_and_the_server_folder_is_closed_to_others():
    """Every process on the machine (the server, mlflow and its workers, PostgreSQL and what psql ran through): no
    password or key in its command line. The folder, secrets, logs and a logged artifact: the server's alone. A
    second server from the same folder is refused in one line and leaves the first one's database running."""
    import json

    from mlflow.tracking import MlflowClient

    skip_without_server_deps()
    folder = server_folder()
    try:
        running = TrackingServer(folder, unused_port())
        mlflow_pid = running.wait_ready()
        root = folder / "runs" / "server"
        keys = json.loads((root / "secrets.json").read_text())
        secrets = [keys["postgres_password"], keys["mlflow_password"], keys["secret_key"], ADMIN_PASSWORD]
        lines = _command_lines()
        assert mlflow_pid in lines and postgres_pids(root / "postgres")
        leaks = {pid: line[:200] for pid, line in lines.items() if any(secret in line for secret in secrets)}
        assert not leaks, leaks
        assert "--backend-store-uri" not in lines[mlflow_pid] and "postgresql://" not in " ".join(lines.values())

        os.environ.update(login())
        client = MlflowClient(running.url)
        run = client.create_run(client.create_experiment("modes"))
        client.log_text(run.info.run_id, "secret lesion", "notes/note.txt")
        client.set_terminated(run.info.run_id)
        artifacts = root / "artifacts"
        logged = [path for path in artifacts.rglob("*")]
        assert any(path.name == "note.txt" for path in logged)
        if os.geteuid() == 0:  # the `postgres` account must pass through to its cluster, and may list nothing
            import grp

            assert _mode(root) == 0o710 and grp.getgrgid(root.stat().st_gid).gr_name == "postgres"
        else:
            assert _mode(root) == 0o700
        assert _mode(artifacts) == 0o700
        for path in logged:
            assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
        for name in ("secrets.json", "basic_auth.ini", "mlflow.log", "postgres.log", "server.lock"):
            assert _mode(root / name) == 0o600, name
        assert not (root / ".initdb-password").exists()

        second = TrackingServer(folder, unused_port())
        assert second.process.wait(timeout=120) == 2
        lines_out = [line for line in second.output().splitlines() if line.strip()]
        assert len(lines_out) == 1 and "another skinexp server runs from this folder" in lines_out[0], lines_out
        assert f"locked by pid {running.process.pid}" in lines_out[0]
        assert postgres_pids(root / "postgres") and alive(mlflow_pid)
        import requests

        assert requests.get(running.url + "/health", timeout=5).status_code == 200
        assert running.stop() == 0, running.output()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.xdist_group("server")  # the module's one server
@pytest.mark.parametrize("user", ["wrong password", "no login"])
def test_wrong_or_missing_login_is_one_line_within_seconds_and_no_run(server, tmp_path, user):
    before = run_count(server['url'])
    env = ({"MLFLOW_TRACKING_USERNAME": "writer", "MLFLOW_TRACKING_PASSWORD": "not-the-password"}
           if user == "wrong password" else {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""})
    started = time.monotonic()
    result = run_cli("train", *TINY, f"tracking.uri={server['url']}", cwd=tmp_path, timeout=120, env=env)
    line = error_line(result)
    assert f"the tracking server at {server['url']} refused the login (HTTP 401" in line
    assert time.monotonic() - started < 30  # before TensorFlow loads
    assert run_count(server['url']) == before


@pytest.fixture(scope="module")
def writer_sweep(server, tmp_path_factory):
    """A two-job sweep the writer trained (one epoch each)."""
    workdir = tmp_path_factory.mktemp("writer")
    sweep = train(server["url"], workdir, "writer", "model.filters=4,6", "train.epochs=1", "tracking.log_model=false",
                  sweep=True)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    return workdir


@pytest.mark.slow
@pytest.mark.xdist_group("server")  # the module's one server
def test_a_read_only_user_is_refused_to_train_in_one_line_and_no_run(server, writer_sweep, tmp_path):
    before = run_count(server['url'])
    line = error_line(train(server["url"], tmp_path, "reader"))
    assert f"the tracking server at {server['url']} refused creating a run" in line
    assert "user reader (HTTP 403" in line
    assert run_count(server['url']) == before


@pytest.mark.slow
@pytest.mark.xdist_group("server")  # the module's one server
def test_a_read_only_user_compares_a_sweep(server, writer_sweep, tmp_path):
    compared = run_cli("compare", f"uri={server['url']}", cwd=tmp_path, env=login("reader"), timeout=120)
    assert "filters=4" in compared.stdout and "filters=6" in compared.stdout  # the leaderboard is printed
    assert compared.returncode == 0, compared.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.xdist_group("server")  # the module's one server
def test_reader_evaluates_a_run(server, tmp_path):
    trained = train(server["url"], tmp_path, "writer", "train.epochs=1", "tracking.log_model=false")
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = re.search(r"run ([0-9a-f]{32})", trained.stdout).group(1)
    result = run_cli("evaluate", f"run={run_id}", f"tracking.uri={server['url']}", f"output={tmp_path / 'eval'}",
                     cwd=tmp_path, env=login("reader"), timeout=300)
    assert (tmp_path / "eval" / "per_image.csv").is_file()
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.timeout(600)  # 12 epochs through a server killed and restarted: 185 s on 2 busy cores
def test_a_server_killed_mid_training_and_restarted_20_s_later_loses_nothing(tmp_path):
    """SIGKILL the tracking server after epoch 2 of 12, start it again 20 s later on the same database and port:
    the run ends FINISHED with every epoch's metrics, its samples and its model."""
    skip_without_server_deps()
    folder = server_folder()
    port = unused_port()
    running = TrackingServer(folder, port)
    restarted = training = None
    try:
        mlflow_pid = running.wait_ready()
        epochs = 12
        log = tmp_path / "train.out"
        with open(log, "w") as out:
            training = subprocess.Popen(
                [sys.executable, "-m", "skinexp", "train", *TINY, f"train.epochs={epochs}", "train.verbose=2",
                 "dataset.num_samples=48", f"tracking.uri={running.url}"], cwd=tmp_path, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, **login(), "TF_CPP_MIN_LOG_LEVEL": "3"})
        deadline = time.monotonic() + 300
        while "Epoch 3/" not in log.read_text() and time.monotonic() < deadline and training.poll() is None:
            time.sleep(0.2)
        assert "Epoch 3/" in log.read_text(), log.read_text()[-3000:]
        os.killpg(mlflow_pid, signal.SIGKILL)  # the tracking server, all of its workers
        assert running.process.wait(timeout=60) == 2  # the wrapper says so in one line and stops its database
        assert "stopped by itself (status -9)" in running.output()
        time.sleep(20)
        restarted = TrackingServer(folder, port)
        restarted.wait_ready()
        assert training.wait(timeout=600) == 0, log.read_text()[-3000:]
        output = log.read_text()
        assert "does not answer" in output and "answers again after" in output
        store = client(running.url)
        experiment = store.get_experiment_by_name(EXPERIMENT)
        (run,) = store.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        for metric in ("loss", "val_loss", "val_iou", "epoch_seconds"):
            steps = [m.step for m in store.get_metric_history(run.info.run_id, metric)]
            assert sorted(steps) == list(range(1, epochs + 1)), (metric, steps)
        images = [a.path for a in store.list_artifacts(run.info.run_id, "images")]
        steps = {int(p.split("+step+")[1].split("+")[0]) for p in images if p.endswith(".png")}
        assert steps == set(range(0, epochs + 1))
        models = store.search_logged_models([experiment.experiment_id],
                                            filter_string=f"source_run_id = '{run.info.run_id}'")
        assert "model" in {m.name for m in models if str(m.status).endswith("READY")}
        assert "checkpoints/best.keras" in {a.path for a in store.list_artifacts(run.info.run_id, "checkpoints")}
    finally:
        if training is not None and training.poll() is None:
            training.kill()
        for server_process in (restarted, running):
            if server_process is not None:
                server_process.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.xdist_group("server")  # the module's one server
@pytest.mark.timeout(600)  # 16 trainings, 4 at a time: 200 s on 2 busy cores
def test_16_jobs_4_at_a_time_against_the_server(server, tmp_path):
    """joblib, 4 jobs at once, 16 in all: 16 runs FINISHED under one parent, none lost, no metric step twice."""
    seeds = ",".join(str(seed) for seed in range(1, 17))
    result = train(server["url"], tmp_path, "writer", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                   f"train.seed={seeds}", "train.epochs=2", "tracking.log_model=false", "tracking.experiment=load",
                   timeout=1800, sweep=True)
    assert result.returncode == 0, result.stderr[-3000:]
    store = client(server["url"])
    experiment = store.get_experiment_by_name("load")
    runs = store.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 16
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(int(r.data.params["train.seed"]) for r in children) == list(range(1, 17))
    for run in children:
        steps = [m.step for m in store.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(steps) == [1, 2], (run.info.run_name, steps)
