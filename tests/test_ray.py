"""The Ray launcher (hydra/launcher=ray_local): a 2-job sweep on a private local Ray instance lands in MLflow."""
from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY

SWEEP = [*TINY, "train.epochs=1", "train.max_steps_per_epoch=1", "tracking.log_model=false"]


@pytest.fixture(scope="module")
def ray_sweep(tmp_path_factory):
    # A Python extra CI does not install (its pins replace joblib and cloudpickle in the suite's venv), so this skips
    # under CI=true too: like the GPU tests, not a missing part of CI's machine.
    pytest.importorskip("hydra_plugins.hydra_ray_launcher",
                        reason="hydra-ray-launcher not installed; pip install -e '.[ray]'")
    from conftest import run_cli

    workdir = tmp_path_factory.mktemp("ray")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_cli("train", "-m", *SWEEP, "hydra/launcher=ray_local", "model.filters=4,6", f"tracking.uri={uri}",
                     cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("skinexp")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("skinexp.sweep") == "true"]
    return {"parents": parents, "children": [r for r in runs if r not in parents], "workdir": workdir}


@pytest.mark.slow
def test_ray_local_sweep_lands_a_parent_and_2_finished_children(ray_sweep):
    (parent,) = ray_sweep["parents"]
    children = ray_sweep["children"]
    assert parent.info.status == "FINISHED" and parent.data.metrics["jobs_finished"] == 2
    assert sorted(c.info.run_name for c in children) == ["filters=4", "filters=6"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}


@pytest.mark.slow
def test_ray_local_jobs_share_the_sweep_dir(ray_sweep):
    sweep_dirs = {Path(c.data.tags["output_dir"]).parent for c in ray_sweep["children"]}
    assert len(sweep_dirs) == 1 and (sweep_dirs.pop() / "multirun.yaml").is_file()
