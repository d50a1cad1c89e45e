"""`python -m skinexp ui` for real: tiny runs in a temp store, served, rendered by headless Chromium."""
from __future__ import annotations

import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.tracking import MlflowClient

from browser import (
    MLFLOW_QUIET_ASSISTANT,
    Browser,
    BrowserUnavailable,
    Server,
    find_chromium,
    show_image_step,
    unused_port,
)
from conftest import TINY, run_cli, unavailable

EXPERIMENT = "ui"
EPOCHS = 2

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]  # one served store and a browser for the module: minutes


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return find_chromium()
    except BrowserUnavailable as error:
        unavailable(str(error))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m skinexp ui` on a free port over a fresh temp store, and two tiny runs trained into it."""
    workdir = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{workdir / 'store' / 'mlflow.db'}"
    port = unused_port()
    server = Server([sys.executable, "-m", "skinexp", "ui", f"port={port}", f"uri={uri}",
                     f"experiment={EXPERIMENT}"], port, cwd=workdir, log_path=workdir / "ui.log")
    try:
        # The UI creates the store and the experiment before it prints the URL; both runs can then train at once
        # while MLflow's server starts.
        server.wait_for_output(r"skinexp: runs table: ", timeout=60)
        track = [f"tracking.uri={uri}", f"tracking.experiment={EXPERIMENT}", "tracking.log_model=false"]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda filters: run_cli("train", *TINY, f"train.epochs={EPOCHS}",
                                                            f"model.filters={filters}", *track, cwd=workdir), (4, 6)))
        for result in results:
            assert result.returncode == 0, result.stderr[-3000:]
        server.wait_ready(timeout=90)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        runs = client.search_runs([experiment.experiment_id])
        yield {"server": server, "runs": runs, "experiment": experiment}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(chromium):
    with Browser(1400, 900, chromium=chromium) as page:
        page.before_each_page(MLFLOW_QUIET_ASSISTANT)
        yield page


def printed_url(server: Server) -> str:
    match = re.search(r"skinexp: runs table: (\S+)", server.log(chars=1_000_000))
    assert match, f"ui printed no runs-table URL:\n{server.log()}"
    return match.group(1)


def test_ui_prints_the_runs_table_url_on_loopback(served):
    server, experiment = served["server"], served["experiment"]
    url = printed_url(server)
    assert url.startswith(f"{server.url}/#/experiments/{experiment.experiment_id}/runs"), url
    with urllib.request.urlopen(url.split("#")[0], timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read(2000).lower()


def test_runs_table_renders_every_run_name(served, browser):
    names = [run.info.run_name for run in served["runs"]]
    assert len(names) == 2
    browser.open(printed_url(served["server"]))
    condition = " && ".join(f"document.body.textContent.includes({name!r})" for name in names)
    browser.wait_for(condition, timeout=60, what=f"run names {names} in the runs table")


def test_runs_table_opens_with_the_columns_that_matter(served, browser):
    """skinexp's shared view (an experiment tag the printed URL names) selects the metric columns."""
    assert "viewStateShareKey=skinexp" in printed_url(served["server"])
    browser.open(printed_url(served["server"]))
    columns = ("best_val_iou", "val_iou", "val_dice")
    condition = " && ".join(f"document.body.textContent.includes({name!r})" for name in columns)
    browser.wait_for(condition, timeout=60, what=f"columns {columns} in the runs table")


def test_run_page_shows_the_sample_masks_of_the_last_epoch(served, browser):
    server, run = served["server"], served["runs"][0]
    browser.open(f"{server.url}/#/experiments/{served['experiment'].experiment_id}/runs/{run.info.run_id}"
                 f"/model-metrics")
    source = show_image_step(browser, "samples", EPOCHS)
    # The UI fetched the logged image file through the server: the artifacts of a file:// store are served.
    assert f"images/samples+step+{EPOCHS}+" in source and run.info.run_id in source


def test_ctrl_c_stops_the_ui_and_all_its_workers(served):
    """Last in this module: it stops the shared server."""
    server = served["server"]
    started = time.monotonic()
    left = server.interrupt(timeout=30)
    assert left == [], f"processes still running 30 s after Ctrl-C: {left}\n{server.log()}"
    assert time.monotonic() - started < 30
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "/health", timeout=5)
