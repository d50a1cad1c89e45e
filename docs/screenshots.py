"""Make the README's pictures of the MLflow UI: docs/ui_runs.png and docs/ui_run_samples.png.

    mkdir /tmp/shots && cd /tmp/shots
    python -m skinexp train model.filters=8 train.epochs=4 dataset.image_size=96
    python -m skinexp train model.filters=16 train.epochs=4 dataset.image_size=96
    python -m skinexp train optim.lr=3e-4 model.filters=8 train.epochs=4 dataset.image_size=96
    python /path/to/skinexp/docs/screenshots.py          # serves ./runs with `python -m skinexp ui`

It needs Debian's chromium (`make test-deps`). The runs table is what the printed URL opens (skinexp's shared
view: the best_val_iou, val_iou and val_dice columns); the best run's page is arranged as a user would arrange
it by hand, through the UI's own saved view state: the sample-mask card first, at the last epoch, without its
list of run parameters.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from browser import MLFLOW_QUIET_ASSISTANT, Browser, Server, free_port, show_image_step  # noqa: E402

RUN_CHARTS = ["samples", "val_iou", "loss"]  # in this order; the other charts are hidden
MAX_BYTES = 400_000


def arrange_run_charts(browser: Browser, run_id: str, last_step: int) -> None:
    """Rewrite the run page's generated chart layout: RUN_CHARTS only, the image card tall and at `last_step`."""
    key = f"MLflowLocalStorage-1.1-RunPage-{run_id}-model-chartUIState"
    browser.wait_for(f"(localStorage.getItem({json.dumps(key)}) || '').includes('IMAGE')", what="the chart layout")
    state = json.loads(browser.evaluate(f"localStorage.getItem({json.dumps(key)})"))

    def name(chart: dict) -> str:
        return chart.get("metricKey") or (chart.get("imageKeys") or [""])[0]

    for chart in state["compareRunCharts"]:
        chart["deleted"] = name(chart) not in RUN_CHARTS
        if chart["type"] == "IMAGE":
            chart.update(step=last_step, showRunParams=False)
    state["compareRunCharts"].sort(key=lambda c: RUN_CHARTS.index(name(c)) if name(c) in RUN_CHARTS else 99)
    for section in state["compareRunSections"]:
        section.update(columns=3, cardHeight=480)  # tall enough for a 4-sample panel
    state["isAccordionReordered"] = True
    browser.evaluate(f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(state))})")


def shrink(path: Path) -> None:
    """Keep a picture under MAX_BYTES: a 256-colour palette loses nothing visible on a UI screenshot."""
    if path.stat().st_size > MAX_BYTES:
        from PIL import Image

        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1000} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="where runs/ is (default: here)")
    parser.add_argument("--experiment", default="skinexp")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(args.workdir / 'runs' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        sys.exit(f"no experiment {args.experiment!r} under {args.workdir / 'runs'}: train first (see --help)")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["metrics.best_val_iou DESC"])
    best = runs[0]
    last_step = max(metric.step for metric in client.get_metric_history(best.info.run_id, "val_iou"))

    port = free_port()
    server = Server([sys.executable, "-m", "skinexp", "ui", f"port={port}", f"experiment={args.experiment}"],
                    port, cwd=args.workdir, log_path=args.workdir / "ui-screenshots.log")
    try:
        server.wait_ready(timeout=120)
        runs_url = re.search(r"skinexp: runs table: (\S+)", server.log(chars=1_000_000)).group(1)
        with Browser(1400, 900) as browser:
            browser.before_each_page(MLFLOW_QUIET_ASSISTANT)
            browser.open(runs_url)
            names = " && ".join(f"document.body.textContent.includes({run.info.run_name!r})" for run in runs)
            browser.wait_for(f"{names} && document.body.textContent.includes('best_val_iou')", what="the runs")
            time.sleep(2)
            shrink(browser.screenshot(args.out / "ui_runs.png", height=300 + 32 * len(runs)))

            run_url = (f"{server.url}/#/experiments/{experiment.experiment_id}/runs/{best.info.run_id}"
                       f"/model-metrics?workflowType=machine_learning")
            browser.open(run_url)
            arrange_run_charts(browser, best.info.run_id, last_step)
            browser.open(run_url)
            show_image_step(browser, "samples", last_step, only_this_card=False)
            browser.wait_for(f"document.querySelectorAll('h4[title]').length === {len(RUN_CHARTS)}",
                             what=f"exactly the charts {RUN_CHARTS}")
            browser.evaluate("(() => { let e = document.querySelector('h4[title=samples]');"
                             " while (e) { e.scrollTop = 0; e = e.parentElement; } })()")
            browser.send("Input.dispatchMouseEvent", session=True, type="mouseMoved", x=5, y=895)
            time.sleep(2)
            shrink(browser.screenshot(args.out / "ui_run_samples.png", height=740))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
