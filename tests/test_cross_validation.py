"""End to end: a 2-config x 3-fold cross-validated sweep, `compare` on it, and its report in a real browser."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, run_main, unavailable

# Six trainings, once for the module (in one worker; 110 s on 2 busy cores, in the first test's time), and a browser.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cross_validation"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cv_sweep(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cv")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    result = run_main("train", "-m", "cv=3", *TINY, "model.filters=4,6", "dataset.num_samples=24",
                      "train.epochs=1", "tracking.log_model=false", f"tracking.uri={uri}", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    return {"workdir": workdir, "uri": uri, "client": client, "result": result,
            "children": [r for r in runs if "mlflow.parentRunId" in r.data.tags]}


def test_six_fold_runs_tagged_with_their_fold_and_every_image_validated_once_per_config(cv_sweep):
    children, client = cv_sweep["children"], cv_sweep["client"]
    assert len(children) == 6 and {r.info.status for r in children} == {"FINISHED"}
    assert sorted((r.data.params["model.filters"], r.data.tags["cv_fold"]) for r in children) == \
        [(f, str(k)) for f in ("4", "6") for k in range(3)]
    assert {r.data.tags["cv_folds"] for r in children} == {"3"}
    for filters in ("4", "6"):
        ids = []
        for run in (r for r in children if r.data.params["model.filters"] == filters):
            path = client.download_artifacts(run.info.run_id, "val_per_image.csv", str(cv_sweep["workdir"]))
            rows = list(csv.DictReader(open(path)))
            assert list(rows[0]) == ["id", "iou", "dice", "precision", "sensitivity", "specificity", "hd95"]
            ids += [row["id"] for row in rows]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 24  # out-of-fold: each image exactly once


def test_compare_pools_the_folds_and_the_report_renders(cv_sweep, tmp_path):
    from browser import Browser, BrowserUnavailable, find_chromium

    result = run_main("compare", f"uri={cv_sweep['uri']}", f"report={tmp_path}", cwd=cv_sweep["workdir"])
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "comparison.csv")))
    assert [row["runs"] for row in rows] == ["3", "3"] and [row["images"] for row in rows] == ["24", "24"]
    assert rows[0]["verdict"] == "reference" and float(rows[0]["mean"]) >= float(rows[1]["mean"])
    sign = np.sign(float(rows[1]["diff"]))  # the verdict follows the paired difference's interval and test
    expected = ("worse" if sign < 0 else "better") if float(rows[1]["p_value"]) < 0.05 and (
        float(rows[1]["diff_ci95_high"]) < 0 or float(rows[1]["diff_ci95_low"]) > 0) else "no detectable difference"
    assert rows[1]["verdict"] == expected
    try:
        chromium = find_chromium()
    except BrowserUnavailable as error:
        unavailable(str(error))
    with Browser(1200, 900, chromium=chromium) as browser:
        browser.open((tmp_path / "report.html").as_uri())
        browser.wait_for("document.querySelectorAll('#comparison tr').length === 3", what="the comparison table")
        browser.wait_for("Array.from(document.images).every(image => image.complete && image.naturalWidth > 0)",
                         what="every picture decoded")
        assert browser.evaluate("document.querySelectorAll('table.images tr').length") == 9  # header + 8 images
