"""The README's commands on the real images, run as a user runs them from a shell: `python -m skinexp ...` in a
subprocess whose stdout and stderr are real files (no pytest capture, no in-process call), TF_CPP_MIN_LOG_LEVEL
unset. Each command must exit 0, leave every run it made FINISHED and print no start-up chatter on stderr.

Tiny sizes (32 px, depth 2, one epoch): the module takes a few minutes on two cores. The real images are
`../shared/data/isic-real`; without them every test skips, except under CI=true, where each fails.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REAL_DATA

# Skipped without the real images (failed under CI=true); one working folder, whose runs the tests read in order.
# Marked real_data: `make test-slow` (and CI) runs them; their 2.5 minutes of subprocesses kept `make test` over 3.
pytestmark = [pytest.mark.real_data, pytest.mark.usefixtures("real_data"), pytest.mark.xdist_group("journeys")]

SMALL = [f"dataset.root={REAL_DATA}", "dataset.image_size=32", "model.depth=2", "train.epochs=1"]
# What TensorFlow, absl, oneDNN or MLflow print while starting: none of it may reach the user's stderr.
CHATTER = re.compile(r"absl|oneDNN|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS|^[IWE]\d{4} |rebuild TensorFlow|"
                     r"alembic|INFO mlflow|Traceback|lost sys\.stderr|closed file", re.M)


def shell(workdir: Path, *args: str, name: str) -> tuple[str, str]:
    """`python -m skinexp ARGS` from `workdir`, its output in `<name>.out` and `<name>.err` there, as
    `cmd > name.out 2> name.err` leaves it; fails on a non-zero exit or chatter on stderr."""
    left_out = ("TF_CPP_MIN_LOG_LEVEL", "PYTEST_CURRENT_TEST")
    env = {key: value for key, value in os.environ.items() if key not in left_out}
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        code = subprocess.run([sys.executable, "-m", "skinexp", *args], cwd=workdir, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=err, env=env, timeout=600).returncode
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert code == 0, f"{' '.join(args)} exited {code}:\n{stderr[-3000:]}"
    assert not CHATTER.search(stderr), f"{' '.join(args)} printed on stderr:\n{stderr[-3000:]}"
    return stdout, stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("journeys")


@pytest.fixture(scope="module")
def client(workdir) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'runs' / 'mlflow.db'}")


def sweep_runs(client: MlflowClient, stdout: str):
    """The parent run of the sweep whose id the command printed (`skinexp: sweep parent run <id>`), its children."""
    parent_id = re.search(r"skinexp: sweep parent run ([0-9a-f]{32})", stdout).group(1)
    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.get_run(parent_id), client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


def own_log_only(run) -> None:
    """A job's train.log holds its own run's lines and no other job's."""
    text = (Path(run.data.tags["output_dir"]) / "train.log").read_text()
    assert re.findall(r"skinexp: run ([0-9a-f]{32})", text) == [run.info.run_id], text


def test_a_single_run(workdir, client):
    stdout, _ = shell(workdir, "train", "dataset=folder", *SMALL, "model.filters=4", name="single")
    run_id = re.search(r"skinexp: run ([0-9a-f]{32})", stdout).group(1)
    assert client.get_run(run_id).info.status == "FINISHED"
    (log,) = workdir.glob("runs/train/*/*/train.log")
    assert f"skinexp: run {run_id}" in log.read_text()


def test_a_sweep_of_two_jobs_on_the_basic_launcher(workdir, client):
    stdout, _ = shell(workdir, "train", "-m", "dataset=folder", *SMALL, "model.filters=4,8", name="sweep")
    parent, children = sweep_runs(client, stdout)
    assert sorted(run.data.params["model.filters"] for run in children) == ["4", "8"]
    assert {run.info.status for run in children} == {"FINISHED"} and parent.info.status == "FINISHED"
    for run in children:
        own_log_only(run)


def test_a_three_fold_cross_validated_sweep_trains_every_fold(workdir, client):
    stdout, _ = shell(workdir, "train", "-m", "dataset=folder", *SMALL, "model.filters=4", "dataset.folds=3",
                      "dataset.fold=range(3)", name="cv")
    parent, children = sweep_runs(client, stdout)
    assert sorted(run.data.params["dataset.fold"] for run in children) == ["0", "1", "2"]
    assert {run.info.status for run in children} == {"FINISHED"}
    (workdir / "cv_parent").write_text(parent.info.run_id)


def test_a_joblib_sweep_of_three_jobs_on_two_workers(workdir, client):
    stdout, _ = shell(workdir, "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "dataset=folder",
                      *SMALL, "model.filters=2,4,8", name="joblib")
    parent, children = sweep_runs(client, stdout)
    assert sorted(int(run.data.params["model.filters"]) for run in children) == [2, 4, 8]
    assert {run.info.status for run in children} == {"FINISHED"}
    for run in children:
        own_log_only(run)


def test_compare_evaluate_and_predict_the_cross_validated_sweep(workdir, client):
    parent_id = (workdir / "cv_parent").read_text()
    stdout, _ = shell(workdir, "compare", f"sweep={parent_id}", name="compare")
    assert len(re.findall(r"\| FINISHED \|", stdout)) == 3, stdout  # the leaderboard lists the three folds
    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent_id}'")
    best = max(children, key=lambda run: run.data.metrics["best_val_iou"])
    stdout, _ = shell(workdir, "evaluate", f"run={best.info.run_id}", name="evaluate")
    assert re.search(r"skinexp: evaluated \d+ images .*mean IoU 0\.\d{4}", stdout), stdout
    images = sorted((REAL_DATA / "images").glob("*.jpg"))[:3]
    inputs = workdir / "photos"
    inputs.mkdir()
    for image in images:
        (inputs / image.name).symlink_to(image)
    shell(workdir, "predict", f"run={best.info.run_id}", f"input={inputs}", f"output={workdir / 'masks'}",
          name="predict")
    assert sorted(path.stem for path in (workdir / "masks").glob("*.png")) == [image.stem for image in images]
    unfinished = [run.info.run_id for run in client.search_runs(
        [client.get_experiment_by_name("skinexp").experiment_id]) if run.info.status != "FINISHED"]
    assert unfinished == []
