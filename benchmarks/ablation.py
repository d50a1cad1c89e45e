"""What each U-Net option does at equal compute: every option alone, all of them together and the light config,
against the plain U-Net, on the real images with 3-fold cross-validation at one training budget in GFLOP.

Each config is one `python -m skinexp train -m cv=3 ...` sweep as a user types it; then `python -m skinexp compare`
ranks the configs on the mean per-image IoU of the out-of-fold images and sets each against the plain U-Net
(`baseline=`): diff, its paired bootstrap interval, the Holm-adjusted Wilcoxon p-value and the verdict. The table
adds the parameters, the training GFLOP per image and the training img/s on this machine, measured apart from the
runs once they are done: every config's training step (the runs' data pipeline, augmentation and precision) timed
in `--speed-rounds` interleaved rounds, so a change of load falls on every config alike. One GFLOP budget gives
every config the same compute, so a cheaper network sees more images; the budget is stated, not a number of epochs.

    SKINEXP_REAL_DATA=../shared/data/isic-real .venv/bin/python benchmarks/ablation.py [--gflop 3900] [--size 64]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import load, metadata, spread, write

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
    parser.add_argument("--speed-rounds", type=int, default=3,
                        help="interleaved rounds of the img/s measurement (default 3)")
    args = parser.parse_args()
    names = args.configs.split(",")
    meta = metadata(3)  # 3 folds per config; --report-only takes the measuring run's from the workdir
    os.environ.setdefault("SKINEXP_REAL_DATA", str(REPO.parent / "shared" / "data" / "isic-real"))
    sys.path.insert(0, str(REPO))
    from skinexp import tracking

    with tempfile.TemporaryDirectory(prefix="skinexp-ablation-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        measured = workdir / "meta.json"
        if args.report_only:
            if not measured.is_file():
                raise SystemExit(f"ablation: {measured}: not found; it is written when the runs are trained")
            meta = {**json.loads(measured.read_text()), "report_written": meta["date"] + " " + meta["time_utc"]}
        else:
            measured.write_text(json.dumps(meta))
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
                "training_seconds": statistics.median([run.data.metrics["training_seconds"] for run in runs]),
                "val_image_iou_per_fold": [run.data.metrics["val_image_iou"] for run in runs],
            }
        for name, row in _compare(workdir, uri, names, config_of_run).items():
            rows[name].update(row)
        if not args.report_only:
            measured.write_text(json.dumps({**meta, "load_1min_at_end": load()}))
    speed_meta = metadata(args.speed_rounds)
    for name, rates in images_per_sec(names, args.size, args.speed_rounds).items():
        rows[name]["images_per_sec"] = spread(rates)
    speed_meta["load_1min_at_end"] = load()
    meta["speed"] = {key: speed_meta[key] for key in ("date", "time_utc", "load_1min_at_start", "load_1min_at_end",
                                                      "repeats")}
    write("ablation", {"meta": meta, "what": WHAT, "size": args.size, "gflop_budget": args.gflop,
                       "settings": settings(args.size, args.gflop), "baseline": "plain", "configs": rows}, args.out)


def served_parameters(overrides: list[str], size: int) -> int:
    """The parameters of the network a run logs and serves (deep supervision's heads train only)."""
    from skinexp.config.compose import compose
    from skinexp.model.unet import build_unet
    from skinexp.training.train import served_parameters as count

    return count(build_unet(compose("train", [f"dataset.image_size={size}", *overrides]).model, size))


def images_per_sec(names: list[str], size: int, rounds: int) -> dict[str, list[float]]:
    """Training img/s of each config, `rounds` times, the configs interleaved within each round: the step time
    `train.budget.minutes` probes (`probe_step_seconds`: a compiled model on the run's own training pipeline)."""
    from skinexp.config.compose import compose
    from skinexp.data.pipeline import make_dataset
    from skinexp.data.sources import load_splits
    from skinexp.training import runtime
    from skinexp.training.budget import probe_split, probe_step_seconds
    from skinexp.training.train import build_compiled

    common = [o for o in settings(size, 1.0) if not o.startswith(("train.budget", "cv="))]
    configs = {name: compose("train", [*common, *CONFIGS[name]]) for name in names}
    first = next(iter(configs.values()))
    splits = load_splits(first.dataset)
    batch = first.train.batch_size
    steps_per_epoch = len(splits.train) // batch
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        for name, cfg in configs.items():
            print(f"ablation: img/s, round {round_number + 1} of {rounds}: {name}", file=sys.stderr, flush=True)
            runtime.configure_runtime(cfg.train)
            head = probe_split(splits.train, batch, cfg.train.steps_per_execution)
            data = make_dataset(head, batch, training=True, seed=cfg.train.seed, augment_cfg=cfg.augment)
            step, _ = probe_step_seconds(build_compiled(cfg, steps_per_epoch, steps_per_epoch), data,
                                         steps_per_epoch, cfg.train.steps_per_execution)
            rates[name].append(batch / step)
    return rates


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
        found[config_of_group[row["group"]]] = comparison_row(row)
    return found


def comparison_row(row: dict) -> dict:
    """One row of compare's comparison.csv with its numbers as numbers (None where the reference has none)."""
    def number(text: str):
        return float(text) if text else None

    return {"group": row["group"], "images": int(row["images"]), "mean": float(row["mean"]),
            "ci95": [float(row["ci95_low"]), float(row["ci95_high"])], "diff": number(row["diff"]),
            "diff_ci95": [number(row["diff_ci95_low"]), number(row["diff_ci95_high"])],
            "p_value": number(row["p_value"]), "mdd": number(row["mdd"]), "verdict": row["verdict"]}


if __name__ == "__main__":
    main()
