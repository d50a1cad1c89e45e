"""What each U-Net option does at equal compute: every option alone, all of them together and the light config,
against the plain U-Net, on the real images with 3-fold cross-validation at one training budget in GFLOP.

Each config is one `python -m skinexp train -m cv=3 ...` sweep as a user types it; then `python -m skinexp compare`
ranks the configs on the mean per-image IoU of the out-of-fold images and sets each against the plain U-Net
(`baseline=`): diff, its paired bootstrap interval, the Holm-adjusted Wilcoxon p-value and the verdict. The table
adds the parameters, the training GFLOP per image and the training img/s on this machine (the median over the
runs' epochs, so it holds only for the load the JSON records). One GFLOP budget gives every config the same
compute, so a cheaper network sees more images; the budget is stated, not a number of epochs.

    SKINEXP_REAL_DATA=../shared/data/isic-real .venv/bin/python benchmarks/ablation.py [--gflop 3900] [--size 64]
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

from machine import metadata, write

REPO = Path(__file__).resolve().parent.parent
WHAT = ("Each U-Net option alone, all of them together and the light config against the plain U-Net, on the real "
        "images with 3-fold cross-validation at one training budget in GFLOP.")
CONFIGS = {  # name: the model overrides; "plain" is the baseline
    "plain": [],
    "residual": ["model.block=residual"],
    "gate": ["model.attention=gate"],
    "separable": ["model.conv=separable"],
    "group": ["model.norm=group"],
    "deep_supervision": ["model.deep_supervision=true"],
    "all": ["model.block=residual", "model.attention=gate", "model.conv=separable", "model.norm=group",
            "model.deep_supervision=true"],
    "light": ["model=unet_light"],
}


def settings(size: int, gflop: float) -> list[str]:
    return ["dataset=isic_real", f"dataset.image_size={size}", "dataset.test_split=0", "optim=adamw", "optim.lr=3e-3",
            "optim.schedule=cosine", "loss=bce_dice", "augment=light", "train.batch_size=8",
            f"train.budget.gflop={gflop}", "train.sample_count=0", "train.verbose=0", "tracking.log_model=false",
            "cv=3"]


def skinexp(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "skinexp", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise SystemExit(f"skinexp {' '.join(args[:3])} ... failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gflop", type=float, default=3900.0,
                        help="training GFLOP per run (default: about 8 epochs of the plain U-Net at 64 px)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="the folder of ablation.json (default: docs/)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the JSON from the runs already in --workdir")
    args = parser.parse_args()
    names = args.configs.split(",")
    meta = metadata(3)  # 3 folds per config
    os.environ.setdefault("SKINEXP_REAL_DATA", str(REPO.parent / "shared" / "data" / "isic-real"))
    sys.path.insert(0, str(REPO))
    from skinexp import tracking

    with tempfile.TemporaryDirectory(prefix="skinexp-ablation-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        for name in [] if args.report_only else names:
            print(f"ablation: {name}", file=sys.stderr, flush=True)
            skinexp("train", "-m", *settings(args.size, args.gflop), *CONFIGS[name], f"tracking.run_name={name}",
                    f"tracking.uri={uri}", cwd=workdir)
        tracking.open_store_uri(uri, workdir, "uri")
        rows, config_of_run = {}, {}
        for name in names:
            _, runs = tracking.sweep_runs("skinexp", [name])
            failed = [run.data.tags.get("failure_reason", run.info.status) for run in runs
                      if run.info.status != "FINISHED"]
            if failed:
                raise SystemExit(f"ablation: {name}: {len(failed)} of {len(runs)} runs did not finish: {failed[0]}")
            config_of_run.update({run.info.run_id: name for run in runs})
            first = runs[0].data
            rows[name] = {
                "overrides": CONFIGS[name], "runs": len(runs),
                "parameters": served_parameters(CONFIGS[name], args.size),
                "training_gflop_per_image": float(first.params["training_gflop_per_image"]),
                "train_steps": int(first.params["train.steps"]),
                "images_per_sec": statistics.median([_steady(run.info.run_id, "images_per_sec") for run in runs]),
                "training_seconds": statistics.median([run.data.metrics["training_seconds"] for run in runs]),
                "val_image_iou_per_fold": [run.data.metrics["val_image_iou"] for run in runs],
            }
        for name, row in _compare(workdir, uri, names, config_of_run).items():
            rows[name].update(row)
    write("ablation", {"meta": meta, "what": WHAT, "size": args.size, "gflop_budget": args.gflop,
                       "settings": settings(args.size, args.gflop), "baseline": "plain", "configs": rows}, args.out)


def served_parameters(overrides: list[str], size: int) -> int:
    """The parameters of the network a run logs and serves (deep supervision's heads train only)."""
    from skinexp.config.compose import compose
    from skinexp.model.unet import build_unet
    from skinexp.training.train import served_parameters as count

    return count(build_unet(compose("train", [f"dataset.image_size={size}", *overrides]).model, size))


def _steady(run_id: str, key: str) -> float:
    """The median of a run's per-epoch metric, the first epoch (which compiles) left out when there are more."""
    from skinexp import tracking

    values = tracking.metric_histories(run_id, [key])[key]
    return statistics.median(values[1:] if len(values) > 1 else values)


def _compare(workdir: Path, uri: str, names: list[str], config_of_run: dict[str, str]) -> dict[str, dict]:
    """`compare` of the sweeps with the plain U-Net as the baseline: its comparison.csv, row by config name.

    compare names a group by the params its runs differ in; the same grouping, applied here to the runs, tells
    which config each group name is."""
    from skinexp import tracking
    from skinexp.comparison.grouping import differing_keys, group_name, group_runs

    _, runs = tracking.sweep_runs("skinexp", names)
    grouped = group_runs(runs, None)
    keys = differing_keys(list(grouped))
    config_of_group = {group_name(key, keys): config_of_run[members[0].info.run_id]
                       for key, members in grouped.items()}
    plain = next(group for group, name in config_of_group.items() if name == "plain")
    report = workdir / "report"
    skinexp("compare", f"sweep={','.join(names)}", f"uri={uri}", f"report={report}", f"baseline={plain}",
            "overwrite=true", cwd=workdir)
    found = {}
    for row in csv.DictReader(io.StringIO((report / "comparison.csv").read_text())):
        found[config_of_group[row["group"]]] = {
            "group": row["group"], "images": int(row["images"]), "mean": float(row["mean"]),
            "ci95": [float(row["ci95_low"]), float(row["ci95_high"])], "diff": _number(row["diff"]),
            "diff_ci95": [_number(row["diff_ci95_low"]), _number(row["diff_ci95_high"])],
            "p_value": _number(row["p_value"]), "mdd": _number(row["mdd"]), "verdict": row["verdict"]}
    return found


def _number(text: str):
    return float(text) if text else None


if __name__ == "__main__":
    main()
