"""Config composition, the contract's key names, and each rejected value (exit 2, one line, no TensorFlow)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from skinexp.config import ConfigError, validate_train


def test_defaults_compose_with_contract_keys(compose):
    cfg = compose("train", [])
    assert cfg.dataset.name == "synthetic" and cfg.dataset.image_size == 128 and cfg.dataset.val_split == 0.2
    assert cfg.model.name == "unet" and cfg.optim.name == "adam" and cfg.optim.lr == 1e-4
    assert cfg.loss.name == "bce"
    for key in ("epochs", "batch_size", "seed", "sample_every"):
        assert key in cfg.train
    for key in ("uri", "experiment", "run_name"):
        assert key in cfg.tracking
    for key in ("depth", "filters", "dropout", "batchnorm", "upsample"):
        assert key in cfg.model
    validate_train(cfg)


@pytest.mark.parametrize("group", ["optim=adamw", "optim=sgd", "loss=dice", "loss=bce_dice", "model=unet_seed"])
def test_group_options_compose(compose, group):
    validate_train(compose("train", [group]))


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
        validate_train(compose("train", [override]))
    assert f"{key}={received}" in str(error.value)


def test_depth_must_leave_a_2x2_bottleneck(compose):
    validate_train(compose("train", ["dataset.image_size=64", "model.depth=5"]))  # 2x2 at the bottleneck
    with pytest.raises(ConfigError, match="model.depth=6 with dataset.image_size=64"):
        validate_train(compose("train", ["dataset.image_size=64", "model.depth=6"]))
    with pytest.raises(ConfigError, match="model.depth=4 with dataset.image_size=72"):
        validate_train(compose("train", ["dataset.image_size=72", "model.depth=4"]))


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.filters=0", "model.filters=0"),
        ("model.depth=9", "model.depth=9"),
        ("dataset.val_split=1.5", "dataset.val_split=1.5"),
        ("optim.lr=0", "optim.lr=0"),
        ("model.filters=abc", "model.filters=abc"),  # a type error found by the schema
        ("model.fliters=8", "fliters"),  # an unknown key
        ("optim=rmsprop", "rmsprop"),  # an unknown group option
    ],
)
def test_cli_rejects_with_one_line_exit_2_and_no_tensorflow(override, expected):
    code = (
        "import sys\n"
        "from skinexp.__main__ import main\n"
        "try:\n"
        f"    main(['train', {override!r}])\n"
        "except SystemExit as exit:\n"
        "    print('EXIT', exit.code)\n"
        "print('TF', 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "EXIT 2" in result.stdout and "TF False" in result.stdout, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("skinexp: error:") and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_help_lists_commands(cli, tmp_path):
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict", "data", "compare", "rerun", "runs", "ui"):
        assert command in result.stdout


def test_train_cfg_job_prints_config_from_any_directory(cli, tmp_path):
    result = cli("train", "--cfg", "job", "model.filters=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "filters: 64" in result.stdout and "image_size: 128" in result.stdout
