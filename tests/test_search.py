"""The Optuna search (skinexp/search): pruned and completed trials as the study and MLflow record them, a study
that persists and continues (on a journal file and on PostgreSQL), an interrupted search that loses no finished
trial, two workers on one study, n_jobs=2 on joblib, submitit and Slurm, and refusals before any trial."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_slurm import slurm  # noqa: F401  the one-node Slurm (scripts/slurm-up), started only by the Slurm test

from conftest import TINY, error_line, run_cli

# The 4-trial study is built once; the slow tests' parallel trials then take turns, not both workers at once.
pytestmark = pytest.mark.xdist_group("search")

# Two learning rates far apart on a 2-epoch model: Hyperband's first rung (epoch 1) keeps the first trial and
# prunes a later one whose val_iou is lower there; model.filters=4 fixes the config's filters dimension.
SEARCH = ["hparams_search=optuna", *TINY, "train.max_steps_per_epoch=2", "tracking.log_model=false",
          "optim.lr=choice(1e-5,0.03)"]


def _study(storage, name="skinexp"):
    """The study at a journal file's path or a database URL."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if "://" not in str(storage):
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(storage)))
    return optuna.load_study(study_name=name, storage=storage)


def _runs(uri):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags and "skinexp.comparison" not in r.data.tags]
    return parents, children


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    from conftest import run_main

    workdir = tmp_path_factory.mktemp("search")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_main("train", *SEARCH, "hydra.sweeper.n_trials=4", f"tracking.uri={uri}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"result": result, "uri": uri, "workdir": workdir, "storage": str(workdir / "runs" / "optuna.journal")}


def test_pruned_and_completed_trials_match_their_mlflow_runs(search):
    import optuna

    study = _study(search["storage"])
    (parent,), children = _runs(search["uri"])
    assert parent.data.tags["optuna_study"] == "skinexp"
    assert parent.data.tags["optuna_storage"] == search["storage"]
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in children}
    assert sorted(by_trial) == [t.number for t in study.trials] == [0, 1, 2, 3]
    states = {t.state for t in study.trials}
    assert states == {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}  # both happen here
    for trial in study.trials:
        run = by_trial[trial.number]
        assert run.info.status == "FINISHED" and trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert trial.user_attrs["val_image_iou"] == pytest.approx(run.data.metrics["val_image_iou"])
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert run.data.tags["pruned"] == "true"
            epoch = int(run.data.tags["pruned_at_epoch"])
            assert epoch == trial.user_attrs["pruned_at_epoch"] == max(trial.intermediate_values)
            assert len(MlflowClient(search["uri"]).get_metric_history(run.info.run_id, "loss")) == epoch  # stopped
            assert (Path(run.data.tags["output_dir"]) / "checkpoints" / "best.keras").is_file()  # checkpoint kept
        else:
            assert "pruned" not in run.data.tags
            assert trial.value == pytest.approx(run.data.metrics["val_image_iou"])  # the value compare ranks
            assert sorted(trial.intermediate_values) == [1, 2]  # val_iou after every epoch
    best = study.best_trial
    assert f"best: trial {best.number}, val_image_iou {best.value:.4f}" in search["result"].stdout


def test_the_same_command_again_continues_the_study(search):
    from conftest import run_main

    before = {t.number: (t.state, t.value, t.params) for t in _study(search["storage"]).trials}
    result = run_main("train", *SEARCH, "hydra.sweeper.n_trials=2", f"tracking.uri={search['uri']}",
                      cwd=search["workdir"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 earlier trials, 2 new" in result.stdout
    after = _study(search["storage"]).trials
    assert [t.number for t in after] == [0, 1, 2, 3, 4, 5]
    assert {t.number: (t.state, t.value, t.params) for t in after[:4]} == before  # the earlier trials kept
    parents, children = _runs(search["uri"])
    newest = max(parents, key=lambda run: run.info.start_time)
    numbers = {run.data.tags["optuna_trial"] for run in children
               if run.data.tags["mlflow.parentRunId"] == newest.info.run_id}
    assert numbers == {"4", "5"}


@pytest.mark.parametrize("override, fragment", [
    ("hydra.sweeper.pruner=sometimes", "Received: hydra.sweeper.pruner=sometimes"),
    ("hydra.sweeper.storage=redis://localhost/0", "Received: hydra.sweeper.storage=redis://localhost/0"),
    ("hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/none", "Received: hydra.sweeper.storage=postgresql://"),
    ("hydra.sweeper.storage=postgresql://me:s3cret@127.0.0.1:1/db",
     "PGPASSWORD or ~/.pgpass, which libpq reads, and leave it out of the URL. "
     "Received: hydra.sweeper.storage=postgresql://me:***@127.0.0.1:1/db"),
    ("hydra.sweeper.n_trials=0", "Received: hydra.sweeper.n_trials=0"),
])
def test_a_bad_pruner_or_storage_is_refused_before_any_trial(main, tmp_path, override, fragment):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    line = error_line(main("train", *SEARCH, override, f"tracking.uri={uri}", cwd=tmp_path))
    assert fragment in line and "s3cret" not in line
    assert not (tmp_path / "mlflow.db").exists() or not _runs(uri)[0]  # no parent run, no trial


@pytest.mark.slow
def test_two_workers_share_one_study(cli, tmp_path):
    """Two sweeps at once on one journal file (as on two machines): 2 + 2 trials, numbered 0 to 3, all ended."""
    import os
    import subprocess
    import sys

    import optuna

    storage = tmp_path / "shared.journal"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "skinexp", "train", *SEARCH, "hydra.sweeper.n_trials=2",
         f"hydra.sweeper.storage={storage}", "hydra.sweeper.pruner=none", f"hydra.sweeper.sampler.seed={seed}",
         f"tracking.uri=sqlite:///{tmp_path / f'worker{seed}.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    trials = _study(str(storage)).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    runs = {t.user_attrs["mlflow_run_id"] for t in trials}
    assert len(runs) == 4


def _two_at_a_time(cli, tmp_path, *launcher: str, timeout: float = 600):
    """A 4-trial search with n_jobs=2 on `launcher`: each trial its own launch and job folder, every trial ended
    COMPLETE or PRUNED in the one study, each matching its MLflow run (FINISHED, tagged with its number)."""
    import optuna

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("train", *SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", *launcher,
                 f"tracking.uri={uri}", cwd=tmp_path, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    trials = _study(tmp_path / "runs" / "optuna.journal").trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    (parent,), children = _runs(uri)
    assert parent.info.status == "FINISHED" and parent.data.tags["optuna_study"] == "skinexp"
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in children}
    assert sorted(by_trial) == [0, 1, 2, 3] and len({run.data.tags["output_dir"] for run in children}) == 4
    for trial in trials:
        run = by_trial[trial.number]
        assert run.info.status == "FINISHED" and trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert (run.data.tags.get("pruned") == "true") == (trial.state == optuna.trial.TrialState.PRUNED)
    spans = sorted((run.info.start_time, run.info.end_time) for run in children)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # two trials ran at once
    return children


@pytest.mark.slow
def test_trials_run_two_at_a_time_on_joblib(cli, tmp_path):
    _two_at_a_time(cli, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")


@pytest.mark.slow
def test_trials_run_two_at_a_time_on_submitit_local_processes(cli, tmp_path):
    children = _two_at_a_time(cli, tmp_path, "hydra/launcher=local_processes", "hydra.launcher.cpus_per_task=1")
    (sweep_dir,) = {Path(run.data.tags["output_dir"]).parent for run in children}
    processes = [job for job in (sweep_dir / ".submitit").iterdir() if job.name.isdigit()]  # named by process id
    assert len(processes) == 4  # each trial its own submitit job


@pytest.mark.slow
@pytest.mark.usefixtures("slurm")
def test_trials_run_two_at_a_time_on_slurm(cli, tmp_path):
    """Through a real one-node Slurm (scripts/slurm-up): each trial its own Slurm job, all in the one study."""
    children = _two_at_a_time(cli, tmp_path, "hydra/launcher=slurm_local", timeout=1500)
    job_ids = [run.data.tags["slurm_job_id"] for run in children]
    assert len(set(job_ids)) == 4 and all(job.isdigit() for job in job_ids)


@pytest.mark.slow
def test_a_search_on_postgresql_runs_and_the_same_command_continues_it(main, tmp_path, monkeypatch):
    """A private PostgreSQL cluster (skinexp.team.postgres, as the team server starts it): the URL carries no
    password, libpq reads it from PGPASSWORD."""
    import shutil

    from test_server import server_folder, skip_without_server_deps

    from skinexp.team import postgres

    skip_without_server_deps()
    folder = server_folder()
    cluster = postgres.start(folder, "superuser-password", "role-password")
    try:
        monkeypatch.setenv("PGPASSWORD", cluster.password)
        storage = f"postgresql://{postgres.ROLE}@127.0.0.1:{cluster.port}/{postgres.DATABASES[0]}"
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        command = ["train", *SEARCH, f"hydra.sweeper.storage={storage}", f"tracking.uri={uri}"]
        first = main(*command, "hydra.sweeper.n_trials=2", cwd=tmp_path)
        assert first.returncode == 0, first.stderr[-3000:]
        assert [t.number for t in _study(storage).trials] == [0, 1]
        again = main(*command, "hydra.sweeper.n_trials=1", cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "2 earlier trials, 1 new" in again.stdout
        trials = _study(storage).trials
        assert [t.number for t in trials] == [0, 1, 2] and all(t.state.is_finished() for t in trials)
        parents, children = _runs(uri)
        assert {run.data.tags["optuna_storage"] for run in parents} == {storage}
        assert sorted(run.data.tags["optuna_trial"] for run in children) == ["0", "1", "2"]
        assert {t.user_attrs["mlflow_run_id"] for t in trials} == {run.info.run_id for run in children}
    finally:
        postgres.stop(cluster.data_dir)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status, said", [(signal.SIGINT, 130, "skinexp: interrupted after epoch"),
                                                  (signal.SIGTERM, 143, "skinexp: terminated (SIGTERM) after epoch")],
                         ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_search_keeps_its_finished_trials_and_the_same_command_continues(tmp_path, signum, status,
                                                                                        said):
    """A real signal to `python -m skinexp train hparams_search=optuna` while its second trial trains."""
    import optuna

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    journal = tmp_path / "runs" / "optuna.journal"
    command = ["train", *SEARCH, "hydra.sweeper.pruner=none", "train.epochs=8", f"tracking.uri={uri}"]
    search = subprocess.Popen([sys.executable, "-m", "skinexp", *command, "hydra.sweeper.n_trials=3"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},  # SIGINT as from a terminal:
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not a job's SIG_IGN
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and search.poll() is None:
            trials = _study(journal).trials if journal.exists() else []
            if len(trials) == 2 and trials[0].state.is_finished() and trials[1].intermediate_values:
                break  # trial 1 has trained an epoch
            time.sleep(0.5)
        assert search.poll() is None, search.communicate()[1][-3000:]
        search.send_signal(signum)
        out, err = search.communicate(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == status, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(said), err[-3000:]
    assert lines[0].endswith("study skinexp keeps its 1 finished trials; the same command again continues it")
    assert "resume=" not in lines[0]  # the trial is FAIL: resuming its run would not finish it
    trials = _study(journal).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    (parent,), children = _runs(uri)
    assert parent.info.status == "KILLED"
    assert {int(run.data.tags["optuna_trial"]): run.info.status for run in children} == {0: "FINISHED", 1: "KILLED"}

    again = run_cli(*command, "hydra.sweeper.n_trials=1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 earlier trials, 1 new" in again.stdout
    after = _study(journal).trials
    assert [(t.number, t.state) for t in after] == [(0, optuna.trial.TrialState.COMPLETE),
                                                    (1, optuna.trial.TrialState.FAIL),
                                                    (2, optuna.trial.TrialState.COMPLETE)]
    assert after[0].value == trials[0].value and after[0].params == trials[0].params  # the finished trial kept
    _, children = _runs(uri)
    assert not [run for run in children if run.info.status == "RUNNING"]



@pytest.mark.slow
def test_an_interrupted_search_on_joblib_fails_the_trials_in_flight_and_their_jobs_stop(tmp_path):
    """n_jobs=2 on joblib, SIGINT to the sweep alone (its jobs run on in their worker processes): the trials in
    flight are FAIL at once, each job stops at its next epoch with one line, its run FAILED; nothing RUNNING."""
    import optuna

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    journal = tmp_path / "runs" / "optuna.journal"
    search = subprocess.Popen(
        [sys.executable, "-m", "skinexp", "train", *SEARCH, "hydra.sweeper.pruner=none", "train.epochs=8",
         "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         f"tracking.uri={uri}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal, not a job's SIG_IGN
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and search.poll() is None:
            if journal.exists() and any(t.intermediate_values for t in _study(journal).trials):
                break
            time.sleep(0.5)
        assert search.poll() is None, search.communicate()[1][-3000:]
        search.send_signal(signal.SIGINT)
        _, err = search.communicate(timeout=300)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    sweep = [line for line in lines if line.startswith("skinexp: interrupted; study skinexp keeps its")]
    jobs = [line for line in lines if line.startswith("skinexp: job ") and "failed: the sweep ended trial" in line]
    assert len(sweep) == 1 and len(lines) == 1 + len(jobs), err[-3000:]  # in any order: the jobs print their own
    trials = _study(journal).trials
    failed = [t.number for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all(t.state.is_finished() for t in trials)
    (parent,), children = _runs(uri)
    assert parent.info.status == "KILLED"
    statuses = {int(run.data.tags["optuna_trial"]): run.info.status for run in children}
    assert {statuses[number] for number in failed} == {"FAILED"} and "RUNNING" not in statuses.values()

def test_a_signal_during_a_write_to_the_study_is_delivered_once_the_write_is_done():
    """What keeps an interrupt out of Optuna's journal append: the write finishes, then the signal raises as it
    would have (SIGTERM as `Terminated` under the sweep's handler)."""
    from skinexp.errors import Terminated
    from skinexp.search.interrupts import signals_held, sigterm_raises

    before = signal.getsignal(signal.SIGTERM)
    # SIGINT as a terminal's process has it: a suite started in the background (`cmd &` in a script) inherits it
    # ignored, and a process that ignores SIGINT rightly keeps ignoring it under signals_held.
    terminal = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for signum, raised in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
            written = []
            with pytest.raises(raised), sigterm_raises(), signals_held():
                signal.raise_signal(signum)
                written.append("the whole line")
            assert written == ["the whole line"]
    finally:
        signal.signal(signal.SIGINT, terminal)
    assert signal.getsignal(signal.SIGTERM) is before  # the sweep's handler is gone after it
