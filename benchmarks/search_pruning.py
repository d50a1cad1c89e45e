"""Does pruning pay? A 16-trial Optuna search on the real images with Hyperband pruning against the same search
without it, 2 repeats each (sampler seeds 1, 2): epochs trained, wall time and the best trial value
(val_image_iou), with spread. Writes docs/search_pruning.json.

A small budget for two CPU cores: 48 px images, a depth-3 U-Net with 8 filters, 9 epochs of at most 12 steps of
16 images (so Hyperband's rungs fall at 1, 3 and 9 epochs); the search space is the learning rate (log) and the
loss. The searches run one after the other, the pruned and unpruned ones alternating, each as the user types it,
in its own process.

    SKINEXP_REAL_DATA=../shared/data/isic-real .venv/bin/python benchmarks/search_pruning.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import metadata, spread, write

REPO = Path(__file__).resolve().parent.parent
SETTINGS = ["dataset=isic_real", "dataset.image_size=48", "model.depth=3", "model.filters=8", "train.epochs=9",
            "train.batch_size=16", "train.max_steps_per_epoch=12", "train.sample_count=0", "train.verbose=0",
            "tracking.log_model=false", "hydra.sweeper.n_trials=16",
            "optim.lr=tag(log,interval(1e-5,0.05))", "loss.name=choice(bce,bce_dice)"]


def one_search(workdir: Path, pruner: str, seed: int) -> dict:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage, study = workdir / "bench.journal", f"{pruner}-{seed}"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "skinexp", "train", "hparams_search=optuna", *SETTINGS,
         f"hydra.sweeper.pruner={pruner}", f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweeper.storage={storage}",
         f"hydra.sweeper.study_name={study}", f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}"],
        cwd=workdir, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    trials = optuna.load_study(study_name=study, storage=optuna.storages.JournalStorage(
        JournalFileBackend(str(storage)))).trials
    return {"pruner": pruner, "seed": seed, "wall_seconds": round(seconds, 1),
            "epochs_trained": sum(len(t.intermediate_values) for t in trials),
            "trials_pruned": sum(t.state.name == "PRUNED" for t in trials),
            "best_val_image_iou": max(t.user_attrs.get("val_image_iou", float("nan")) for t in trials
                                      if t.state.name == "COMPLETE"),
            "best_val_image_iou_any_trial": max(t.user_attrs.get("val_image_iou", float("-inf")) for t in trials)}


def main() -> None:
    meta = metadata(2)
    os.environ.setdefault("SKINEXP_REAL_DATA", str(REPO.parent / "shared" / "data" / "isic-real"))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (1, 2):
            for pruner in ("hyperband", "none"):
                runs.append(one_search(Path(tmp), pruner, seed))
                print(json.dumps(runs[-1]), flush=True)
    summary = {pruner: {key: spread([run[key] for run in runs if run["pruner"] == pruner])
                        for key in ("wall_seconds", "epochs_trained", "best_val_image_iou")}
               for pruner in ("hyperband", "none")}
    out = {"meta": meta,
           "what": "16-trial Optuna search on the real images, Hyperband pruning vs none, 2 repeats (seeds 1, 2)",
           "settings": SETTINGS, "cpu_cores": os.cpu_count(), "runs": runs, "summary": summary,
           "note": "best_val_image_iou is the best completed trial's value"}
    write("search_pruning", out)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
