"""Sweeps: parent runs with nested children, contained failures, the leaderboard, launchers and Optuna."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line

# The 3-job sweep is built once; the slow tests' parallel jobs then take turns, not both workers at once.
pytestmark = pytest.mark.xdist_group("sweeps")

SWEEP = [*TINY, "train.epochs=1", "tracking.log_model=false"]


def _sweep_runs(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("skinexp")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    children = [r for r in runs
                if r.data.tags.get("skinexp.sweep") != "true" and "skinexp.comparison" not in r.data.tags]
    return client, parents, children


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 3-job sweep in this process: two jobs train, one (model.filters=0) is refused and recorded FAILED."""
    from conftest import run_main

    workdir = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_main("train", "-m", *SWEEP, "model.filters=4,6,0", "optim.lr=1e-3", f"tracking.uri={uri}",
                      cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"result": result, "uri": uri, "workdir": workdir}


def test_parent_run_with_named_children_and_a_contained_failure(sweep):
    client, parents, children = _sweep_runs(sweep["uri"])
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"filters=4", "filters=6", "filters=0"}  # named from the swept key only
    assert by_name["filters=4"].info.status == "FINISHED" and by_name["filters=6"].info.status == "FINISHED"
    failed = by_name["filters=0"]
    assert failed.info.status == "FAILED" and "model.filters=0" in failed.data.tags["failure_reason"]
    assert parent.data.metrics["jobs_finished"] == 2 and parent.data.metrics["jobs_failed"] == 1
    best = max((by_name["filters=4"], by_name["filters=6"]), key=lambda run: run.data.metrics["val_image_iou"])
    assert parent.data.tags["best_child_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_image_iou"] == pytest.approx(best.data.metrics["val_image_iou"])
    assert parent.data.metrics["best_best_val_iou"] == pytest.approx(best.data.metrics["best_val_iou"])
    assert {c.data.params["model.filters"] for c in children if c.info.status == "FINISHED"} == {"4", "6"}


def test_leaderboard_artifacts_sorted_with_differing_params(sweep):
    client, (parent,), children = _sweep_runs(sweep["uri"])
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "leaderboard.md"} <= names
    local = client.download_artifacts(parent.info.run_id, "leaderboard.csv", str(sweep["workdir"]))
    lines = open(local).read().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["rank", "run_name", "status", "mean_per_image"] and "model.filters" in header
    assert "optim.lr" not in header  # the same in every job
    rows = [line.split(",") for line in lines[1:]]
    scores = [float(row[3]) for row in rows[:2]]
    assert scores == sorted(scores, reverse=True) and {row[1] for row in rows[:2]} == {"filters=4", "filters=6"}
    assert rows[2][1] == "filters=0" and rows[2][2] == "FAILED"  # failed jobs last


def test_compare_prints_the_latest_sweep(sweep, main):
    result = main("compare", f"uri={sweep['uri']}", cwd=sweep["workdir"])
    assert result.returncode == 0, result.stderr
    assert "3 jobs, 2 finished, 1 failed" in result.stdout
    client, _, children = _sweep_runs(sweep["uri"])
    best = max((c for c in children if c.info.status == "FINISHED"), key=lambda run: run.data.metrics["val_image_iou"])
    table = [line for line in result.stdout.splitlines() if line.startswith("| 1 ")]
    assert best.info.run_name in table[0]
    missing = main("compare", "sweep=nope", f"uri={sweep['uri']}", cwd=sweep["workdir"])
    assert "sweep=nope" in error_line(missing)


@pytest.mark.slow
@pytest.mark.timeout(600)  # 8 trainings, in parallel processes: 70-210 s on 2 busy cores
def test_joblib_launcher_lands_8_parallel_jobs_on_a_fresh_store(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    result = cli("train", "-m", *SWEEP, "train.max_steps_per_epoch=1", "hydra/launcher=joblib",
                 "hydra.launcher.n_jobs=4", "train.seed=1,2,3,4,5,6,7,8", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, (parent,), children = _sweep_runs(uri)
    assert len(children) == 8 and {c.info.status for c in children} == {"FINISHED"}
    assert parent.data.metrics["jobs_finished"] == 8
    output_dirs = {Path(c.data.tags["output_dir"]) for c in children}
    assert len(output_dirs) == 8
    (sweep_dir,) = {d.parent for d in output_dirs}  # workers resolve the sweep dir as the launcher did
    assert (sweep_dir / "multirun.yaml").is_file()


@pytest.mark.slow
def test_submitit_local_launcher_runs_jobs_in_their_own_processes(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("train", "-m", *SWEEP, "train.max_steps_per_epoch=1", "hydra/launcher=local_processes",
                 "model.filters=4,6", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _, (parent,), children = _sweep_runs(uri)
    assert sorted(c.info.run_name for c in children) == ["filters=4", "filters=6"]
    assert {c.info.status for c in children} == {"FINISHED"}


@pytest.mark.slow
def test_optuna_runs_3_trials_maximising_val_image_iou(cli, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = cli("train", "hparams_search=optuna", "hydra.sweeper.n_trials=3", *SWEEP,
                 "train.max_steps_per_epoch=2", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skinexp: study skinexp: 3 trials" in result.stdout
    _, (parent,), children = _sweep_runs(uri)
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert len({c.data.params["optim.lr"] for c in children}) == 3


def test_compare_refuses_a_metric_that_is_not_a_per_image_score_and_lists_those_that_are(sweep, main):
    line = error_line(main("compare", "metric=val_dic", f"uri={sweep['uri']}", cwd=sweep["workdir"]))
    assert line.endswith("Received: metric=val_dic") and "dice" in line and "hd95" in line


def test_a_sweep_ends_with_its_comparison_report_on_the_parent(sweep):
    client, (parent,), _ = _sweep_runs(sweep["uri"])
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert logged == {"comparison/report.html", "comparison/comparison.csv", "comparison/comparison.md"}
    assert "skinexp: sweep report " in sweep["result"].stdout


def test_compare_groups_tests_and_writes_the_report(sweep, main, tmp_path):
    result = main("compare", f"uri={sweep['uri']}", f"report={tmp_path / 'report'}", cwd=sweep["workdir"])
    assert result.returncode == 0, result.stderr
    assert "2 groups of 2 FINISHED runs" in result.stdout  # the refused job is not a group
    rows = list(csv.DictReader((tmp_path / "report" / "comparison.csv").open()))
    assert list(rows[0]) == ["rank", "group", "runs", "images", "mean", "ci95_low", "ci95_high", "diff",
                             "diff_ci95_low", "diff_ci95_high", "p_value", "mdd", "verdict", "model.filters"]
    client, _, children = _sweep_runs(sweep["uri"])
    by_filters = {c.data.params["model.filters"]: c for c in children if c.info.status == "FINISHED"}
    for row in rows:  # a group of one run: its mean is that run's val_image_iou, the number the leaderboard ranks
        run = by_filters[row["model.filters"]]
        assert float(row["mean"]) == pytest.approx(run.data.metrics["val_image_iou"], abs=1e-6)
    reference, other = rows
    assert reference["verdict"] == "reference" and float(reference["mean"]) >= float(other["mean"])
    tables = {row["model.filters"]: {
        line["id"]: float(line["iou"]) for line in csv.DictReader(open(client.download_artifacts(
            by_filters[row["model.filters"]].info.run_id, "val_per_image.csv", str(tmp_path))))} for row in rows}
    ids = sorted(tables[reference["model.filters"]])
    expected = np.mean([tables[other["model.filters"]][i] - tables[reference["model.filters"]][i] for i in ids])
    assert float(other["diff"]) == pytest.approx(expected, abs=1e-6)
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 + 3 * 2  # boxes, curves, and image | truth | 2 groups rows
    assert page.index('id="comparison"') < page.index("data:image/png")  # the table first
    assert "Where the groups differ most from" in page and "model.filters=4" in page


def test_compare_an_experiment_logs_a_comparison_run(sweep, main, tmp_path):
    from mlflow.tracking import MlflowClient

    result = main("compare", "experiment=skinexp", f"uri={sweep['uri']}", f"report={tmp_path / 'r'}",
                  cwd=sweep["workdir"])
    assert result.returncode == 0, result.stderr
    client = MlflowClient(sweep["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id],
                                "tags.`skinexp.comparison` = 'true'")
    compared = set(run.data.tags["skinexp.compared_runs"].split(","))
    _, _, children = _sweep_runs(sweep["uri"])
    assert compared == {c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert {a.path for a in client.list_artifacts(run.info.run_id, "comparison")} >= {"comparison/report.html"}
    again = main("compare", "experiment=skinexp", f"uri={sweep['uri']}", f"report={tmp_path / 'r'}",
                 cwd=sweep["workdir"])
    assert "already exists" in error_line(again)  # a report is never overwritten


@pytest.mark.parametrize("args, fragment", [
    (["sweep=nope"], "sweep=nope"),
    (["experiment=nope"], "experiment=nope"),
    (["group_by=model.filtres"], "group_by=model.filtres"),
])
def test_compare_refuses_unknown_sweeps_experiments_and_keys(sweep, main, tmp_path, args, fragment):
    assert fragment in error_line(main("compare", *args, f"uri={sweep['uri']}", f"report={tmp_path / 'x'}",
                                       cwd=sweep["workdir"]))


def _log_the_same_new_datasets(uri: str, barrier, rounds: int, failures) -> None:
    """One parallel job: a run per round, then (all jobs at once) that round's new dataset logged to it."""
    import mlflow
    from mlflow.entities import Dataset, DatasetInput, InputTag

    from skinexp.tracking.models import log_inputs

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("race").experiment_id
    for round_ in range(rounds):
        run = client.create_run(experiment_id)
        dataset = Dataset(name=f"synthetic-{round_}/training", digest="0123abcd", source_type="synthetic", source="{}")
        barrier.wait()
        try:
            log_inputs(run.info.run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])
        except Exception as error:  # what the job would fail with
            print(f"{type(error).__name__}: {str(error)[:200]}", flush=True)
            failures[round_] += 1


@pytest.mark.slow
def test_parallel_jobs_logging_the_same_new_dataset_all_get_it(tmp_path):
    """The race CI once lost in the joblib sweep: MLflow's SQL store inserts a dataset it did not find, so two
    jobs logging the same new one at once both insert it. 4 jobs x 10 rounds: without the second attempt, 9 to 18
    of these 40 calls failed here on the datasets table's unique key."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("race")  # a fresh store's migrations, once, before the writers
    context = multiprocessing.get_context("spawn")
    jobs, rounds = 4, 10
    barrier, failures = context.Barrier(jobs), context.Array("i", rounds)
    processes = [context.Process(target=_log_the_same_new_datasets, args=(uri, barrier, rounds, failures))
                 for _ in range(jobs)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [process.exitcode for process in processes] == [0] * jobs
    assert list(failures) == [0] * rounds
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id], max_results=100)
    assert len(runs) == jobs * rounds
    names = sorted(run.inputs.dataset_inputs[0].dataset.name for run in runs if len(run.inputs.dataset_inputs) == 1)
    assert names == sorted(f"synthetic-{round_}/training" for round_ in range(rounds) for _ in range(jobs))


def test_a_sweep_whose_every_job_failed_fails_in_one_line_and_ends_its_parent_failed(main, tmp_path):
    """Nothing to compare: the command exits 2 with one error line after the jobs' own lines, the parent run ends
    FAILED with the reason and its leaderboard, and no run is left RUNNING."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = main("train", "-m", *SWEEP, "model.filters=0,-1", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("skinexp: error: every job of sweep ")
    assert lines[-1].endswith("Received: 2 of 2 jobs failed")
    assert sum(line.startswith("skinexp: job ") and " failed: " in line for line in lines) == 2
    client, (parent,), children = _sweep_runs(uri)
    assert parent.info.status == "FAILED" and parent.data.tags["failure_reason"] in lines[-1]
    assert parent.data.metrics["jobs_failed"] == 2 and parent.data.metrics["jobs_finished"] == 0
    assert {child.info.status for child in children} == {"FAILED"} and len(children) == 2
    assert "leaderboard.md" in {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
