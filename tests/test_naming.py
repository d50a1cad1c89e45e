"""MLflow run names from the command-line overrides (skinexp.config.naming)."""
from __future__ import annotations

import pytest

from skinexp.config.naming import job_run_name, override_key, run_name_from


@pytest.mark.parametrize("overrides, name", [
    (["model.filters=64", "optim.lr=1e-4"], "filters=64,lr=0.0001"),
    (["optim.lr=0.00010", "train.epochs=8"], "lr=0.0001,epochs=8"),  # numbers in a short, canonical form
    (["optim.lr=3.14159e-3"], "lr=0.003142"),  # four significant digits
    (["optim=sgd"], "optim=sgd"),  # a group choice keeps its group's name
    (["experiment=baseline", "augment=strong"], "experiment=baseline,augment=strong"),
    (["+train.seed=3"], "seed=3"),
    (["dataset.name=tree"], "name=tree"),  # an "e" in a word is not a number
    ([], "default"),
])
def test_run_name_from_the_last_key_part_and_value(overrides, name):
    assert run_name_from(overrides) == name


def test_tracking_hydra_and_search_overrides_are_left_out():
    hidden = ["tracking.uri=sqlite:///x.db", "tracking.experiment=e", "hydra.run.dir=out", "+hydra.job.chdir=true",
              "hparams_search=optuna"]
    assert run_name_from(hidden) == "default"
    assert run_name_from([*hidden, "model.depth=3"]) == "depth=3"


def test_override_key_strips_the_prefixes_and_the_value():
    assert [override_key(o) for o in ("+model.filters=8", "~model.dropout", "optim=sgd")] == \
        ["model.filters", "model.dropout", "optim"]


def test_an_explicit_name_wins():
    assert job_run_name("my-run", ["model.filters=8"], ["model.filters"]) == "my-run"


def test_sweep_children_are_named_from_the_swept_keys_only():
    overrides = ["model.filters=8", "train.epochs=2", "+optim.lr=0.001", "tracking.uri=sqlite:///x.db"]
    assert job_run_name(None, overrides, ["model.filters", "optim.lr"]) == "filters=8,lr=0.001"


def test_without_a_sweep_every_visible_override_names_the_run():
    assert job_run_name("", ["train.epochs=2", "model.filters=8", "tracking.experiment=e"], []) == \
        "epochs=2,filters=8"
    assert job_run_name(None, [], []) == "default"


def test_names_say_what_changes_the_model_or_the_training_not_where_data_or_logs_live():
    overrides = ["dataset=folder", "dataset.root=/long/path/to/shared/data/isic-real", "dataset.image_size=64",
                 "train.epochs=3", "dataset.cache=disk", "train.verbose=1", "resume=abc123"]
    assert run_name_from(overrides) == "image_size=64,epochs=3"


def test_a_path_shows_as_its_last_folder():
    assert run_name_from(["+model.weights=/data/runs/2026/best.keras"]) == "weights=best.keras"


def test_long_names_stop_before_50_characters_and_count_what_they_leave_out():
    overrides = [f"model.option_{i}={i * 1000}" for i in range(8)]
    name = run_name_from(overrides)
    assert len(name) <= 50
    shown = name.split(",")[:-1]
    assert name.endswith(f",+{len(overrides) - len(shown)}")
    assert shown == [f"option_{i}={i * 1000}" for i in range(len(shown))]
