"""The registry (`register`, aliases, version tags), use by name (`run=models:/...`), dataset lineage, and the
`segmenter` pyfunc. All on the session's tiny `trained` run; registering touches no TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import error_line

NAME = "skinexp-unet"


@pytest.fixture(scope="module")
def registered(trained):
    """The trained run registered once as skinexp-unet version 1 with alias champion."""
    from conftest import run_main

    run_id = trained["run"].info.run_id
    result = run_main("register", f"run={run_id}", f"uri={trained['uri']}", cwd=trained["workdir"])
    assert result.returncode == 0, result.stderr[-2000:]
    return {**trained, "run_id": run_id, "stdout": result.stdout}


def test_register_sets_alias_and_version_tags(registered):
    client, run_id = registered["client"], registered["run_id"]
    assert f"{NAME} version 1" in registered["stdout"]
    assert f"models:/{NAME}@champion -> version 1" in registered["stdout"]
    version = client.get_model_version_by_alias(NAME, "champion")
    assert str(version.version) == "1" and version.run_id == run_id
    run = client.get_run(run_id)
    assert version.tags["run_id"] == run_id
    assert version.tags["dataset_fingerprint"] == run.data.tags["dataset_fingerprint"]
    assert float(version.tags["threshold"]) == run.data.metrics["best_threshold"]
    assert version.tags["best_val_iou"] == f"{run.data.metrics['best_val_iou']:.4f}"
    assert version.tags["logged_model"] == "segmenter" and version.tags["config"] == run.info.run_name
    assert run_id in version.description


def test_training_run_logs_its_splits_as_datasets(trained):
    run = trained["client"].get_run(trained["run"].info.run_id)
    inputs = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
              for i in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "training", "validation"]
    assert {d.digest for d in inputs.values()} == {run.data.tags["dataset_fingerprint"]}
    assert inputs["training"].name == "synthetic/training"
    assert json.loads(inputs["test"].source)["uri"] == "synthetic(seed=0, n=20, size=32)"
    assert json.loads(inputs["validation"].profile)["num_rows"] == 3


def test_evaluate_by_alias_uses_the_recorded_threshold_and_logs_the_set(registered, main, tmp_path):
    result = main("evaluate", "run=models:/skinexp-unet@champion", f"tracking.uri={registered['uri']}",
                  f"output={tmp_path / 'eval'}", "columns=2", cwd=registered["workdir"])
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    source = registered["client"].get_run(registered["run_id"])
    assert summary["threshold"] == source.data.metrics["best_threshold"] and summary["split"] == "test"
    evaluation = registered["client"].search_runs(
        [registered["experiment"].experiment_id], "tags.`skinexp.kind` = 'evaluation' and params.run = "
        "'models:/skinexp-unet@champion'")[0]
    assert evaluation.data.tags["mlflow.parentRunId"] == registered["run_id"]
    (dataset_input,) = evaluation.inputs.dataset_inputs
    assert dataset_input.dataset.name == "synthetic/test"
    assert dataset_input.dataset.digest == source.data.tags["dataset_fingerprint"]


@pytest.mark.parametrize(("reference", "named"), [
    ("models:/skinexp-unet@nope", "has no alias nope (aliases: champion)"),
    ("models:/skinexp-unet/7", "has no version 7 (latest: 1)"),
    ("models:/nosuch@champion", "no registered model named nosuch"),
    ("models:/skinexp-unet", "models:/<name>@<alias> or models:/<name>/<version>"),
])
def test_unknown_registered_model_is_one_line(registered, main, tmp_path, reference, named):
    (tmp_path / "in").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "in" / "a.png")
    result = main("predict", f"run={reference}", "input=in", f"tracking.uri={registered['uri']}", cwd=tmp_path)
    line = error_line(result)
    assert named in line and line.endswith(f"Received: run={reference}")


def test_register_refuses_unknown_run_and_run_without_model(trained, main, tmp_path):
    line = error_line(main("register", "run=0123abc", f"uri={trained['uri']}", cwd=tmp_path))
    assert line.endswith("Received: run=0123abc") and "no run with that id" in line
    client = trained["client"]
    empty = client.create_run(client.create_experiment("no-models")).info.run_id
    line = error_line(main("register", f"run={empty}", f"uri={trained['uri']}", cwd=tmp_path))
    assert "logged no model" in line and line.endswith(f"Received: run={empty}")
    assert "alias=3" in error_line(main("register", f"run={empty}", "alias=3", cwd=tmp_path))


@pytest.mark.slow
def test_segmenter_loads_in_a_fresh_process_without_skinexp(registered, tmp_path):
    """mlflow.pyfunc.load_model alone, in a new interpreter: masks at the image's size, equal to `predict`'s."""
    from conftest import run_main

    image = (np.random.default_rng(1).random((45, 60, 3)) * 255).astype(np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(image).save(tmp_path / "in" / "a.png")
    result = run_main("predict", f"run={registered['run_id']}", "input=in", "output=out",
                      f"tracking.uri={registered['uri']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    script = (
        "import base64, io, sys, mlflow, numpy as np, pandas as pd\n"
        "from PIL import Image\n"
        f"mlflow.set_tracking_uri({registered['uri']!r})\n"
        "model = mlflow.pyfunc.load_model('models:/skinexp-unet@champion')\n"
        "data = base64.b64encode(open('in/a.png', 'rb').read()).decode()\n"
        "out = model.predict(pd.DataFrame({'image': [data]}))\n"
        "mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(out['mask'][0]))))\n"
        "np.save('mask.npy', mask)\n"
        "print(float(out['lesion_fraction'][0]), any(m.startswith('skinexp') for m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    fraction, imported = done.stdout.split()[-2:]
    expected = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    mask = np.load(tmp_path / "mask.npy")
    assert mask.shape == (45, 60) and np.array_equal(mask, expected)
    assert float(fraction) == pytest.approx((expected > 0).mean()) and imported == "False"
    assert Path(tmp_path / "out" / "a.png").is_file()
