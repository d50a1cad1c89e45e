"""Quality over wall-clock time on real data: the notebook's recipe vs `+experiment=isic_cpu`.

Both train on the same real images (default ../shared/data/isic-real) at 128 px with one fixed split
(15 % validation, 15 % held-out test, seed 0), on this machine, one after the other. For each, the
per-epoch val IoU is read back from MLflow against the wall-clock time since its run started; the
best checkpoint is then scored on the held-out test images (`skinexp evaluate`, mean per-image IoU, at
the run's best threshold; also with `tta=true postprocess=largest_component`).

Goals: isic_cpu reaches mean per-image test IoU >= 0.86 within 20 training minutes, and val IoU 0.80 in
less than a third of the notebook recipe's time. The notebook side is stopped (SIGTERM; the run ends
KILLED) once it has used `--cap-factor` (3.0) times isic_cpu's time to 0.80 without reaching 0.80: by
then the ratio goal is met whatever it would do later. Writes the plot and a JSON of the numbers to --out.

    python benchmarks/quality.py [--root DIR] [--minutes 20] [--cap-factor 3.0] [--out docs]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import metadata, write

TARGET = 0.80
COMMON = ["dataset=isic_real", "dataset.image_size=128", "dataset.val_split=0.15", "dataset.test_split=0.15",
          "dataset.seed=0", "tracking.log_model=false", "tracking.experiment=quality", "train.verbose=0"]
SIDES = {
    "isic_cpu": ["+experiment=isic_cpu"],
    "notebook recipe": ["+experiment=seed_notebook", "train.epochs=30"],
}


def train(side: list[str], workdir: Path, uri: str, root: str, limit_seconds: float, extra: list[str]) -> str:
    """Train one side (stopped with SIGTERM at `limit_seconds`); returns its run id."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SKINEXP_REAL_DATA": root}
    command = [sys.executable, "-m", "skinexp", "train", *side, *COMMON, f"dataset.root={root}",
               f"tracking.uri={uri}", *extra]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        process.wait(timeout=limit_seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=300)
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("quality")
    if experiment is None:
        sys.exit(f"the training started no run (exit {process.returncode}):\n{process.stdout.read()[-3000:]}")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id


def curve(uri: str, run_id: str) -> tuple[list[float], list[float], float]:
    """(minutes since the run started, val IoU) per epoch, and the minutes the run lasted."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    info = client.get_run(run_id).info
    history = sorted(client.get_metric_history(run_id, "val_iou"), key=lambda m: m.step)
    return ([(m.timestamp - info.start_time) / 60000 for m in history], [m.value for m in history],
            (info.end_time - info.start_time) / 60000)


def minutes_to(target: float, minutes: list[float], values: list[float]):
    return next((t for t, v in zip(minutes, values) if v >= target), None)


def test_iou(uri: str, run_id: str, workdir: Path, root: str, extra: tuple[str, ...] = ()):
    """Mean per-image IoU of the run's best checkpoint on the held-out test split, at the run's best threshold.

    A finished run is evaluated by its id (`extra`, e.g. TTA and post-processing, applies); a stopped one by its
    best checkpoint file at threshold 0.5 (None with `extra`, which needs the run's validation record, or without
    a checkpoint)."""
    import mlflow

    run = mlflow.MlflowClient(uri).get_run(run_id)
    checkpoint = Path(run.data.tags["output_dir"]) / "checkpoints" / "best.keras"
    finished = run.info.status == "FINISHED"
    if not checkpoint.is_file() or (extra and not finished):
        return None
    out = workdir / f"eval-{run_id}{'-tta' if extra else ''}"
    reference = run_id if finished else str(checkpoint)
    subprocess.run([sys.executable, "-m", "skinexp", "evaluate", f"run={reference}", "split=test", *COMMON[:5],
                    *extra, f"dataset.root={root}", f"output={out}", f"tracking.uri={uri}"], cwd=workdir,
                   check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads((out / "summary.json").read_text())["mean_iou"]


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "isic-real"))
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--cap-factor", type=float, default=3.0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to both sides (smoke tests)")
    args = parser.parse_args()
    meta = metadata(1)  # one run of each side: the curves describe these runs, with no spread
    workdir = Path(tempfile.mkdtemp(prefix="skinexp-quality-"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    results = {}

    started = time.perf_counter()
    run_id = train(SIDES["isic_cpu"], workdir, uri, args.root, args.minutes * 60, args.extra)
    minutes, values, lasted = curve(uri, run_id)
    results["isic_cpu"] = {"run_id": run_id, "minutes": minutes, "val_iou": values, "run_minutes": lasted,
                           "wall_minutes": (time.perf_counter() - started) / 60}
    reached = minutes_to(TARGET, minutes, values)
    cap = args.cap_factor * reached if reached else args.minutes
    started = time.perf_counter()
    run_id = train(SIDES["notebook recipe"], workdir, uri, args.root, cap * 60 + 120, args.extra)  # + start-up
    minutes, values, lasted = curve(uri, run_id)
    results["notebook recipe"] = {"run_id": run_id, "minutes": minutes, "val_iou": values, "run_minutes": lasted,
                                  "wall_minutes": (time.perf_counter() - started) / 60, "cap_minutes": cap}
    for result in results.values():
        result["minutes_to_0.80"] = minutes_to(TARGET, result["minutes"], result["val_iou"])
        result["test_mean_iou"] = test_iou(uri, result["run_id"], workdir, args.root)
        result["test_mean_iou_tta_largest"] = test_iou(uri, result["run_id"], workdir, args.root,
                                                       ("tta=true", "postprocess=largest_component"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        ax.plot(result["minutes"], result["val_iou"], "o-", label=name)
    ax.axhline(TARGET, color="grey", linestyle="--", linewidth=1, label=f"val IoU {TARGET}")
    for name, result in results.items():
        if result["minutes_to_0.80"] is None:  # where a stopped run ended
            ax.axvline(result["run_minutes"], color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"{name} stopped", (result["run_minutes"], TARGET / 2), rotation=90, fontsize=8,
                        ha="right", va="center")
    ax.set_xlabel("wall-clock minutes since the run started (2-core CPU)")
    ax.set_ylabel("val IoU")
    ax.set_title("Real ISIC 2017 + PH2 images at 128 px")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "quality_over_time.png", dpi=110)
    write("quality_over_time", {"meta": meta, **results}, out)

    ours, theirs = results["isic_cpu"], results["notebook recipe"]
    print("| recipe | epochs | best val IoU | minutes to val IoU 0.80 | test mean per-image IoU | with TTA + largest "
          "component | wall minutes |")
    print("|---|---|---|---|---|---|---|")
    for name, result in results.items():
        to_target = result["minutes_to_0.80"]
        shown = f"{to_target:.1f}" if to_target is not None else f"not reached in {result['run_minutes']:.1f}"
        print(f"| {name} | {len(result['val_iou'])} | {max(result['val_iou'], default=float('nan')):.3f} | {shown} "
              f"| {_fmt(result['test_mean_iou'])} | {_fmt(result['test_mean_iou_tta_largest'])} "
              f"| {result['wall_minutes']:.1f} |")
    if ours["minutes_to_0.80"] is not None:
        theirs_time = theirs["minutes_to_0.80"]
        if theirs_time is None:
            print(f"time-to-0.80 ratio: notebook / isic_cpu > {theirs['run_minutes'] / ours['minutes_to_0.80']:.1f}x "
                  f"(the notebook recipe had not reached 0.80 when stopped after {theirs['run_minutes']:.1f} min)")
        else:
            print(f"time-to-0.80 ratio: notebook / isic_cpu = {theirs_time / ours['minutes_to_0.80']:.1f}x")
    print(f"plot: {out / 'quality_over_time.png'}; store: {uri}")


if __name__ == "__main__":
    main()
