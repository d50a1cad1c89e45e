"""Config composition, the contract's key names, typed choices, and each rejected value (one line, exit 2,
no TensorFlow)."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO
from skinexp.config.checks import check_train
from skinexp.errors import ConfigError


def test_defaults_compose_with_contract_keys(compose):
    cfg = compose("train", [])
    assert cfg.dataset.name == "synthetic" and cfg.dataset.image_size == 128 and cfg.dataset.val_split == 0.2
    assert cfg.model.name == "unet" and cfg.optim.name == "adam" and cfg.optim.lr == 1e-4
    assert cfg.loss.name == "bce"
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.seed, cfg.train.sample_every) == (8, 8, 42, 1)
    assert (cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.run_name) == (
        "sqlite:///runs/mlflow.db", "skinexp", None)
    assert (cfg.model.depth, cfg.model.filters, cfg.model.dropout, cfg.model.batchnorm, cfg.model.upsample) == (
        4, 16, 0.0, False, "upsampling")
    check_train(cfg)


@pytest.mark.parametrize("group", ["optim=adamw", "optim=sgd", "loss=dice", "loss=bce_dice", "model=unet_seed",
                                   "model=unet_light"])
def test_group_options_compose(compose, group):
    check_train(compose("train", [group]))


def test_unet_seed_is_the_notebook(compose):
    model = compose("train", ["model=unet_seed"]).model
    assert (model.depth, model.filters, model.dropout, model.two_channel_head) == (4, 64, 0.5, True)


@pytest.mark.parametrize(
    "override, key, received",
    [
        ("model.filters=0", "model.filters", "0"),
        ("model.filters=-8", "model.filters", "-8"),
        ("optim.lr=0", "optim.lr", "0"),
        ("optim.lr=-0.1", "optim.lr", "-0.1"),
        ("dataset.val_split=1.0", "dataset.val_split", "1.0"),
        ("dataset.val_split=0", "dataset.val_split", "0"),
        ("model.depth=7", "model.depth", "7"),
        ("model.upsample=nearest", "model.upsample", "nearest"),
    ],
)
def test_rejected_values_name_key_and_value(compose, override, key, received):
    with pytest.raises(ConfigError) as error:
        check_train(compose("train", [override]))
    assert f"{key}={received}" in str(error.value)


@pytest.mark.parametrize("override, allowed", [
    ("model.upsample=nearest", "upsampling, transpose"),
    ("optim.name=rmsprop", "adam, adamw, sgd"),
    ("optim.schedule=linear", "constant, cosine, plateau"),
    ("loss.name=focal", "bce, dice, bce_dice"),
    ("augment.name=custom", "none, light, strong"),  # no file or doc defines `custom`
    ("train.precision=float64", "float32, mixed_float16, mixed_bfloat16"),
    ("train.strategy=tpu", "default, mirrored"),
    ("dataset.cache=ram", "memory, disk"),
    ("train.checkpoint_monitor=val_dic", "val_dice"),  # a typo fails at composition, not after training
    ("model.block=dense", "plain, residual"),
    ("model.attention=self", "none, gate"),
    ("model.conv=depthwise", "standard, separable"),
    ("model.stem_conv=depthwise", "standard, separable"),
    ("model.input_norm=whiten", "rescale, image, channel"),
    ("model.norm=layer", "none, batch, group"),
])
def test_a_bad_choice_fails_at_composition_with_the_allowed_values(compose, override, allowed):
    with pytest.raises(ConfigError) as error:
        compose("train", [override])
    message = str(error.value)
    key = override.partition("=")[0]
    assert message.startswith(f"{key} must be one of ") and allowed in message and "\n" not in message
    assert message.endswith(f"Received: {override}")
    assert "full_key" not in message and "object_type" not in message


def test_checkpoint_monitor_takes_every_metric_a_run_logs(compose):
    from skinexp.config.schema import Monitor
    from skinexp.training.resume import LOGGED_METRICS

    keras_logged = {name for name in LOGGED_METRICS if name not in ("images_per_sec", "epoch_seconds",
                                                                    "learning_rate", "training_seconds",
                                                                    "images_seen", "training_gflop")}
    assert {m.value for m in Monitor} == keras_logged
    assert compose("train", ["train.checkpoint_monitor=val_dice"]).train.checkpoint_monitor == "val_dice"


@pytest.mark.parametrize("build, section", [
    ("skinexp.model.losses:build_loss", SimpleNamespace(name="focal", dice_weight=1.0)),
    ("skinexp.model.optim:build_optimizer", SimpleNamespace(name="rmsprop", lr=1e-3, schedule="constant",
                                                      weight_decay=0.0, clipnorm=None, momentum=0.9)),
    ("skinexp.data.sources:load_source", SimpleNamespace(name="hdf5")),
])
def test_builders_raise_on_an_unknown_name_instead_of_a_default(build, section):
    import importlib

    module, function = build.split(":")
    builder = getattr(importlib.import_module(module), function)
    args = (section, 10, 20) if function == "build_optimizer" else (section,)
    with pytest.raises(Exception, match=f"Received: .*{section.name}"):
        builder(*args)


@pytest.mark.parametrize("override, message", [
    ("model.fliters=32", "model.fliters is not a config key; did you mean model.filters? Received: model.fliters=32"),
    ("trian.epochs=3", "trian.epochs is not a config key; did you mean train.epochs? Received: trian.epochs=3"),
    ("optim=rmsprop", "optim has no option rmsprop; choose one of adam, adamw, sgd. Received: optim=rmsprop"),
    ("model.filters=abc", "model.filters must be an integer. Received: model.filters=abc"),
    ("model.deep_supervision=maybe", "model.deep_supervision must be true or false. Received: "
                                     "model.deep_supervision=maybe"),
    ("model.widths=8", "model.widths must be a list of integers. Received: model.widths=8"),
    ("model.widths=[8,a]", "model.widths must be a list of integers. Received: model.widths=[8,a]"),
])
def test_typos_are_answered_in_one_line(compose, override, message):
    with pytest.raises(ConfigError) as error:
        compose("train", [override])
    assert str(error.value) == message  # no full_key / object_type residue, no config search path


def test_depth_must_leave_a_2x2_bottleneck(compose):
    check_train(compose("train", ["dataset.image_size=64", "model.depth=5"]))  # 2x2 at the bottleneck
    with pytest.raises(ConfigError, match="model.depth=6 with dataset.image_size=64"):
        check_train(compose("train", ["dataset.image_size=64", "model.depth=6"]))
    with pytest.raises(ConfigError, match="model.depth=4 with dataset.image_size=72"):
        check_train(compose("train", ["dataset.image_size=72", "model.depth=4"]))


@pytest.mark.parametrize("overrides, message", [
    (["model.widths=[8,16]"], "model.widths must hold model.depth + 1 = 5 widths (the encoder levels, then the "
     "bottleneck). Received: model.widths=[8, 16] (2 widths) with model.depth=4"),
    (["model.widths=[8,0,16]", "model.depth=2"],
     "model.widths must all be positive. Received: model.widths=[8, 0, 16]"),
    (["model.batchnorm=true", "model.norm=group"], "model.batchnorm=true means model.norm=batch: set only one of them."
     " Received: model.batchnorm=true with model.norm=group"),
    (["model.norm=group", "model.filters=4"], "model.groups must divide every width for model.norm=group. "
     "Received: model.groups=8 with widths 4, 8, 16, 32, 64 (model.filters=4 doubled)"),
    (["model.norm=group", "model.groups=4", "model.widths=[8,16,24,32,50]"], "model.groups must divide every width "
     "for model.norm=group. Received: model.groups=4 with widths 8, 16, 24, 32, 50 (model.widths)"),
    (["model.groups=0"], "model.groups must be positive. Received: model.groups=0"),
    (["train.max_steps_per_epoch=0"], "train.max_steps_per_epoch must be positive. "
     "Received: train.max_steps_per_epoch=0"),
    (["model.deep_supervision=true", "model.depth=1"], "model.deep_supervision needs model.depth >= 2 (its heads sit "
     "on the decoder levels below full resolution). Received: model.deep_supervision=true with model.depth=1"),
])
def test_options_that_cannot_work_are_refused_in_one_line(compose, overrides, message):
    with pytest.raises(ConfigError) as error:
        check_train(compose("train", overrides))
    assert str(error.value) == message


@pytest.mark.parametrize("overrides", [
    ["model.batchnorm=true", "model.norm=batch"],  # the same thing said twice
    ["model.norm=group", "model.groups=4", "model.widths=[8,16,24,32,48]"],
    ["model=unet_light", "dataset.image_size=256"],
    ["model.block=residual", "model.attention=gate", "model.conv=separable", "model.deep_supervision=true"],
])
def test_model_options_that_work_together_pass(compose, overrides):
    check_train(compose("train", overrides))


def test_the_normalisation_and_widths_the_builder_reads(compose):
    from skinexp.config.checks import model_norm, model_widths

    def model(*overrides):
        return compose("train", list(overrides)).model

    assert model_norm(model("model.batchnorm=true")) == "batch" and model_norm(model()) == "none"
    assert model_norm(model("model.norm=group")) == "group"
    assert model_widths(model("model.filters=8", "model.depth=3")) == [8, 16, 32, 64]
    assert model_widths(model("model.filters=8", "model.depth=2", "model.widths=[3,5,7]")) == [3, 5, 7]


def test_experiment_works_without_and_with_the_plus(compose, main, tmp_path):
    plain = compose("train", ["experiment=isic_cpu"])
    assert plain.dataset.name == "folder" and plain.train.budget.minutes == 20 and plain.tracking.experiment == "isic"
    for form in ("experiment=isic_cpu", "+experiment=isic_cpu"):
        printed = main("train", "--cfg", "job", form, cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert "minutes: 20" in printed.stdout and "experiment: isic" in printed.stdout


def test_one_hydra_default_holds_the_output_directories():
    import os

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from skinexp.config.compose import conf_dir, register

    for name in ("train", "evaluate", "predict"):  # none repeats the run and sweep directories
        top = OmegaConf.load(REPO / "conf" / f"{name}.yaml")
        assert "hydra: default" in OmegaConf.to_yaml(top.defaults) and "run" not in top.get("hydra", {})
    register()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("train", return_hydra_config=True)
    run_dir = OmegaConf.to_container(cfg.hydra.run, resolve=True)["dir"]
    assert run_dir.startswith("runs/train/") and run_dir.endswith(f"-{os.getpid()}")  # two processes, two dirs
    assert cfg.hydra.sweep.dir.startswith("runs/multirun/")


REJECTED = [
    ("model.filters=0", "model.filters=0"),
    ("model.depth=9", "model.depth=9"),
    ("dataset.val_split=1.5", "dataset.val_split=1.5"),
    ("optim.lr=0", "optim.lr=0"),
    ("model.filters=abc", "model.filters=abc"),  # a type error found by the schema
    ("model.fliters=8", "fliters"),  # an unknown key
    ("optim=rmsprop", "rmsprop"),  # an unknown group option
    ("train.checkpoint_monitor=val_dic", "val_dic"),
    ("model.block=dense", "plain, residual"),  # a choice the schema refuses
    ("model.widths=[8,16]", "model.widths=[8, 16] (2 widths) with model.depth=4"),  # a check refuses
]


def test_cli_rejects_with_one_line_exit_2_and_no_tensorflow():
    """One process for every case: the real entry point, stderr per call, and TensorFlow never imported."""
    code = (
        "import contextlib, io, json, sys\n"
        "from skinexp.__main__ import main\n"
        "results = []\n"
        f"for override in {[o for o, _ in REJECTED]!r}:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        status = main(['train', override])\n"
        "    results.append([status, err.getvalue()])\n"
        "print(json.dumps({'results': results, 'tf': 'tensorflow' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tf"] is False
    for (override, expected), (status, stderr) in zip(REJECTED, report["results"]):
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert status == 2, (override, stderr)
        assert len(lines) == 1 and lines[0].startswith("skinexp: error:") and expected in lines[0], (override, stderr)
        assert "Traceback" not in stderr


def test_help_lists_commands(main, tmp_path):
    result = main("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "data", "compare", "rerun", "runs", "ui"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["compare", "rerun", "runs", "register", "serve"])
def test_every_command_without_a_hydra_config_has_a_help_page(main, tmp_path, command):
    result = main(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m skinexp {command} "), result.stderr


def test_train_cfg_job_prints_config_from_any_directory(main, tmp_path):
    result = main("train", "--cfg", "job", "model.filters=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "filters: 64" in result.stdout and "image_size: 128" in result.stdout
