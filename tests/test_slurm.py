"""Sweeps through a real Slurm: a one-node Slurm started by scripts/slurm-up (munge, slurmdbd accounting, slurmctld,
slurmd), jobs submitted by hydra-submitit-launcher, runs logged to a real `python -m skinexp server`. `slow`; skipped
where Slurm is not installed or this is not root (make test-deps installs it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_server import (
    TrackingServer,
    client,
    login,
    restore_login,  # noqa: F401  (autouse: `client` leaves the admin's login in os.environ)
    server_folder,
    skip_without_server_deps,
)

from browser import unused_port
from conftest import REPO, TINY, run_cli, unavailable

# One Slurm per machine (slurm-up writes /etc/slurm/slurm.conf): the module's tests share one, in one worker.
# Slurm's start (in the first test) and a scancel with a resume: 100-120 s on 2 busy cores.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm"), pytest.mark.timeout(600)]
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "sbatch", "munged", "mariadbd")
CPU_SLURM = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]


def _installed(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm for the module, stopped (and /etc/slurm/slurm.conf put back) afterwards."""
    if os.geteuid() != 0:
        unavailable("a one-node Slurm needs root (scripts/slurm-up starts daemons and writes /etc/slurm/slurm.conf)")
    missing = [tool for tool in DAEMONS if not _installed(tool)]
    if missing:
        unavailable(f"Slurm is not installed ({', '.join(missing)} missing): make test-deps installs it as root")
    state = Path(tempfile.mkdtemp(prefix="skinexp-slurm-"))
    state.chmod(0o755)
    up = subprocess.run([str(REPO / "scripts" / "slurm-up"), str(state)], capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield state
    finally:
        down = subprocess.run([str(REPO / "scripts" / "slurm-down"), str(state)], capture_output=True, text=True,
                              timeout=120)
        shutil.rmtree(state, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def server(slurm):
    skip_without_server_deps()
    folder = server_folder()
    running = TrackingServer(folder, unused_port())
    try:
        running.wait_ready()
        yield running.url
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _sacct_states(job_ids: list[str], settle: float = 120) -> set[str]:
    """The jobs' states in Slurm's accounting, once none is still PENDING, RUNNING or COMPLETING there (within
    `settle` s). submitit reads a job's result from its file as soon as the job writes it; the job's end reaches
    slurmdbd after that, later still on busy cores (seen: RUNNING, with the sweep done, under -n 2)."""
    deadline = time.monotonic() + settle
    while True:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", *[f"-j{job}" for job in job_ids]],
                             capture_output=True, text=True, timeout=30).stdout
        states = {line.split()[0] for line in out.splitlines() if line.strip()}
        if not states & {"PENDING", "RUNNING", "COMPLETING"} or time.monotonic() > deadline:
            return states
        time.sleep(1)


def _runs(url: str, experiment_name: str):
    store = client(url)
    experiment = store.get_experiment_by_name(experiment_name)
    runs = store.search_runs([experiment.experiment_id], max_results=100) if experiment else []
    parents = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    return store, parents, [r for r in runs if r.data.tags.get("mlflow.parentRunId")]


def test_a_4_job_sweep_through_slurm_lands_under_one_parent(server, tmp_path):
    result = run_cli("train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", *CPU_SLURM,
                     *TINY, "model.filters=4,8", "optim.lr=1e-3,1e-4", "train.max_steps_per_epoch=2",
                     "tracking.log_model=false", f"tracking.uri={server}", "tracking.experiment=slurm",
                     cwd=tmp_path, env=login(), timeout=1500)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Bypassing sacct error" not in result.stdout + result.stderr  # accounting answers submitit's polls
    _, (parent,), children = _runs(server, "slurm")
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 4
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert {(c.data.params["model.filters"], c.data.params["optim.lr"]) for c in children} == {
        ("4", "0.001"), ("4", "0.0001"), ("8", "0.001"), ("8", "0.0001")}
    job_ids = [c.data.tags["slurm_job_id"] for c in children]
    assert len(set(job_ids)) == 4 and all(job.isdigit() for job in job_ids)
    assert _sacct_states(job_ids) == {"COMPLETED"}


def test_scancel_ends_the_run_killed_and_resume_finishes_it(server, tmp_path):
    epochs = 30
    log = tmp_path / "launcher.out"
    with open(log, "w") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "skinexp", "train", "-m", "hydra/launcher=slurm_local", *TINY, "train.seed=7",
             f"train.epochs={epochs}", "dataset.num_samples=48", "tracking.log_model=false",
             f"tracking.uri={server}", "tracking.experiment=scancel"], cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, **login(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline, run = time.monotonic() + 600, None
        while time.monotonic() < deadline and launcher.poll() is None:
            store, _, children = _runs(server, "scancel")
            if children and len(store.get_metric_history(children[0].info.run_id, "val_loss")) >= 2:
                run = children[0]
                break
            time.sleep(1)
        assert run is not None, log.read_text()[-3000:]
        job_id = run.data.tags["slurm_job_id"]
        subprocess.run(["scancel", job_id], check=True, timeout=30)  # Slurm sends SIGTERM, SIGKILL KillWait s later
        launcher.wait(timeout=600)  # submitit reads CANCELLED from sacct and gives up on the job
        deadline = time.monotonic() + 120
        while store.get_run(run.info.run_id).info.status == "RUNNING" and time.monotonic() < deadline:
            time.sleep(1)
        killed = store.get_run(run.info.run_id)
        assert killed.info.status == "KILLED", log.read_text()[-3000:]
        assert _sacct_states([job_id]) == {"CANCELLED"}
        done = len(store.get_metric_history(run.info.run_id, "val_loss"))
        assert 2 <= done < epochs
    finally:
        if launcher.poll() is None:
            launcher.kill()

    resumed = run_cli("train", f"resume={run.info.run_id}", f"tracking.uri={server}", cwd=tmp_path, env=login(),
                      timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = store.get_run(run.info.run_id)
    assert final.info.status == "FINISHED"
    steps = [m.step for m in store.get_metric_history(run.info.run_id, "val_loss")]
    assert sorted(steps) == list(range(1, epochs + 1))  # each epoch once: none lost, none repeated
