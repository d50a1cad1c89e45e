"""Three U-Net widths at one training budget in GFLOP: the README's equal-compute sweep, run as a user types it.

    python -m skinexp train -m <SETTINGS> model.filters=8,16,32 tracking.run_name=widths
    python -m skinexp compare sweep=widths baseline=<the 16-filter group>

One GFLOP budget gives every width the same training compute (images seen x training FLOPs per image), so the
narrow U-Net sees about 4 times the images of the 16-filter one and the wide one about a quarter; 3-fold
cross-validation on the real images, compared on the mean per-image IoU of the out-of-fold images with the
16-filter U-Net as the reference. Load does not change what a GFLOP budget trains, only how long it takes.

    SKINEXP_REAL_DATA=../shared/data/isic-real .venv/bin/python benchmarks/equal_compute.py [--gflop 3000]
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
from pathlib import Path

from ablation import comparison_row, skinexp
from machine import metadata, write

REPO = Path(__file__).resolve().parent.parent
WIDTHS = (8, 16, 32)
REFERENCE = 16


def settings(gflop: float) -> list[str]:
    """The sweep's overrides, as the README shows them (before `model.filters=8,16,32`)."""
    return ["dataset=isic_real", "dataset.image_size=64", "dataset.test_split=0", "model.norm=batch", "optim=adamw",
            "optim.lr=3e-3", "optim.schedule=cosine", "loss=bce_dice", "augment=light", f"train.budget.gflop={gflop:g}",
            "cv=3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gflop", type=float, default=3000.0)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    meta = metadata(3)  # 3 folds per width
    os.environ.setdefault("SKINEXP_REAL_DATA", str(REPO.parent / "shared" / "data" / "isic-real"))
    sys.path.insert(0, str(REPO))
    from skinexp import tracking

    with tempfile.TemporaryDirectory(prefix="skinexp-widths-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        quiet = ["train.sample_count=0", "train.verbose=0", "tracking.log_model=false", f"tracking.uri={uri}"]
        skinexp("train", "-m", *settings(args.gflop), f"model.filters={','.join(map(str, WIDTHS))}",
                "tracking.run_name=widths", *quiet, cwd=workdir)
        tracking.open_store_uri(uri, workdir, "uri")
        _, runs = tracking.sweep_runs("skinexp", ["widths"])
        widths = {}
        for run in runs:
            params = run.data.params
            widths.setdefault(int(params["model.filters"]), {
                "training_gflop_per_image": float(params["training_gflop_per_image"]),
                "train_steps": int(params["train.steps"]), "images_seen": [], "training_gflop": []})
            row = widths[int(params["model.filters"])]
            row["images_seen"].append(int(run.data.metrics["images_seen"]))
            row["training_gflop"].append(run.data.metrics["training_gflop"])
        report = workdir / "report"
        skinexp("compare", "sweep=widths", f"uri={uri}", f"report={report}",
                f"baseline=model.filters={REFERENCE}", "overwrite=true", cwd=workdir)
        for row in csv.DictReader(io.StringIO((report / "comparison.csv").read_text())):
            width = int(row["group"].rpartition("=")[2])
            widths[width].update(comparison_row(row))
    write("equal_compute", {"meta": meta, "gflop_budget": args.gflop, "settings": settings(args.gflop),
                            "reference": REFERENCE, "widths": {str(width): widths[width] for width in sorted(widths)}})


if __name__ == "__main__":
    main()
