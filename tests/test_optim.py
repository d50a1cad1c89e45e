"""Learning-rate schedules and optimizers chosen by the `optim` section (skinexp.model.optim)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from skinexp.errors import ConfigError
from skinexp.model.optim import RevisedCosine, build_optimizer, learning_rate

LR = 0.01


def _optim(compose, *overrides: str):
    return compose("train", [f"optim.lr={LR}", *overrides]).optim


def _at(schedule, step: int) -> float:
    return float(schedule(step))


@pytest.mark.parametrize("schedule", ["constant", "plateau"])  # plateau: a callback lowers the constant rate
def test_constant_and_plateau_are_the_configured_rate(compose, schedule):
    assert learning_rate(_optim(compose, f"optim.schedule={schedule}"), 10, 50) == LR


def test_cosine_without_warm_up_decays_from_lr_to_one_percent_over_the_run(compose):
    schedule = learning_rate(_optim(compose, "optim.schedule=cosine"), 10, 50)  # 50 steps
    assert _at(schedule, 0) == pytest.approx(LR)
    assert _at(schedule, 25) == pytest.approx(LR * (0.01 + 0.99 * 0.5))  # half-way down the cosine
    assert _at(schedule, 50) == pytest.approx(LR * 0.01)
    assert _at(schedule, 80) == pytest.approx(LR * 0.01)  # and stays there


def test_cosine_with_warm_up_climbs_from_lr_over_100_then_decays(compose):
    schedule = learning_rate(_optim(compose, "optim.schedule=cosine", "optim.warmup_epochs=1"), 10, 50)
    assert _at(schedule, 0) == pytest.approx(LR / 100)
    assert _at(schedule, 5) == pytest.approx(LR / 100 + (LR - LR / 100) / 2)  # linear warm-up
    assert _at(schedule, 10) == pytest.approx(LR)
    assert _at(schedule, 30) == pytest.approx(LR * (0.01 + 0.99 * 0.5))  # half of the 40 decay steps
    assert _at(schedule, 50) == pytest.approx(LR * 0.01)


def test_an_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match=r"optim\.schedule must be one of constant, cosine, plateau\. "
                                          r"Received: optim\.schedule=step$"):
        learning_rate(SimpleNamespace(schedule="step", lr=LR, warmup_epochs=0), 10, 50)


@pytest.mark.parametrize("group, kind, lr", [("adam", keras.optimizers.Adam, 1e-4),
                                             ("adamw", keras.optimizers.AdamW, 1e-3),
                                             ("sgd", keras.optimizers.SGD, 1e-2)])
def test_each_optim_group_builds_its_optimizer_at_its_rate(compose, group, kind, lr):
    optimizer = build_optimizer(compose("train", [f"optim={group}"]).optim, 10, 50)
    assert type(optimizer) is kind  # AdamW subclasses Adam: the exact class
    assert float(optimizer.learning_rate) == pytest.approx(lr)
    if group == "sgd":
        assert optimizer.momentum == 0.9
    if group == "adamw":
        assert optimizer.weight_decay == pytest.approx(1e-4)


def test_a_cosine_optimizer_carries_the_schedule(compose):
    optimizer = build_optimizer(_optim(compose, "optim=sgd", "optim.schedule=cosine"), 10, 50)
    assert float(optimizer.learning_rate) == pytest.approx(LR)  # step 0
    optimizer.iterations.assign(50)
    assert float(optimizer.learning_rate) == pytest.approx(LR * 0.01)  # the end of the run


def test_an_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match=r"optim\.name must be one of adam, adamw, sgd\. "
                                          r"Received: optim\.name=rmsprop$"):
        build_optimizer(SimpleNamespace(name="rmsprop", lr=LR, schedule="constant"), 10, 50)


def test_a_revised_cosine_keeps_its_progress_and_ends_at_the_revised_total():
    schedule = RevisedCosine(LR, warmup_steps=0, plan=[[0, 100]])
    schedule.revise(50, 150)  # half-way down, the budget allows 100 more steps instead of 50
    assert _at(schedule, 25) == pytest.approx(LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 4))))  # as planned
    assert _at(schedule, 50) == pytest.approx(LR * (0.01 + 0.99 * 0.5))  # no jump at the revision
    assert _at(schedule, 100) == pytest.approx(LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(0.75 * math.pi))))
    assert _at(schedule, 150) == pytest.approx(LR * 0.01)
    assert _at(schedule, 200) == pytest.approx(LR * 0.01)


def test_a_revision_during_warm_up_stretches_the_decay_only():
    schedule = RevisedCosine(LR, warmup_steps=10, plan=[[0, 50]])
    schedule.revise(4, 90)
    assert _at(schedule, 5) == pytest.approx(LR / 100 + (LR - LR / 100) / 2)  # the warm-up is the first plan's
    assert _at(schedule, 50) == pytest.approx(LR * (0.01 + 0.99 * 0.5))  # half of the 80 decay steps
    assert _at(schedule, 90) == pytest.approx(LR * 0.01)
    with pytest.raises(ValueError, match=r"Received: at_step=3$"):
        schedule.revise(3, 60)


def test_a_planned_optimizer_s_traced_step_follows_a_revision_and_saves_it(compose, tmp_path):
    """The training step is traced once; the revision reaches it through the optimizer's variable, which the
    saved model carries with the plan."""
    import tensorflow as tf

    from skinexp.model.optim import PLANNED

    optimizer = build_optimizer(_optim(compose, "optim=adamw", "optim.schedule=cosine"), 10, 100, plan=[[0, 100]])
    assert type(optimizer) is PLANNED[keras.optimizers.AdamW]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0)  # builds the optimizer and its variable
    schedule = optimizer._learning_rate
    traced = tf.function(lambda step: schedule(step))
    assert float(traced(tf.constant(50))) == pytest.approx(LR * (0.01 + 0.99 * 0.5))
    schedule.revise(50, 150)
    assert float(traced(tf.constant(100))) == pytest.approx(LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(0.75 * math.pi))))
    assert float(traced(tf.constant(150))) == pytest.approx(LR * 0.01)

    model.save(tmp_path / "planned.keras")
    loaded = keras.models.load_model(tmp_path / "planned.keras")
    assert loaded.optimizer._learning_rate.plan == [[0, 100], [50, 150]]
    assert [v.numpy().tolist() for v in loaded.optimizer.variables] == [v.numpy().tolist() for v in optimizer.variables]


def test_optim_ema_keeps_and_validates_the_averaged_weights_and_resumes_the_trained_ones(main, store, tmp_path):
    """One epoch with `optim.ema=0.5`: the kept checkpoint holds the moving average (what validation scored), and
    `last.keras`, for resuming, the trained weights with the average in its optimizer's saved state."""
    from conftest import TINY

    result = main("train", *TINY, "train.epochs=1", "optim.lr=0.01", "optim.ema=0.5", *store["overrides"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (checkpoints,) = tmp_path.glob("runs/train/*/*/checkpoints")
    kept = keras.models.load_model(checkpoints / "best.keras", compile=False)
    last = keras.models.load_model(checkpoints / "last.keras")
    assert last.optimizer.use_ema and last.optimizer.ema_momentum == 0.5
    averages = [v.numpy() for v in last.optimizer._model_variables_moving_average]
    trained = [v.numpy() for v in last.trainable_variables]
    assert len(averages) == len(trained) == len(kept.trainable_variables)
    for kept_weight, average in zip(kept.trainable_variables, averages):
        np.testing.assert_allclose(kept_weight.numpy(), average, rtol=1e-6)
    assert max(np.abs(t - a).max() for t, a in zip(trained, averages)) > 1e-3  # the average is not the weights


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1"])
def test_an_ema_momentum_outside_0_1_fails_in_one_line(main, tmp_path, value):
    from conftest import TINY, error_line

    result = main("train", *TINY, f"optim.ema={value}", cwd=tmp_path)
    assert result.returncode == 2
    assert error_line(result).endswith(f"must lie in (0, 1), e.g. 0.99. Received: optim.ema={float(value)}")
