"""Held-out IoU against training minutes: `+experiment=isic_cpu` at budgets of 5, 10 and 20 training minutes.

Each budget is one run of the recipe as a user types it (`python -m skinexp train +experiment=isic_cpu
train.budget.minutes=M`) on the real images (default ../shared/data/isic-real) with the recipe's own fixed split
(15 % validation, 15 % held-out test, seed 0), one after the other on this machine, the longest first. The run
turns its minutes into optimizer steps from the step time it measures, and revises them as it goes (its plan is
recorded), so a faster processor trains more steps in the same minutes; its schedule decays over them. Each
kept checkpoint is then scored on the held-out test images (`skinexp evaluate split=test`: mean per-image IoU at
the run's tuned threshold; also with `tta=true postprocess=largest_component`), with a 95 % bootstrap interval
over the test images. The per-epoch val IoU is read back against the run's `training_seconds`.

Goal (issue "Budgeted training"): mean per-image test IoU >= 0.86 within 20 training minutes on a processor with
bf16 (AVX512_BF16 or AMX). The JSON records the CPU model and flags and the load, and the figure is drawn from it.

One run per budget is one training seed. `--seeds 1,2 --add-to docs/quality_over_time.json` repeats one budget
with those `train.seed`s, on the same machine and recipe as that JSON, and adds them to it as `seed_repeats` (with
their own command, commit and load): the budget's mean over the seeds, their sd and a Student t 95 % interval.

    python benchmarks/quality.py [--root DIR] [--budgets 20,10,5] [--out docs] [--extra OVERRIDE ...]
    python benchmarks/quality.py --budgets 20 --seeds 1,2 --add-to docs/quality_over_time.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import load, metadata, write

GOAL = 0.86
RECIPE = ["+experiment=isic_cpu", "tracking.log_model=false", "tracking.experiment=quality", "train.verbose=0"]


def skinexp(*args: str, workdir: Path, root: str) -> str:
    """`python -m skinexp ARGS` with the real images at `root` (a run's evaluation reads its dataset from the run)."""
    result = subprocess.run([sys.executable, "-m", "skinexp", *args], cwd=workdir, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SKINEXP_REAL_DATA": root})
    if result.returncode != 0:
        sys.exit(f"skinexp {args[0]} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def train(minutes: float, workdir: Path, uri: str, root: str, extra: list[str]) -> str:
    """One budgeted run of the recipe; returns its run id."""
    import mlflow

    skinexp("train", *RECIPE, f"dataset.root={root}", f"train.budget.minutes={minutes:g}",
            f"tracking.run_name=budget-{minutes:g}min", f"tracking.uri={uri}", *extra, workdir=workdir, root=root)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("quality")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id


def record(uri: str, run_id: str) -> dict:
    """What the run logged: its resolved steps, epochs, training seconds, images and GFLOP, and the val IoU curve
    against training minutes."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    history = {key: [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]
               for key in ("val_iou", "training_seconds", "images_seen", "training_gflop")}
    params = run.data.params
    return {"run_id": run_id, "seed": int(params["train.seed"]), "train_steps": int(params["train.steps"]),
            "budget_plan": json.loads(params.get("train.budget_plan") or "null"),
            "probe_step_seconds": float(params.get("budget_probe_step_seconds") or "nan"),
            "epochs": len(history["val_iou"]), "training_minutes": history["training_seconds"][-1] / 60,
            "images_seen": int(history["images_seen"][-1]), "training_gflop": history["training_gflop"][-1],
            "run_minutes": (run.info.end_time - run.info.start_time) / 60000,
            "curve_minutes": [seconds / 60 for seconds in history["training_seconds"]],
            "curve_val_iou": history["val_iou"], "val_image_iou": run.data.metrics["val_image_iou"],
            "best_threshold": run.data.metrics.get("best_threshold")}


def test_iou(uri: str, run_id: str, workdir: Path, root: str, extra: tuple[str, ...] = ()) -> dict:
    """Mean per-image IoU of the run's kept checkpoint on the held-out test split, at the run's threshold, with its
    95 % bootstrap interval over the test images (resampled with replacement: how far another draw of images of
    this kind could move the mean; the seed-to-seed spread of training is the noise benchmark's) and their count."""
    from skinexp.comparison.statistics import mean_interval

    out = workdir / f"eval-{run_id}{'-tta' if extra else ''}"
    skinexp("evaluate", f"run={run_id}", "split=test", *extra, f"output={out}", f"tracking.uri={uri}",
            workdir=workdir, root=root)
    with open(out / "per_image.csv", newline="") as rows:
        scores = [float(row["iou"]) for row in csv.DictReader(rows)]
    mean, low, high = mean_interval(scores, [0] * len(scores))  # the mean evaluate's summary.json states too
    return {"mean": mean, "interval": [low, high], "images": len(scores)}


def budget_run(minutes: float, workdir: Path, uri: str, root: str, extra: list[str]) -> dict:
    """Train one budget and score its kept checkpoint on the test images, plain and with TTA + largest component."""
    print(f"quality: {minutes:g} training minutes {' '.join(extra)}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    run_id = train(minutes, workdir, uri, root, extra)
    wall = (time.perf_counter() - started) / 60
    plain = test_iou(uri, run_id, workdir, root)
    tta = test_iou(uri, run_id, workdir, root, ("tta=true", "postprocess=largest_component"))
    budget = {"minutes": minutes, "wall_minutes": wall, **record(uri, run_id),
              "test_mean_iou": plain["mean"], "test_iou_interval": plain["interval"], "test_images": plain["images"],
              "test_mean_iou_tta_largest": tta["mean"], "test_iou_tta_largest_interval": tta["interval"]}
    print(f"quality: {minutes:g} min: {budget['train_steps']} steps, test IoU {budget['test_mean_iou']:.4f}",
          file=sys.stderr, flush=True)
    return budget


def over_seeds(values: list[float]) -> dict:
    """n, mean, sd and the Student t 95 % interval of one budget's test IoU over its training seeds."""
    from scipy import stats

    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sd / np.sqrt(len(values)))
    return {"n": len(values), "mean": mean, "sd": sd, "t_interval": [float(low), float(high)]}


def seed_of(uri: str, run_id: str, path: Path) -> int:
    """The `train.seed` an earlier budget's run trained with, from its store (a JSON written before runs recorded
    their seed)."""
    import mlflow

    try:
        return int(mlflow.MlflowClient(uri).get_run(run_id).data.params["train.seed"])
    except (mlflow.exceptions.MlflowException, KeyError):
        sys.exit(f"quality: {path} does not record the seed of run {run_id}, and {uri} does not hold the run: "
                 f"pass the --workdir it was written from. Received: --workdir store {uri}")


def add_seed_repeats(path: Path, seeds: list[int], minutes: float, workdir: Path, uri: str, root: str,
                     extra: list[str]) -> dict:
    """The JSON at `path` with `minutes` repeated for `seeds` (`train.seed`), as `seed_repeats`. Refuses a JSON of
    another recipe, CPU or budget list: the repeats must be the same runs but for their seed."""
    results = json.loads(path.read_text())
    meta = metadata(len(seeds))
    earlier = [b for b in results["budgets"] if b["minutes"] == minutes]
    if results["recipe"] != RECIPE + extra or results["meta"]["machine"] != meta["machine"] or not earlier:
        sys.exit(f"quality: --add-to needs a JSON of this recipe, CPU and budget. Received: {path} (recipe "
                 f"{results['recipe']}, {results['meta']['machine']['cpu']}, budgets "
                 f"{[b['minutes'] for b in results['budgets']]}) for {minutes:g} minutes on {meta['machine']['cpu']}")
    first_seed = earlier[0]["seed"] if "seed" in earlier[0] else seed_of(uri, earlier[0]["run_id"], path)
    runs = [budget_run(minutes, workdir, uri, root, [*extra, f"train.seed={seed}"]) for seed in seeds]
    meta["load_1min_at_end"] = load()
    results["seed_repeats"] = {"meta": meta, "minutes": minutes, "seeds": [first_seed, *seeds], "runs": runs, **{
        key: over_seeds([earlier[0][key], *(run[key] for run in runs)])
        for key in ("test_mean_iou", "test_mean_iou_tta_largest")}}
    return results


def figure(results: dict, out: Path) -> None:
    """Left: test IoU (with its interval, when recorded) against the training minutes each budget took. Right: each
    run's val IoU per epoch. Redraw from a JSON: `python -c "import json, quality; from pathlib import Path;
    quality.figure(json.load(open('../docs/quality_over_time.json')), Path('../docs'))"` from benchmarks/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    budgets = sorted(results["budgets"], key=lambda b: b["minutes"])
    minutes, means = [b["training_minutes"] for b in budgets], [b["test_mean_iou"] for b in budgets]
    if all(b.get("test_iou_interval") for b in budgets):  # 95 % bootstrap over the test images
        below = [mean - b["test_iou_interval"][0] for mean, b in zip(means, budgets)]
        above = [b["test_iou_interval"][1] - mean for mean, b in zip(means, budgets)]
        left.errorbar(minutes, means, yerr=[below, above], fmt="o-", capsize=4,
                      label="test IoU, 95 % interval over the test images")
    else:
        left.plot(minutes, means, "o-", label="test IoU")
    left.plot([b["training_minutes"] for b in budgets], [b["test_mean_iou_tta_largest"] for b in budgets], "s--",
              label="with TTA + largest component")
    repeats = results.get("seed_repeats")
    if repeats:
        seeds = ", ".join(str(seed) for seed in repeats["seeds"][1:])
        left.plot([run["training_minutes"] for run in repeats["runs"]],
                  [run["test_mean_iou"] for run in repeats["runs"]], "x", color="C0", markersize=8,
                  label=f"test IoU, train.seed {seeds}")
    left.axhline(GOAL, color="grey", linestyle=":", linewidth=1, label=f"goal {GOAL}")
    left.set_xlabel("training minutes")
    left.set_ylabel("mean per-image IoU, held-out test images")
    left.legend()
    for budget in budgets:
        right.plot(budget["curve_minutes"], budget["curve_val_iou"], ".-", label=f"{budget['minutes']:g}-minute budget")
    right.set_xlabel("training minutes")
    right.set_ylabel("val IoU per epoch")
    right.legend()
    cpu = results["meta"]["machine"]["cpu"]
    fig.suptitle(f"+experiment=isic_cpu by budget, {cpu}, {results['meta']['machine']['cores']} cores")
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "quality_over_time.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "isic-real"))
    parser.add_argument("--budgets", default="20,10,5", help="training minutes, one run each (default 20,10,5)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every run (smoke tests)")
    parser.add_argument("--seeds", help="train.seed values to repeat the one budget with (with --add-to)")
    parser.add_argument("--add-to", type=Path, help="an earlier JSON of this recipe and CPU that the repeats join")
    args = parser.parse_args()
    budget_minutes = [float(text) for text in args.budgets.split(",")]
    if bool(args.seeds) != bool(args.add_to) or (args.add_to and len(budget_minutes) != 1):
        parser.error(f"--seeds and --add-to go together, with one budget. Received: --seeds {args.seeds} "
                     f"--add-to {args.add_to} --budgets {args.budgets}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="skinexp-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    if args.add_to:
        results = add_seed_repeats(args.add_to, [int(seed) for seed in args.seeds.split(",")], budget_minutes[0],
                                   workdir, uri, args.root, args.extra)
    else:
        meta = metadata(1)  # one run per budget: no spread
        budgets = [budget_run(minutes, workdir, uri, args.root, args.extra) for minutes in budget_minutes]
        results = {"meta": meta, "recipe": RECIPE + args.extra, "goal": GOAL, "budgets": budgets}
    args.out.mkdir(parents=True, exist_ok=True)
    figure(results, args.out)
    write("quality_over_time", results, args.out)


if __name__ == "__main__":
    main()
