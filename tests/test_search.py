"""The Optuna search (skinexp/search): pruned and completed trials as the study and MLflow record them, a study
that persists and continues, two workers on one study, and refusals before any trial."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line

# The 4-trial study is built once; the slow tests' parallel trials then take turns, not both workers at once.
pytestmark = pytest.mark.xdist_group("search")

# Two learning rates far apart on a 2-epoch model: Hyperband's first rung (epoch 1) keeps the first trial and
# prunes a later one whose val_iou is lower there; model.filters=4 fixes the config's filters dimension.
SEARCH = ["hparams_search=optuna", *TINY, "train.max_steps_per_epoch=2", "tracking.log_model=false",
          "optim.lr=choice(1e-5,0.03)"]


def _study(storage, name="skinexp"):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(storage)))


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
    ("hydra.sweeper.n_trials=0", "Received: hydra.sweeper.n_trials=0"),
])
def test_a_bad_pruner_or_storage_is_refused_before_any_trial(main, tmp_path, override, fragment):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    line = error_line(main("train", *SEARCH, override, f"tracking.uri={uri}", cwd=tmp_path))
    assert fragment in line
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
        [sys.executable, "-m", "skinexp", "train", *SEARCH, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}",
         "hydra.sweeper.pruner=none", f"hydra.sweeper.sampler.seed={seed}",
         f"tracking.uri=sqlite:///{tmp_path / f'worker{seed}.db'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    trials = _study(str(storage)).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    runs = {t.user_attrs["mlflow_run_id"] for t in trials}
    assert len(runs) == 4


@pytest.mark.slow
def test_trials_run_two_at_a_time_on_joblib(cli, tmp_path):
    """n_jobs=2 on the joblib launcher: each trial its own launch, each job its own folder, every trial ended."""
    import optuna

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("train", *SEARCH, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=2", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _study(str(tmp_path / "runs" / "optuna.journal")).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    _, children = _runs(uri)
    assert sorted(run.data.tags["optuna_trial"] for run in children) == ["0", "1", "2", "3"]
    assert len({run.data.tags["output_dir"] for run in children}) == 4
