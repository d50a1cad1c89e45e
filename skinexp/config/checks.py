"""The checks a type cannot express, one function per config section; each raises ConfigError naming the
key and the value received. The entry points call them before anything heavy loads."""
from __future__ import annotations

import os
from typing import Any

from omegaconf import OmegaConf

from skinexp.config.schema import Backend, CacheKind, DatasetName, Norm
from skinexp.errors import ConfigError

AUGMENT_LIMITS = {"affine": 0.5, "color": 1.0}  # the Keras layers' valid ranges


def _positive(section: Any, prefix: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if section[key] <= 0:
            raise ConfigError(f"{prefix}.{key} must be positive. Received: {prefix}.{key}={section[key]}")


def _non_negative(section: Any, prefix: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if section[key] < 0:
            raise ConfigError(f"{prefix}.{key} must be non-negative. Received: {prefix}.{key}={section[key]}")


def check_dataset(dataset: Any) -> None:
    """`dataset`: sizes, split fractions, and the keys each source needs."""
    _positive(dataset, "dataset", ("image_size", "num_samples"))
    if not 0 < dataset.val_split < 1:
        raise ConfigError("dataset.val_split must be in the open interval (0, 1). "
                          f"Received: dataset.val_split={dataset.val_split}")
    if not 0 <= dataset.test_split < 1 or dataset.test_split + dataset.val_split >= 1:
        raise ConfigError("dataset.test_split must be in [0, 1) and leave training data beside dataset.val_split."
                          f" Received: dataset.test_split={dataset.test_split}")
    if dataset.folds == 1 or dataset.folds < 0:
        raise ConfigError(f"dataset.folds must be 0 (no cross-validation) or at least 2. "
                          f"Received: dataset.folds={dataset.folds}")
    if dataset.fold is not None and not dataset.folds:
        raise ConfigError(f"dataset.fold needs dataset.folds (e.g. dataset.folds=5, or cv=5). "
                          f"Received: dataset.fold={dataset.fold} with dataset.folds=0")
    if dataset.fold is not None and not 0 <= dataset.fold < dataset.folds:
        raise ConfigError(f"dataset.fold must be in 0..{dataset.folds - 1} for dataset.folds={dataset.folds}. "
                          f"Received: dataset.fold={dataset.fold}")
    if dataset.name in (DatasetName.npy, DatasetName.folder) and not dataset.root:
        raise ConfigError(f"dataset.root is required for dataset={dataset.name}. Received: dataset.root=None")
    if dataset.name == DatasetName.synthetic and dataset.image_size < 16:
        raise ConfigError("dataset.image_size must be at least 16 for dataset=synthetic. "
                          f"Received: dataset.image_size={dataset.image_size}")
    if dataset.cache == CacheKind.disk and not dataset.cache_dir:
        raise ConfigError("dataset.cache_dir must name a directory when dataset.cache=disk. "
                          f"Received: dataset.cache_dir={dataset.cache_dir!r}")


def model_widths(model: Any) -> list[int]:
    """The U-Net's widths, encoder levels first, then the bottleneck (`depth + 1` of them): `model.widths` when
    set, else `model.filters` doubled at each level. The decoder level i uses the width of encoder level i."""
    if model.widths is not None:
        return [int(width) for width in model.widths]
    return [model.filters * 2**level for level in range(model.depth + 1)]


def model_norm(model: Any) -> Norm:
    """The normalisation inside the blocks: `model.norm`, or `batch` where the older `model.batchnorm=true` says
    so (`check_model` refuses `batchnorm=true` beside `norm=group`)."""
    return Norm.batch if model.batchnorm else Norm(str(model.norm))


def check_model(model: Any, image_size: int) -> None:
    """`model`, against the image size it will see."""
    _positive(model, "model", ("filters", "depth", "groups"))
    if not 0 <= model.dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1). Received: model.dropout={model.dropout}")
    if image_size % (2**model.depth) or image_size // (2**model.depth) < 2:
        raise ConfigError(
            "model.depth must divide dataset.image_size by 2^depth and leave at least 2x2 pixels at the "
            f"bottleneck. Received: model.depth={model.depth} with dataset.image_size={image_size}")
    if model.widths is not None:
        widths = list(model.widths)
        if len(widths) != model.depth + 1:
            raise ConfigError(
                f"model.widths must hold model.depth + 1 = {model.depth + 1} widths (the encoder levels, then the "
                f"bottleneck). Received: model.widths={widths} ({len(widths)} widths) with model.depth={model.depth}")
        if min(widths) <= 0:
            raise ConfigError(f"model.widths must all be positive. Received: model.widths={widths}")
    if model.batchnorm and model.norm not in (Norm.none, Norm.batch):
        raise ConfigError("model.batchnorm=true means model.norm=batch: set only one of them. "
                          f"Received: model.batchnorm=true with model.norm={model.norm}")
    widths = model_widths(model)
    if model_norm(model) == Norm.group and any(width % model.groups for width in widths):
        source = "model.widths" if model.widths is not None else f"model.filters={model.filters} doubled"
        raise ConfigError(
            f"model.groups must divide every width for model.norm=group. Received: model.groups={model.groups} "
            f"with widths {', '.join(map(str, widths))} ({source})")
    if model.deep_supervision and model.depth < 2:
        raise ConfigError("model.deep_supervision needs model.depth >= 2 (its heads sit on the decoder levels below "
                          f"full resolution). Received: model.deep_supervision=true with model.depth={model.depth}")


def check_optim(optim: Any) -> None:
    _positive(optim, "optim", ("lr",))
    _non_negative(optim, "optim", ("weight_decay", "warmup_epochs"))
    if optim.ema is not None and not 0 < optim.ema < 1:
        raise ConfigError(f"optim.ema is the momentum of the weights' moving average and must lie in (0, 1), "
                          f"e.g. 0.99. Received: optim.ema={optim.ema}")


def check_augment(augment: Any) -> None:
    for key, high in AUGMENT_LIMITS.items():
        if not 0 <= augment[key] <= high:
            raise ConfigError(f"augment.{key} must be in [0, {high}]. Received: augment.{key}={augment[key]}")


VERBOSITY = ("auto", "0", "1", "2")
JIT_COMPILE = ("auto", "true", "false")


def check_backend(section: Any, prefix: str = "train.") -> None:
    """`backend` against an explicit KERAS_BACKEND (the default follows it; a different value clashes)."""
    environment = os.environ.get("KERAS_BACKEND")
    if environment and environment not in {backend.value for backend in Backend}:
        raise ConfigError(f"KERAS_BACKEND must be one of {Backend.names()} (or unset). "
                          f"Received: KERAS_BACKEND={environment}")
    if environment and str(section.backend) != environment:
        raise ConfigError(f"{prefix}backend and KERAS_BACKEND disagree: set one of them. "
                          f"Received: {prefix}backend={section.backend} with KERAS_BACKEND={environment}")


def check_train_section(train: Any) -> None:
    if str(train.verbose) not in VERBOSITY:
        raise ConfigError(f"train.verbose must be one of {', '.join(VERBOSITY)}. "
                          f"Received: train.verbose={train.verbose}")
    if str(train.jit_compile).lower() not in JIT_COMPILE:
        raise ConfigError(f"train.jit_compile must be one of {', '.join(JIT_COMPILE)}. "
                          f"Received: train.jit_compile={train.jit_compile}")
    _positive(train, "train", ("epochs", "batch_size", "sample_every", "steps_per_execution"))
    if train.max_steps_per_epoch is not None:
        _positive(train, "train", ("max_steps_per_epoch",))
    _non_negative(train, "train", ("sample_count", "early_stopping"))


def redact_uri(uri: str) -> str:
    """`uri` with the password of its user part (`scheme://user:password@host`) replaced by `***`."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(uri))
    except ValueError:
        return str(uri)
    if "@" not in parts.netloc:
        return str(uri)
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return parts._replace(netloc=f"{user}@{host}").geturl()


def check_no_credentials(uri: str, key: str = "tracking.uri") -> None:
    """ConfigError when `uri` carries a password: it would land in params, tags, logs and `ps` for every reader of
    the store, so logins come from the environment, which MLflow's clients read."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(uri))
    except ValueError:
        return
    if "@" not in parts.netloc:  # a user alone may be a token too
        return
    if parts.scheme in ("http", "https"):
        where = "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead"
    elif parts.scheme.partition("+")[0] == "postgresql":
        where = "put the password in PGPASSWORD or ~/.pgpass (libpq reads them) and leave it out of the URI"
    else:
        where = "pass the login through the environment instead"
    raise ConfigError(f"{key} must not carry a login (it would be logged and shown to every reader of the store); "
                      f"{where}. Received: {key}={redact_uri(uri)}")


def check_train(cfg: Any) -> None:
    """The whole `train` config: each section, then what sections say about each other."""
    check_backend(cfg.train)  # first: an unknown KERAS_BACKEND would fail the first read of train.backend
    check_no_credentials(cfg.tracking.uri)
    check_dataset(cfg.dataset)
    check_augment(cfg.augment)
    check_model(cfg.model, cfg.dataset.image_size)
    check_optim(cfg.optim)
    _non_negative(cfg.loss, "loss", ("dice_weight", "lovasz_weight"))
    check_train_section(cfg.train)
    from skinexp.training.budget import check_budget

    kind = check_budget(cfg.train.budget)
    if kind is not None and cfg.optim.schedule != "cosine":  # what the budget's steps are spent on
        raise ConfigError(f"train.budget.{kind} needs a schedule that decays over the budget: optim.schedule=cosine. "
                          f"Received: optim.schedule={cfg.optim.schedule}")


def check_inference(cfg: Any) -> None:
    """The `evaluate` and `predict` configs (their keys are top-level)."""
    check_backend(cfg, prefix="")
    if cfg.get("tracking") is not None:
        check_no_credentials(cfg.tracking.uri)
    for key in ("run",) + (("input",) if "input" in cfg else ()):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}= is required. Received: no {key}")
    if cfg.threshold is not None and not 0 < cfg.threshold < 1:
        raise ConfigError(f"threshold must be in the open interval (0, 1). Received: threshold={cfg.threshold}")
    if cfg.batch_size <= 0:
        raise ConfigError(f"batch_size must be positive. Received: batch_size={cfg.batch_size}")
    if "columns" in cfg and cfg.columns <= 0:
        raise ConfigError(f"columns must be positive. Received: columns={cfg.columns}")
    if cfg.get("dataset") is not None:
        check_dataset(cfg.dataset)


def check_data_command(cfg: Any, subcommand: str) -> None:
    check_dataset(cfg.dataset)
    if subcommand != "check" and not cfg.output:
        raise ConfigError(f"data {subcommand} needs output=DIR, the directory to write. Received: output=None")
