"""The 564 real ISIC 2017 + PH2 pairs (../shared/data/isic-real): loaded as a folder, checked, trained on."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from datafiles import dataset_cfg
from mlflow.tracking import MlflowClient

from conftest import run_main
from skinexp.data import load_splits

pytestmark = pytest.mark.real_data


def test_all_564_pairs_load_with_the_manifests_foreground(real_data, tmp_path):
    from skinexp.data.sources import load_source

    with open(real_data / "manifest.csv") as handle:
        manifest = {row["id"]: row for row in csv.DictReader(handle)}
    cfg = dataset_cfg(name="folder", root=real_data, image_size=64, cache="disk", cache_dir=tmp_path / "cache")
    splits = load_splits(cfg)
    assert len(splits.train) == 451 and len(splits.val) == 113 and splits.warnings == []
    assert sorted(splits.train.ids + splits.val.ids) == sorted(manifest)
    for split in (splits.train, splits.val):
        assert split.images.shape[1:] == (64, 64, 3) and split.masks.shape[1:] == (64, 64, 1)
        assert set(np.unique(split.masks)) == {0, 1}

    loaded = load_source(cfg)  # from the disk cache now
    fractions = dict(zip(loaded.splits["train"].ids, loaded.foreground["train"]))
    assert all(abs(fractions[i] - float(row["foreground_fraction"])) < 1e-5 for i, row in manifest.items())
    sizes = {ident: size for ident, size in zip(loaded.splits["train"].ids, loaded.sizes)}
    assert all(sizes[i] == (int(row["width"]), int(row["height"])) for i, row in manifest.items())


def test_check_summarises_the_real_set(real_data, tmp_path):
    result = run_main("data", "check", "dataset=folder", f"dataset.root={real_data}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pairs: train 564 -> used as train 451, val 113" in result.stdout
    assert "empty masks: 0" in result.stdout and "problems: none" in result.stdout


@pytest.mark.slow
def test_a_short_run_on_real_data_is_tracked_and_finishes(real_data, tmp_path, store):
    result = run_main("train", "dataset=folder", f"dataset.root={real_data}", "dataset.image_size=64",
                      "model.filters=8", "train.epochs=1", "train.verbose=0", "tracking.experiment=real",
                      *store["overrides"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("real").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset.name"] == "folder" and run.data.tags["dataset"] == "folder"
    assert 0 <= run.data.metrics["val_iou"] <= 1  # fails for NaN
    assert len(client.get_metric_history(run.info.run_id, "val_iou")) == 1  # one value per epoch
