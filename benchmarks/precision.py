"""Does bf16 train as well as float32? The same config in `train.precision=float32` and `mixed_bfloat16`, 3 seeds
each, on the real images, compared with skinexp's own comparison (Student t interval of each group's best val IoU,
the Wilcoxon signed-rank test on the same validation images, Holm-corrected, and its verdict).

One Hydra sweep (`train.precision=float32,mixed_bfloat16 train.seed=0,1,2`, 6 runs, one MLflow parent) at a
CPU-cheap size (64 px, 8 filters, batch norm, AdamW, BCE + Dice, 6 epochs: the size of `benchmarks/noise.py`),
then `python -m skinexp compare sweep=<parent> group_by=train.precision`, whose table this prints, with each
group's mean training img/s. Writes the runs (seed, precision, `val_image_iou`, `best_val_iou`, img/s, minutes) and
compare's table (`comparison.csv`) to `docs/precision.json`. Pass `--extra` to use another config (e.g.
`+experiment=isic_cpu` for the full recipe).

    python benchmarks/precision.py [--root DIR] [--size 64] [--epochs 6] [--seeds 0,1,2] [--extra KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import DOCS, metadata, spread, write

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "isic-real"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--extra", nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=DOCS, help="the folder of precision.json")
    args = parser.parse_args()
    meta = metadata(len(args.seeds.split(",")))
    workdir = Path(tempfile.mkdtemp(prefix="skinexp-precision-"))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {**os.environ, "SKINEXP_REAL_DATA": args.root, "TF_CPP_MIN_LOG_LEVEL": "3"}
    config = (args.extra or ["dataset=isic_real", f"dataset.image_size={args.size}", "dataset.test_split=0.15",
                             "dataset.val_split=0.15", "model.filters=8", "model.batchnorm=true", "optim=adamw",
                             "optim.lr=3e-3", "loss=bce_dice", f"train.epochs={args.epochs}",
                             "train.checkpoint_monitor=val_iou"])
    subprocess.run([sys.executable, "-m", "skinexp", "train", "-m", *config, f"dataset.root={args.root}",
                    f"train.precision={args.precisions}", f"train.seed={args.seeds}", "train.verbose=0",
                    "tracking.log_model=false", f"tracking.uri={uri}", "tracking.experiment=precision"],
                   cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)

    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("precision")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    report = workdir / "report"
    compared = subprocess.run([sys.executable, "-m", "skinexp", "compare", f"sweep={parent.info.run_id}",
                               "experiment=precision", "group_by=train.precision", f"uri={uri}", f"report={report}"],
                              cwd=workdir, env=env, capture_output=True, text=True, check=True)
    print(f"precision: {len(children)} runs ({args.precisions} x seeds {args.seeds}), "
          f"{' '.join(config)}")
    print(compared.stdout)
    runs = []
    for run in children:
        rates = [m.value for m in client.get_metric_history(run.info.run_id, "images_per_sec")]
        runs.append({"precision": run.data.params["train.precision"], "seed": int(run.data.params["train.seed"]),
                     "val_image_iou": run.data.metrics["val_image_iou"],
                     "best_val_iou": run.data.metrics["best_val_iou"], "best_epoch": run.data.metrics["best_epoch"],
                     "images_per_sec": statistics.mean(rates),
                     "minutes": (run.info.end_time - run.info.start_time) / 60000, "run_id": run.info.run_id})
    groups = list(csv.DictReader(io.StringIO((report / "comparison.csv").read_text())))
    speed = {}
    for precision in args.precisions.split(","):
        mine = [run for run in runs if run["precision"] == precision]
        speed[precision] = {"images_per_sec": spread([run["images_per_sec"] for run in mine]),
                            "minutes": spread([run["minutes"] for run in mine])}
        print(f"{precision}: training {speed[precision]['images_per_sec']['mean']:.1f} img/s (mean of runs; "
              f"{speed[precision]['images_per_sec']['min']:.1f}..{speed[precision]['images_per_sec']['max']:.1f}), "
              f"{speed[precision]['minutes']['mean']:.1f} min a run")
    print(f"store: {uri}")
    quantity = "val_image_iou: each run's mean per-image IoU at 0.5 of its kept checkpoint (compare's quantity)"
    runs.sort(key=lambda run: (run["precision"], run["seed"]))
    write("precision", {"meta": meta, "config": config, "quantity": quantity, "runs": runs, "comparison": groups,
                        "speed": speed}, args.out)


if __name__ == "__main__":
    main()
