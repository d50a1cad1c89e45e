"""Fold ensembles: the fold models of one config of a cross-validation sweep, their probabilities averaged, and
the threshold that maximises IoU on their pooled out-of-fold predictions (nnU-Net's recipe).

A sweep's parent run stands for its configs (`skinexp.comparison.grouping`); `group=` picks one by name
(`model.filters=6`), else the one with the highest mean `val_image_iou`
(the mean per-image IoU at 0.5 that `compare` ranks). Each FINISHED training run of that group
brings its best checkpoint; every fold 0..K-1 needs at least one (several, with repeated seeds, are all averaged).
"""
from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp import tracking
from skinexp.comparison.grouping import differing_keys, group_name, group_runs
from skinexp.errors import ConfigError

OUT_OF_FOLD_BATCH = 8  # images per batch when the fold models predict their own validation folds


@dataclass
class FoldMember:
    """One fold model: the training run that validated on `fold`, its best checkpoint and its own threshold."""

    fold: int
    run: object  # mlflow Run
    model: object  # keras.Model: images (N, S, S, 3) float32 0..255 -> probabilities (N, S, S, 1)
    threshold: float  # the run's best_threshold: what evaluating this run alone uses
    config: dict  # the run's resolved config

    @property
    def seed(self) -> str:
        return self.run.data.params.get("train.seed", "")


@dataclass
class FoldEnsemble:
    """Stands in for a Keras model: `predict_on_batch` is the mean of the members' probabilities.

    `threshold` maximises the mean per-image IoU (`scores.best_threshold`) on `out_of_fold_probabilities`
    (N, S, S, 1) float32, each image predicted by the members that never saw it, against `out_of_fold_masks`.
    """

    members: list[FoldMember]
    sweep_run_id: str  # the sweep's parent run
    group: str
    groups: list[str]  # every group of the sweep, by name
    threshold: float = 0.5
    out_of_fold_iou: float = math.nan
    out_of_fold_probabilities: Optional[np.ndarray] = field(default=None, repr=False)
    out_of_fold_masks: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def image_size(self) -> int:
        return int(self.members[0].model.input_shape[1])

    @property
    def folds(self) -> int:
        return int(self.members[0].config["dataset"]["folds"])

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        return np.mean(np.stack([np.asarray(m.model.predict_on_batch(batch), np.float32) for m in self.members]),
                       axis=0)

    def fold_labels(self) -> list[str]:
        """`<fold>`, or `<fold>_seed_<seed>` where a fold has several members: what names each member's metrics."""
        counts = {fold: sum(m.fold == fold for m in self.members) for fold in {m.fold for m in self.members}}
        return [f"{m.fold}" if counts[m.fold] == 1 else f"{m.fold}_seed_{m.seed}" for m in self.members]


def _fold_count(run) -> int:
    try:
        return int(run.data.params.get("dataset.folds", 0))
    except ValueError:
        return 0


def _fold(run) -> int:
    value = run.data.params.get("dataset.fold", "None")
    return 0 if value in ("None", "") else int(value)


def _mean_image_iou(runs: list) -> float:
    values = [run.data.metrics.get("val_image_iou", math.nan) for run in runs]
    values = [value for value in values if not math.isnan(value)]
    return float(np.mean(values)) if values else -math.inf


def select_fold_runs(parent_run_id: str, runs: list, group: Optional[str]) -> tuple[str, list[str], list]:
    """(the chosen group's name, every group's name, its runs by fold) among a sweep's FINISHED training `runs`.

    Raises ConfigError when no run is cross-validated or finished, `group` names no group, or a fold of the
    group has no FINISHED run.
    """
    cross_validated = [run for run in runs if _fold_count(run) >= 2]
    if not cross_validated:
        raise ConfigError(f"a fold ensemble needs a cross-validation sweep (dataset.folds>=2, e.g. cv=5); none of "
                          f"the {len(runs)} training runs of this sweep has folds. Received: run={parent_run_id}")
    finished = [run for run in cross_validated if run.info.status == "FINISHED"]
    if not finished:
        raise ConfigError(f"a fold ensemble needs FINISHED fold runs; none of the {len(cross_validated)} fold runs "
                          f"of this sweep finished. Received: run={parent_run_id}")
    groups = group_runs(finished)  # named as `compare` names them: from the FINISHED runs
    shown = differing_keys(list(groups))
    named = {group_name(key, shown): members for key, members in groups.items()}
    if group is None:
        group = max(named, key=lambda name: _mean_image_iou(named[name]))
    elif group not in named:
        raise ConfigError(f"group must name one of the sweep's configs: {', '.join(named)}. Received: group={group}")
    finished = sorted(named[group], key=_fold)
    folds = _fold_count(finished[0])
    missing = sorted(set(range(folds)) - {_fold(r) for r in finished})
    if missing:
        raise ConfigError(f"a fold ensemble needs a FINISHED run of every fold; group {group} has none for fold "
                          f"{', '.join(map(str, missing))} of dataset.folds={folds}. Received: run={parent_run_id} "
                          f"group={group}")
    return group, list(named), finished


def load_fold_ensemble(parent_run, group: Optional[str], predict: Callable) -> FoldEnsemble:
    """The ensemble of a sweep's parent run, its threshold set from the pooled out-of-fold predictions.

    `predict(model, images, batch_size)` is `skinexp.evaluation.inference.predict_probabilities` (passed in: inference
    imports this module).
    """
    import keras

    parent_run_id = parent_run.info.run_id
    name, names, runs = select_fold_runs(parent_run_id, tracking.training_children(parent_run_id), group)
    members = []
    with tempfile.TemporaryDirectory(prefix="skinexp-ensemble-") as download_dir:
        for run in runs:
            folder = Path(download_dir) / run.info.run_id
            checkpoint = tracking.download(run.info.run_id, "checkpoints/best.keras", folder)
            members.append(FoldMember(_fold(run), run, keras.models.load_model(checkpoint, compile=False),
                                      float(run.data.metrics.get("best_threshold", 0.5)),
                                      tracking.run_config(run.info.run_id, folder)))
    ensemble = FoldEnsemble(members, parent_run_id, name, names)
    set_out_of_fold_threshold(ensemble, predict)
    return ensemble


def set_out_of_fold_threshold(ensemble: FoldEnsemble, predict: Callable) -> None:
    """Each fold's validation images (from its run's dataset config, `load_splits`) predicted by that fold's
    members, pooled over folds; `ensemble.threshold` is the `best_threshold` of the pool."""
    from omegaconf import OmegaConf

    from skinexp.config.schema import DatasetConfig
    from skinexp.data.sources import load_splits
    from skinexp.evaluation.scores import best_threshold

    probabilities, masks = [], []
    for fold in sorted({m.fold for m in ensemble.members}):
        fold_members = [m for m in ensemble.members if m.fold == fold]
        dataset_cfg = OmegaConf.merge(OmegaConf.structured(DatasetConfig), fold_members[0].config["dataset"])
        val = load_splits(dataset_cfg).val
        probabilities.append(np.mean(np.stack([predict(m.model, val.images, OUT_OF_FOLD_BATCH)
                                                for m in fold_members]), axis=0))
        masks.append(np.asarray(val.masks))
    ensemble.out_of_fold_probabilities = np.concatenate(probabilities)
    ensemble.out_of_fold_masks = np.concatenate(masks)
    ensemble.threshold, ensemble.out_of_fold_iou = best_threshold(ensemble.out_of_fold_probabilities,
                                                                  ensemble.out_of_fold_masks)
