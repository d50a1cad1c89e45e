"""Recipe options and GPU code paths, exercised on the CPU; the presets' contracts."""
from __future__ import annotations

import math

import pytest
from mlflow.tracking import MlflowClient

from conftest import TINY


@pytest.mark.parametrize("options", [
    ["train.strategy=mirrored"],  # MirroredStrategy over the one CPU device
    ["train.precision=mixed_bfloat16"],
    pytest.param(["train.precision=mixed_float16"], marks=pytest.mark.slow),
    pytest.param(["train.jit_compile=true", "train.steps_per_execution=2"], marks=pytest.mark.slow),  # XLA, CPU
    ["optim=adamw", "optim.schedule=cosine", "optim.warmup_epochs=1", "loss=bce_dice", "model.batchnorm=true",
     "augment=strong", "train.early_stopping=2", "train.epochs=3", "model.upsample=transpose"],
    pytest.param(["optim=sgd", "optim.schedule=plateau", "loss=dice", "augment=light",
                  "train.checkpoint_monitor=val_iou"], marks=pytest.mark.slow),
], ids=["mirrored", "bfloat16", "float16", "xla", "recipe-cosine", "recipe-plateau"])
def test_option_trains_to_a_finished_run(main, tmp_path, store, options):
    result = main("train", *TINY, "tracking.log_model=false", *options, *store["overrides"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("skinexp").experiment_id])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert history and all(math.isfinite(m.value) for m in history)
    if "optim.schedule=cosine" in options:
        rates = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "learning_rate"),
                                         key=lambda m: m.step)]
        assert rates[-1] < rates[0] or rates[1] > rates[0]  # warm-up then decay


def test_mixed_precision_keeps_a_float32_output(compose):
    import keras

    from skinexp.model.unet import build_unet

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_unet(compose("train", ["model.depth=2", "model.filters=4"]).model, 32)
        assert model.get_layer("down1_conv1").compute_dtype == "bfloat16"
        assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_seed_notebook_preset_is_the_notebook(compose):
    cfg = compose("train", ["experiment=seed_notebook"])
    assert (cfg.model.name, cfg.model.filters, cfg.model.depth, cfg.model.dropout) == ("unet_seed", 64, 4, 0.5)
    assert cfg.model.two_channel_head and not cfg.model.batchnorm
    assert (cfg.dataset.image_size, cfg.dataset.val_split) == (256, 0.2)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.schedule) == ("adam", 1e-4, "constant")
    assert (cfg.loss.name, cfg.augment.name) == ("bce", "none")
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.checkpoint_monitor) == (4, 30, "loss")


@pytest.mark.parametrize("preset", ["+experiment=isic_cpu", "experiment=isic_gpu", "debug=fast"])
def test_presets_compose_and_validate(compose, preset):
    from skinexp.config.checks import check_train

    cfg = compose("train", [preset.lstrip("+")])
    check_train(cfg)
    if "isic" in preset:
        assert cfg.dataset.name == "folder" and cfg.dataset.test_split > 0
        assert cfg.train.budget.minutes == (20 if preset.endswith("isic_cpu") else 3)  # minutes, not a machine's epochs
    if preset.endswith("isic_gpu"):
        assert cfg.train.precision == "mixed_float16" and cfg.train.jit_compile and cfg.dataset.image_size == 256
