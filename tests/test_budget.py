"""Budgeted training: a budget of minutes, GFLOP or steps resolved into the run's steps; the schedule spans them,
training ends at them (the last epoch partial), reruns and resumes train the steps the run recorded."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY, error_line
from skinexp.model.flops import training_flops_per_image
from skinexp.model.unet import build_unet
from skinexp.training.budget import MAX_REVISIONS, Plan, images_after, plan, revised_steps, steps_for_images

BUDGETED = [*TINY, "optim.schedule=cosine", "optim.lr=1e-3", "tracking.log_model=false"]


def _train_cfg(**budget):
    from omegaconf import OmegaConf

    full = OmegaConf.create({"minutes": None, "gflop": None, "steps": None, **budget})
    return SimpleNamespace(epochs=3, batch_size=4, steps_per_execution=1, budget=full)


def _history(client, run_id, key):
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _underpriced_minutes_run(main, tmp_path, store, monkeypatch, minutes: float):
    """A minutes run of 48 synthetic images whose probe prices a step at a third of its time and compiling at
    nothing, so that it plans about three times the steps its budget affords; returns its output and run."""
    from skinexp.training import train as train_module

    probe = train_module.probe_step_seconds
    monkeypatch.setattr(train_module, "probe_step_seconds",
                        lambda *args, **kwargs: (probe(*args, **kwargs)[0] / 3, 0.0))
    args = [*BUDGETED, "dataset.num_samples=48", "train.sample_count=0", "train.deterministic=true",
            f"train.budget.minutes={minutes}", *store["overrides"]]
    result = main("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    assert run.data.params["train.budget_kind"] == "minutes" and float(run.data.params["budget_probe_step_seconds"]) > 0
    return result, run


def _rerun_matches(main, tmp_path, store, run, keys):
    """`rerun` of `run` trains its recorded steps and plan to the same `keys` per epoch (to 1e-6); returns the
    rerun's output."""
    client = MlflowClient(store["uri"])
    rerun = main("rerun", run.info.run_id, f"tracking.uri={store['uri']}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (again,) = client.search_runs([run.info.experiment_id], f"tags.rerun_of = '{run.info.run_id}'")
    assert again.data.params["train.budget_kind"] == "steps"
    assert again.data.params["train.steps"] == run.data.params["train.steps"] == again.data.params["train.budget.steps"]
    assert json.loads(again.data.params["train.budget.plan"]) == json.loads(run.data.params["train.budget_plan"])
    for key in keys:
        assert _history(client, again.info.run_id, key) == pytest.approx(_history(client, run.info.run_id, key),
                                                                          rel=1e-6, abs=1e-6), key
    return rerun


def test_images_and_steps_count_the_partial_last_batch_of_every_epoch():
    assert images_after(7, images=10, batch_size=4, steps_per_epoch=3) == 2 * 10 + 4  # 4+4+2, twice, then 4
    assert steps_for_images(24, images=10, batch_size=4, steps_per_epoch=3) == 7
    assert steps_for_images(20, images=10, batch_size=4, steps_per_epoch=3) == 6


def test_a_gflop_budget_gives_two_widths_the_same_compute(compose):
    seen = {}
    for filters in (4, 8):
        cfg = compose("train", [*TINY, f"model.filters={filters}"])
        flops = training_flops_per_image(build_unet(cfg.model, cfg.dataset.image_size))
        resolved = plan(_train_cfg(gflop=5.0), images=13, steps_per_epoch=4, flops_per_image=flops,
                        probe=lambda: pytest.fail("a GFLOP budget needs no probe"))
        seen[filters] = (resolved.steps, images_after(resolved.steps, 13, 4, 4) * flops / 1e9, flops)
    (steps_4, gflop_4, flops_4), (steps_8, gflop_8, flops_8) = seen[4], seen[8]
    assert flops_8 > 3 * flops_4 and steps_4 > 3 * steps_8  # the wider net sees fewer images
    for gflop, flops in ((gflop_4, flops_4), (gflop_8, flops_8)):
        assert 5.0 <= gflop < 5.0 + 4 * flops / 1e9  # the budget, overshot by less than one batch


def test_a_minutes_budget_is_what_the_probe_leaves_after_compiling():
    resolved = plan(_train_cfg(minutes=1.0), images=13, steps_per_epoch=4, flops_per_image=1, probe=lambda: (0.5, 10))
    assert (resolved.steps, resolved.kind, resolved.epochs) == (100, "minutes", 25)


def test_the_probe_runs_each_epoch_through_its_images_from_a_fresh_iterator(compose):
    """The run's epochs each start a new pass of the pipeline, so the probe's do: with 24 steps an epoch, 16-step
    probe epochs cut from the whole training set would carry one iterator on, and the fourth would run out of data
    (Keras warns and ends it early)."""
    import warnings

    from skinexp.data.sources import load_splits
    from skinexp.training.train import _plan

    cfg = compose("train", [*BUDGETED, "dataset.num_samples=60", "train.batch_size=2", "train.budget.minutes=1"])
    splits = load_splits(cfg.dataset)
    steps_per_epoch = math.ceil(len(splits.train) / cfg.train.batch_size)
    assert 16 < steps_per_epoch < 4 * 16
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = _plan(cfg, splits, steps_per_epoch, len(splits.train))
    assert [str(warning.message) for warning in caught if "ran out of data" in str(warning.message)] == []
    assert resolved.kind == "minutes" and resolved.probe_step_seconds > 0


@pytest.mark.parametrize("overrides, fragment", [
    (["train.budget.minutes=5", "train.budget.gflop=100"],
     "Received: train.budget.minutes=5.0, train.budget.gflop=100.0"),
    (["train.budget.gflop=-1"], "Received: train.budget.gflop=-1.0"),
    (["train.budget.steps=0"], "Received: train.budget.steps=0"),
    (["train.budget.minutes=5", "optim.schedule=constant"], "Received: optim.schedule=constant"),
])
def test_bad_budgets_fail_in_one_line(main, tmp_path, overrides, fragment):
    args = [a for a in BUDGETED if not a.startswith("optim.schedule")] + overrides
    if "optim.schedule=constant" not in overrides:
        args.append("optim.schedule=cosine")
    assert error_line(main("train", *args, cwd=tmp_path)).endswith(fragment)


def test_a_gflop_run_spans_its_schedule_ends_part_way_through_an_epoch_and_reruns_exactly(main, tmp_path, store,
                                                                                          compose):
    args = [*BUDGETED, "train.deterministic=true", "train.budget.gflop=0.25", *store["overrides"]]
    result = main("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    steps = int(run.data.params["train.steps"])
    with open(client.download_artifacts(run.info.run_id, "data/split_ids.json", str(tmp_path))) as ids:
        images = len(json.load(ids)["train"])
    steps_per_epoch = math.ceil(images / 4)
    cfg = compose("train", args)
    flops = training_flops_per_image(build_unet(cfg.model, cfg.dataset.image_size))
    assert steps == steps_for_images(math.ceil(0.25e9 / flops), images, 4, steps_per_epoch)
    seen = _history(client, run.info.run_id, "images_seen")
    assert seen[-1] == images_after(steps, images, 4, steps_per_epoch)
    assert len(seen) == math.ceil(steps / steps_per_epoch)
    assert steps % steps_per_epoch != 0 and seen[-1] - seen[-2] < images  # the last epoch was partial
    assert _history(client, run.info.run_id, "training_gflop")[-1] >= 0.25
    rates = _history(client, run.info.run_id, "learning_rate")
    assert rates[-1] == pytest.approx(1e-5, rel=0.05)  # cosine down to 1 % of optim.lr at the last step
    rerun = main("rerun", run.info.run_id, f"tracking.uri={store['uri']}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (again,) = client.search_runs([run.info.experiment_id], f"tags.rerun_of = '{run.info.run_id}'")
    assert again.data.params["train.steps"] == str(steps)
    assert _history(client, again.info.run_id, "val_iou") == pytest.approx(
        _history(client, run.info.run_id, "val_iou"), abs=1e-6)


def test_a_minutes_budget_is_revised_to_the_time_left_within_its_limits():
    def minutes_plan(steps=100):
        return Plan(steps, 10, "minutes", revisions=[[0, steps]], seconds=60.0)

    # 20 steps took 16 s at 0.4 s a step: 100 steps would take 48 s, 44 s are left for 110 more
    assert revised_steps(minutes_plan(), 20, 16.0, 0.4) == 130
    assert revised_steps(minutes_plan(), 20, 16.0, 0.55) is None  # 60 s projected: on budget already
    assert revised_steps(minutes_plan(), 20, 16.0, 0.56) is None  # 60.8 s projected: 1.3 % over, within 2 %
    assert revised_steps(minutes_plan(), 20, 16.0, 0.60) == 20 + 73  # 64 s projected: 6.7 % over
    assert revised_steps(minutes_plan(), 20, 16.0, 0.01) == 400  # at most four times the probe's steps
    assert revised_steps(minutes_plan(), 20, 70.0, 0.4) == 20  # the budget is spent: stop now
    assert revised_steps(Plan(100, 10, "steps"), 20, 16.0, 0.4) is None  # a rerun's steps are fixed
    many = minutes_plan()
    for at_step in range(1, MAX_REVISIONS + 1):
        many.revise(at_step, 100)
    assert revised_steps(many, 20, 16.0, 0.4) is None


def test_a_minutes_run_is_overrun_past_its_tolerance_only():
    minutes = Plan(100, 10, "minutes", revisions=[[0, 100]], seconds=60.0)
    assert not minutes.overrun(60.0) and not minutes.overrun(61.19)  # within 2 % of the budget
    assert minutes.overrun(61.21)
    assert not Plan(100, 10, "steps").overrun(1e9)  # a rerun's steps are fixed


@pytest.mark.parametrize("steps_per_execution, trained", [(1, 13), (2, 14), (3, 13), (7, 15)])
def test_a_plan_ends_at_its_steps_whatever_the_steps_per_execution(steps_per_execution, trained):
    """Keras 3 ends a batch of k steps at the index of its last step (k - 1, 2k - 1, ...), and an epoch's last batch
    holds what is left of it. 13 steps of 5-step epochs end in the third epoch, at the end of the batch holding the
    13th step: k=2 trains batches [10, 11], [12, 13]; k=7 the whole epoch. (Counting batches x k stopped k=2 after
    9 steps, k=3 and k=7 after 5.)"""
    import keras
    import numpy as np

    from skinexp.training.callbacks import StopAtStep

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    training_plan = Plan(13, 5, "steps")
    history = model.fit(np.ones((20, 2), "float32"), np.ones((20, 1), "float32"), batch_size=4,
                        epochs=training_plan.epochs + 1, callbacks=[StopAtStep(training_plan)], verbose=0,
                        shuffle=False)
    assert int(model.optimizer.iterations) == trained
    assert len(history.epoch) == 3
    assert [training_plan.steps_at(2, end) for end in (0, 1, 3, 4, 6)] == [11, 12, 14, 15, 15]
    train_cfg = _train_cfg(steps=13)
    train_cfg.steps_per_execution = steps_per_execution
    resolved = plan(train_cfg, images=20, steps_per_epoch=5, flops_per_image=1, probe=None)
    assert resolved.steps == trained  # the plan is the steps the run trains: its schedule and images_seen count them


@pytest.mark.slow
def test_a_minutes_run_stops_at_its_budget_mid_epoch_and_a_rerun_replays_the_stop(main, tmp_path, store,
                                                                                 monkeypatch):
    """The probe prices a step at a third of its time and the epochs' ends never revise the plan (as when the
    machine slows within the last epoch, after the last revision): the run would train about three times its
    budget. It stops as its training time passes the budget's tolerance instead, part-way through an epoch, records
    the stop as a revision, and a rerun stops at the same step with the same weights."""
    from skinexp.training import budget as budget_module

    monkeypatch.setattr(budget_module, "revised_steps", lambda *args, **kwargs: None)
    result, run = _underpriced_minutes_run(main, tmp_path, store, monkeypatch, 0.4)  # past compiling, slowest CPU
    assert "training minutes are spent after" in result.stdout
    client = MlflowClient(store["uri"])
    planned, *_, (stop_at, total) = json.loads(run.data.params["train.budget_plan"])
    assert stop_at == total == int(run.data.params["train.steps"]) < planned[1]
    images = _history(client, run.info.run_id, "images_seen")
    per_epoch = int(images[0])  # the first epoch is whole: 24 s hold many
    assert images[-1] == images_after(stop_at, per_epoch, 4, math.ceil(per_epoch / 4))
    seconds = _history(client, run.info.run_id, "training_seconds")
    assert 0.4 * 60 * 1.02 < seconds[-1] < 0.4 * 60 * 1.02 + 1.0  # stopped at the first step past the tolerance
    _rerun_matches(main, tmp_path, store, run, ("images_seen", "learning_rate", "val_loss", "loss"))


def test_a_rerun_of_a_minutes_run_trains_its_recorded_steps_not_the_clock(main, tmp_path, store):
    result = main("train", *BUDGETED, "train.deterministic=true", "train.budget.minutes=0.05", *store["overrides"],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    assert run.data.params["train.budget_kind"] == "minutes" and float(run.data.params["budget_probe_step_seconds"]) > 0
    revisions = json.loads(run.data.params["train.budget_plan"])
    assert revisions[0][0] == 0 and revisions[-1][1] == int(run.data.params["train.steps"])
    rerun = main("rerun", run.info.run_id, f"tracking.uri={store['uri']}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (again,) = client.search_runs([run.info.experiment_id], f"tags.rerun_of = '{run.info.run_id}'")
    assert again.data.params["train.budget_kind"] == "steps"
    assert again.data.params["train.steps"] == run.data.params["train.steps"] == again.data.params["train.budget.steps"]
    assert _history(client, again.info.run_id, "images_seen") == _history(client, run.info.run_id, "images_seen")
    assert _history(client, again.info.run_id, "val_loss") == pytest.approx(
        _history(client, run.info.run_id, "val_loss"), abs=1e-6)  # its probe left the run's weights as seeded


@pytest.mark.slow
def test_a_minutes_run_revised_as_it_goes_records_its_plan_and_reruns_it_exactly(main, tmp_path, store, monkeypatch):
    """The probe, made to price a step at a third of its time and compiling at nothing, plans well over the steps
    the budget affords: the run revises its plan down, logs it, ends with its schedule at the revised total, and a
    rerun trains those steps at the same rates to the same weights (it cannot read the clock: it replays the plan)."""
    result, run = _underpriced_minutes_run(main, tmp_path, store, monkeypatch, 0.75)  # well past compiling
    assert "the plan is now" in result.stdout
    client = MlflowClient(store["uri"])
    revisions = json.loads(run.data.params["train.budget_plan"])
    assert len(revisions) >= 2 and revisions[1][1] < revisions[0][1]  # revised down
    assert int(run.data.params["train.steps"]) == revisions[-1][1]
    assert _history(client, run.info.run_id, "planned_steps")[-1] == revisions[-1][1]
    rates = _history(client, run.info.run_id, "learning_rate")
    assert rates[-1] == pytest.approx(1e-5, rel=0.05)  # the schedule reached its end at the revised total
    rerun = _rerun_matches(main, tmp_path, store, run, ("images_seen", "learning_rate", "val_iou", "loss"))
    assert "the plan is now" not in rerun.stdout


@pytest.mark.slow
def test_an_interrupted_minutes_run_resumes_to_its_recorded_steps_and_schedule(tmp_path, cli, compose):
    """SIGINT after two epochs of a minutes run, then `train resume=`: the run ends at the steps it recorded (no new
    probe, no clock), and every epoch's learning rate, before and after the interruption, is the one schedule's."""
    import signal

    from test_reliability import _start, _wait_for_epochs

    from skinexp.model.optim import learning_rate

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # 18 s: on two busy cores of the slowest CPU seen (AVX2, no AVX-512), 6 s left after compiling trained less than
    # the two epochs the interruption waits for
    args = [*BUDGETED, "dataset.num_samples=64", "train.sample_count=0", "train.budget.minutes=0.3"]
    process = _start(tmp_path, *args, f"tracking.uri={uri}")
    _wait_for_epochs(tmp_path, process, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    steps = int(run.data.params["train.steps"])
    interrupted_at = len(_history(client, run.info.run_id, "learning_rate"))

    result = cli("train", f"resume={run.info.run_id}", f"tracking.uri={uri}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Skipping variable loading" not in result.stderr  # the optimizer's state, plan variable included
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.params["train.steps"] == str(steps)
    with open(client.download_artifacts(run.info.run_id, "data/split_ids.json", str(tmp_path))) as ids:
        images = len(json.load(ids)["train"])
    steps_per_epoch = math.ceil(images / 4)
    epochs = math.ceil(steps / steps_per_epoch)
    assert interrupted_at < epochs  # the interruption fell inside the budget, so the resume trained the rest
    assert _history(client, run.info.run_id, "images_seen")[-1] == images_after(steps, images, 4, steps_per_epoch)
    revisions = json.loads(resumed.data.params["train.budget_plan"])
    assert revisions[-1][1] == steps
    schedule = learning_rate(compose("train", args).optim, steps_per_epoch, steps, revisions)
    expected = [float(schedule(min(epoch * steps_per_epoch, steps))) for epoch in range(1, epochs + 1)]
    assert _history(client, run.info.run_id, "learning_rate") == pytest.approx(expected, rel=1e-5)


def test_a_capped_epoch_counts_the_images_of_its_batches(main, tmp_path, store):
    """train.max_steps_per_epoch=2 of 4-image batches: an epoch shows 8 images, not the whole training split (which
    images_seen counted, 451 an epoch for a cap of 3 on the real images)."""
    result = main("train", *BUDGETED, "dataset.num_samples=32", "train.max_steps_per_epoch=2", *store["overrides"],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    assert _history(client, run.info.run_id, "images_seen") == [8.0, 16.0]
