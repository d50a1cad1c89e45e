"""A newcomer's first hour, as processes show it: a quiet training command whose last line links to the run,
a console kept in train.log and in MLflow, titles that say what was evaluated, no empty leftovers."""
from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line, run_cli

pytestmark = pytest.mark.xdist_group("first_hour")  # one training in a subprocess, read by every test


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """`python -m skinexp train` as `make train` runs it (default verbosity, output to a pipe)."""
    workdir = tmp_path_factory.mktemp("first")
    args = [arg for arg in TINY if not arg.startswith("train.verbose")]
    result = run_cli("train", *args, "tracking.log_model=false", cwd=workdir,
                     env={"TF_CPP_MIN_LOG_LEVEL": ""})  # as a user's shell has it: unset
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    return {"result": result, "client": client, "run": run, "workdir": workdir}


def test_stderr_holds_no_tensorflow_or_mlflow_start_up_chatter(first_run):
    assert first_run["result"].stderr == ""


def test_the_last_line_links_to_the_runs_own_page(first_run):
    run = first_run["run"]
    last = first_run["result"].stdout.strip().splitlines()[-1]
    assert last.endswith(f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")


def test_one_line_per_epoch_when_the_output_is_not_a_terminal(first_run):
    epoch_lines = [line for line in first_run["result"].stdout.splitlines() if re.search(r" - val_iou: ", line)]
    assert len(epoch_lines) == 2 and "\r" not in first_run["result"].stdout


def test_train_log_holds_what_the_run_printed_and_is_logged_to_mlflow(first_run):
    run, client = first_run["run"], first_run["client"]
    (log,) = first_run["workdir"].glob("runs/train/*/*/train.log")
    text = log.read_text()
    assert text.count(" - val_iou: ") == 2 and f"skinexp: run {run.info.run_id}" in text
    logged = client.download_artifacts(run.info.run_id, "logs/train.log", str(first_run["workdir"]))
    assert open(logged).read().count(" - val_iou: ") == 2


def test_a_refused_command_leaves_no_empty_folder(main, tmp_path, store):
    assert "no MLflow store there" in error_line(main("evaluate", "run=doesnotexist", *store["overrides"][:1],
                                                      cwd=tmp_path))
    (tmp_path / "data" / "images").mkdir(parents=True)
    (tmp_path / "data" / "masks").mkdir()
    assert "images" in error_line(main("train", *TINY, "dataset=folder", f"dataset.root={tmp_path / 'data'}",
                                       *store["overrides"], cwd=tmp_path))
    assert not list((tmp_path / "runs").glob("evaluate/*/*")) and not list((tmp_path / "runs").glob("train/*/*"))


def test_the_real_data_preset_names_its_environment_variable_when_the_data_is_missing(main, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINEXP_REAL_DATA", str(tmp_path / "nowhere"))
    line = error_line(main("train", "dataset=isic_real", *TINY, cwd=tmp_path))
    assert "set SKINEXP_REAL_DATA to the folder" in line and line.endswith(
        f"Received: dataset.root={tmp_path / 'nowhere'} (nothing there)")


def test_figure_titles_name_the_split_and_the_dataset(compose):
    from skinexp.evaluation.evaluate import figure_title

    assert figure_title("val", compose("train", []).dataset) == "val images of synthetic"
    folder = compose("train", ["dataset=folder", "dataset.root=/data/isic-real"]).dataset
    assert figure_title("test", folder) == "test images of folder isic-real"
