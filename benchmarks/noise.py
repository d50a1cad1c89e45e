"""How much noise there is: one config trained with 3 seeds on one split, and over 5 folds, on the real images.

Prints the sd of the runs' mean per-image IoU at threshold 0.5 (`val_image_iou`, the quantity `compare` ranks)
across seeds and across folds, the minimum detectable difference `compare` reports (`mdd`, 80 % power) for one
split and for the out-of-fold pool, and the smallest difference in mean per-image IoU that the paired Wilcoxon
test resolves at p < 0.05 with the validation images of one split
against the out-of-fold images of 5 folds. That difference is measured, not assumed: the seed-to-seed
per-image differences of two runs on the same split, centred on their median (no true difference), are the
noise; a shift d is added to them and d grows until the test gives p < 0.05, on the split's own images and on
resamples (seeded, 50 of them, with replacement) of the same differences at the size of the out-of-fold pool
(the median d is reported).

    python benchmarks/noise.py [--root DIR] [--size 64] [--epochs 6] [--out docs]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from machine import DOCS, metadata, write

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def sweep(workdir: Path, uri: str, root: str, args: list[str], size: int, epochs: int) -> None:
    env = {**os.environ, "SKINEXP_REAL_DATA": root}
    command = [sys.executable, "-m", "skinexp", "train", "-m", "dataset=isic_real", f"dataset.image_size={size}",
               "dataset.test_split=0.15", "dataset.val_split=0.15", "model.filters=8", "model.batchnorm=true",
               "optim=adamw", "optim.lr=3e-3", "loss=bce_dice", f"train.epochs={epochs}", "train.verbose=0",
               "tracking.log_model=false", f"tracking.uri={uri}", *args]
    subprocess.run(command, cwd=workdir, env=env, check=True)


def smallest_resolved_shift(differences: np.ndarray) -> float:
    """The smallest d (steps of 0.001) for which the Wilcoxon test on differences + d gives p < 0.05."""
    from skinexp.comparison.statistics import wilcoxon_p_value

    for step in range(1, 1001):
        shift = step / 1000
        if wilcoxon_p_value(differences + shift) < 0.05:
            return shift
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "isic-real"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=DOCS, help="the folder of noise.json")
    args = parser.parse_args()
    meta = metadata(3)  # 3 seeds on one split; the 5 folds are the other repeats

    from skinexp import tracking
    from skinexp.comparison.statistics import minimum_detectable_difference
    from skinexp.comparison.table import parse_per_image

    with tempfile.TemporaryDirectory(prefix="skinexp-noise-") as scratch:
        workdir = Path(scratch)
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        sweep(workdir, uri, args.root, ["train.seed=1,2,3", "tracking.run_name=seeds"], args.size, args.epochs)
        sweep(workdir, uri, args.root, ["cv=5", "tracking.run_name=folds"], args.size, args.epochs)
        tracking.open_store_uri(uri, workdir, "uri")
        _, seeds = tracking.sweep_runs("skinexp", ["seeds"])
        _, folds = tracking.sweep_runs("skinexp", ["folds"])
        per_image = {run.info.run_id: parse_per_image(tracking.artifact_bytes(run.info.run_id, "val_per_image.csv"),
                                                      "iou")
                     for run in seeds + folds}
    seed_scores = [run.data.metrics["val_image_iou"] for run in seeds]
    fold_scores = [run.data.metrics["val_image_iou"] for run in folds]
    first, second = (per_image[run.info.run_id] for run in seeds[:2])
    common = sorted(set(first) & set(second))
    raw = np.array([first[i] - second[i] for i in common])
    differences = raw - np.median(raw)  # the noise alone: what two equally good configs would differ by
    pool = sum(len(per_image[run.info.run_id]) for run in folds)
    rng = np.random.default_rng(0)
    pooled_shifts = [smallest_resolved_shift(rng.choice(differences, size=pool, replace=True)) for _ in range(50)]
    pooled_mdd = [minimum_detectable_difference(rng.choice(differences, size=pool, replace=True)) for _ in range(50)]
    result = {
        "meta": meta,
        "images": {"single_split_val": len(common), "out_of_fold": pool},
        "val_image_iou": {"seeds": seed_scores, "folds": fold_scores},
        "sd_across_seeds": float(np.std(seed_scores, ddof=1)), "sd_across_folds": float(np.std(fold_scores, ddof=1)),
        "mdd": {"single_split": minimum_detectable_difference(differences),
                "five_fold_median": float(np.median(pooled_mdd))},
        "per_image_seed_difference_sd": float(differences.std(ddof=1)),
        "per_image_seed_difference_median": float(np.median(raw)),
        "per_image_seed_differences": [round(float(value), 6) for value in raw],
        "smallest_resolved_difference": {"single_split": smallest_resolved_shift(differences),
                                         "five_fold_median": float(np.median(pooled_shifts)),
                                         "five_fold_range": [float(min(pooled_shifts)), float(max(pooled_shifts))]},
        "settings": {"size": args.size, "epochs": args.epochs, "model.filters": 8},
    }
    write("noise", result, args.out)
    print(json.dumps({key: value for key, value in result.items() if key != "per_image_seed_differences"}, indent=2))


if __name__ == "__main__":
    main()
