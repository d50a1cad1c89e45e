"""Evaluation: score a trained model on a dataset split, per image and over the set, and log it under its run."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from skinexp import tracking
from skinexp.config.schema import DatasetConfig, Postprocess
from skinexp.console import Progress
from skinexp.data.sources import load_splits
from skinexp.data.types import Split
from skinexp.errors import ConfigError, PermissionRefused
from skinexp.evaluation import postprocess
from skinexp.evaluation.ensemble import FoldEnsemble
from skinexp.evaluation.inference import load_trained, predict_probabilities
from skinexp.evaluation.scores import image_scores, per_image_table, summarize
from skinexp.outputs import refuse_existing

OUTPUT_FILES = ("per_image.csv", "summary.json", "figure.png", "best.png", "worst.png")
PER_IMAGE_COLUMNS = ("id", "iou", "dice", "precision", "sensitivity", "specificity", "accuracy", "hd95")
LOGGED_SUMMARY = {"test_iou": "mean_iou", "test_miou": "miou", "test_dice": "mean_dice", "test_accuracy": "accuracy",
                  "test_thresholded_jaccard": "thresholded_jaccard", "test_precision": "mean_precision",
                  "test_sensitivity": "mean_sensitivity", "test_specificity": "mean_specificity",
                  "test_hd95": "mean_hd95"}


@dataclass
class EvaluationResult:
    summary: dict
    output_dir: Path
    run_id: str  # the evaluation run


def _concat(splits) -> Split:
    parts = [s for s in splits if s is not None]
    return Split(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                 [i for p in parts for i in p.ids])


def choose_split(splits, split: str, explicit_dataset: bool) -> tuple[str, Split]:
    """`auto`: test if the source has one, else the whole set (a dataset given on the command line) or
    the run's own validation split (the run's dataset)."""
    if split == "auto":
        if splits.test is not None:
            return "test", splits.test
        return ("all", _concat([splits.train, splits.val])) if explicit_dataset else ("val", splits.val)
    if split == "all":
        return "all", _concat([splits.train, splits.val, splits.test])
    if split == "test" and splits.test is None:
        if explicit_dataset:  # a folder or .npy set without a split structure is evaluated whole
            return "all", _concat([splits.train, splits.val])
        raise ConfigError("the run's dataset has no test split; pass split=val, a dataset with a test split, or "
                          "dataset.test_split>0. Received: split=test")
    return split, getattr(splits, split)


def evaluate(cfg, *, output_dir: Path, base_dir: Path) -> EvaluationResult:
    """Score `cfg.run` on `cfg.dataset` (else the run's own dataset) and write per_image.csv, summary.json, figures.

    Empty-mask conventions are those of `skinexp.evaluation.scores` (both empty: IoU 1).
    """
    refuse_existing([output_dir / name for name in OUTPUT_FILES], output_dir, cfg.overwrite)
    trained = load_trained(cfg.run, cfg.tracking, base_dir, cfg.group, cfg.backend)
    ensemble = trained.model if isinstance(trained.model, FoldEnsemble) else None
    explicit = cfg.dataset is not None
    if explicit:
        dataset_cfg = cfg.dataset.copy()
    elif trained.config is not None:
        dataset_cfg = OmegaConf.merge(OmegaConf.structured(DatasetConfig), trained.config["dataset"])
    else:
        raise ConfigError(f"a .keras file carries no dataset; pass dataset=... Received: run={cfg.run}")
    dataset_cfg.image_size = trained.image_size  # the model decides the resolution
    splits = load_splits(dataset_cfg)
    split_name, split = choose_split(splits, cfg.split, explicit)
    if ensemble is not None and not explicit and split_name != "test":
        raise ConfigError(f"a fold ensemble has trained on every image of its own dataset outside the test split; "
                          f"evaluate it with split=test (a sweep with dataset.test_split>0) or on another dataset=. "
                          f"Received: split={cfg.split} ({split_name})")
    threshold = cfg.threshold if cfg.threshold is not None else trained.threshold

    progress = Progress(len(split), f"evaluate {split_name}")
    probabilities = predict_probabilities(trained.model, split.images, cfg.batch_size, cfg.tta, progress)
    progress.close()
    keep_largest, postprocess_gain = False, None
    if cfg.postprocess == Postprocess.largest_component:
        if ensemble is not None:  # each validation image predicted by the fold models that never saw it
            val_probabilities, val_masks = ensemble.out_of_fold_probabilities, ensemble.out_of_fold_masks
        else:
            val_masks = splits.val.masks
            val_probabilities = probabilities if split_name == "val" else predict_probabilities(
                trained.model, splits.val.images, cfg.batch_size, cfg.tta)
        postprocess_gain = postprocess.largest_component_gain(val_probabilities, val_masks, threshold)
        keep_largest = postprocess_gain > 0
    masks = postprocess.to_masks(probabilities, threshold, keep_largest)

    per_image = [image_scores(truth, predicted) for truth, predicted in zip(split.masks, masks)]
    summary = {**summarize(per_image), "images": len(per_image), "split": split_name, "threshold": threshold,
               "tta": bool(cfg.tta), "postprocess": str(cfg.postprocess), "postprocess_applied": keep_largest,
               "postprocess_val_iou_gain": postprocess_gain, "run": cfg.run, "dataset": str(dataset_cfg.name),
               "ensemble": ensemble is not None}
    if ensemble is not None:
        summary.update(ensemble_summary(ensemble, split, cfg, keep_largest))
    _write(output_dir, split, per_image, summary, masks, cfg.columns, figure_title(split_name, dataset_cfg))
    if postprocess_gain is not None:
        verdict = "helps" if keep_largest else "does not help"
        print(f"skinexp: largest_component {verdict} on validation (mean IoU {postprocess_gain:+.4f}); "
              f"{'applied' if keep_largest else 'not applied'}")
    if ensemble is not None:
        folds = ", ".join(f"fold {row['label']} {row['mean_iou']:.4f}" for row in summary["folds"])
        print(f"skinexp: fold ensemble of group {ensemble.group} ({len(ensemble.members)} models), threshold "
              f"{threshold:.2f} from {summary['threshold_from']}; mean IoU alone: {folds}")
    try:
        run_id = _log(cfg, trained, summary, output_dir, split_name)
        tracking.log_dataset_inputs(run_id, dataset_cfg, splits.fingerprint(), {split_name: split})
    except PermissionRefused as refusal:  # a READ-only user evaluates; the files are theirs, the store is not
        print(f"skinexp: warning: the evaluation is not logged to MLflow: {refusal}", file=sys.stderr)
        run_id = None
    return EvaluationResult(summary, output_dir, run_id)


def ensemble_summary(ensemble: FoldEnsemble, split: Split, cfg, keep_largest: bool) -> dict:
    """What summary.json adds for a fold ensemble: the group, where the threshold came from, and each fold model
    alone on the same images (at its own best_threshold unless `threshold=` is given, same tta and postprocessing).
    """
    folds = []
    for member, label in zip(ensemble.members, ensemble.fold_labels()):
        threshold = cfg.threshold if cfg.threshold is not None else member.threshold
        probabilities = predict_probabilities(member.model, split.images, cfg.batch_size, cfg.tta)
        masks = postprocess.to_masks(probabilities, threshold, keep_largest)
        scores = summarize([image_scores(truth, predicted) for truth, predicted in zip(split.masks, masks)])
        folds.append({"fold": member.fold, "label": label, "run_id": member.run.info.run_id, "seed": member.seed,
                      "threshold": threshold, **scores})
    return {"sweep": ensemble.sweep_run_id, "group": ensemble.group, "groups": ensemble.groups,
            "threshold_from": "threshold=" if cfg.threshold is not None else "pooled out-of-fold predictions",
            "out_of_fold_images": len(ensemble.out_of_fold_masks), "out_of_fold_iou": ensemble.out_of_fold_iou,
            "folds": folds}


def figure_title(split_name: str, dataset_cfg) -> str:
    """What the figures show: the split and the dataset actually evaluated (`val images of folder isic-real`)."""
    where = f" {Path(str(dataset_cfg.root)).name}" if dataset_cfg.root else ""
    return f"{split_name} images of {dataset_cfg.name}{where}"


def _write(output_dir: Path, split: Split, per_image, summary, masks, columns: int, title: str) -> None:
    from skinexp.evaluation.figures import close, notebook_figure

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "per_image.csv").write_text(per_image_table(split.ids, per_image, PER_IMAGE_COLUMNS))
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ious = np.array([s["iou"] for s in per_image])
    count = min(columns, len(ious))
    order = np.argsort(ious, kind="stable")
    for name, index, heading in (("figure.png", np.arange(count), title),
                                 ("best.png", order[::-1][:count], f"{title}: best {count} by IoU"),
                                 ("worst.png", order[:count], f"{title}: worst {count} by IoU")):
        figure = notebook_figure(split.images[index], split.masks[index], masks[index],
                                 [f"{split.ids[i]}\nIoU {ious[i]:.3f}" for i in index], heading)
        figure.savefig(output_dir / name, dpi=100)
        close(figure)


def _log(cfg, trained, summary, output_dir: Path, split_name: str) -> str:
    """An evaluation run, nested under the training run when there is one."""
    if trained.run is not None:
        experiment_id, parent = trained.run.info.experiment_id, trained.run.info.run_id
    else:
        _, experiment_id = tracking.prepare_store(cfg.tracking, Path.cwd())
        parent = None
    name = f"evaluate {split_name}" + (" tta" if cfg.tta else "") + (
        f" ensemble {summary['group']}" if summary["ensemble"] else "")
    with tracking.run(experiment_id, name, parent_run_id=parent, tags={"skinexp.kind": "evaluation"}) as active:
        tracking.log_params({"run": cfg.run, "split": split_name, "threshold": summary["threshold"],
                             "tta": cfg.tta, "postprocess": cfg.postprocess, "dataset": summary["dataset"],
                             "images": summary["images"]})
        tracking.log_metrics({key: summary[source] for key, source in LOGGED_SUMMARY.items()}, step=0)
        if summary["postprocess_val_iou_gain"] is not None:
            tracking.log_metrics({"postprocess_val_iou_gain": summary["postprocess_val_iou_gain"]}, step=0)
        if summary["ensemble"]:
            tracking.log_params({"group": summary["group"], "ensemble_models": len(summary["folds"]),
                                 "threshold_from": summary["threshold_from"]})
            tracking.log_metrics({f"test_iou_fold_{row['label']}": row["mean_iou"] for row in summary["folds"]},
                                 step=0)
        for name in OUTPUT_FILES:
            tracking.log_artifact(output_dir / name)
    if parent and cfg.postprocess == Postprocess.largest_component:
        tracking.log_run_tag(parent, postprocess.TAG, postprocess.verdict(summary["postprocess_applied"]))
    return active.info.run_id
