"""Typed config schemas, registered in Hydra's ConfigStore, and the checks that need more than a type.

The YAML files under `conf/` extend these schemas: an unknown key or a value of the wrong type fails
at composition, and `validate` catches the values a type cannot rule out, before TensorFlow loads.
Every key is documented in the README's configuration reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value that cannot work; the CLI prints it as one line and exits with status 2."""


@dataclass
class DatasetConfig:
    name: str = "synthetic"  # synthetic | npy | folder
    image_size: int = 128  # square side every image is resized to
    num_samples: int = 300  # synthetic only: images generated
    val_split: float = 0.2  # fraction held out for validation when the source has no val split
    seed: int = 0  # seeds generation and the train/val split
    root: Optional[str] = None  # npy / folder: directory holding the data
    cache: str = "memory"  # folder: decoded uint8 cache, memory | disk
    cache_dir: str = "runs/cache"  # folder with cache=disk: where decoded arrays are kept (from the working dir)
    test_split: float = 0.0  # fraction held out for test when the source has no test split


@dataclass
class ModelConfig:
    name: str = "unet"
    depth: int = 4  # number of 2x down-samplings
    filters: int = 16  # first-level width, doubled at each level
    dropout: float = 0.0  # dropout rate after the two deepest encoder blocks
    batchnorm: bool = False
    upsample: str = "upsampling"  # upsampling (UpSampling2D + 2x2 conv) | transpose (Conv2DTranspose)
    two_channel_head: bool = False  # the notebook's Conv2D(2, 3, relu) before the 1x1 sigmoid


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-4
    weight_decay: float = 0.0  # decoupled for adamw, L2-style decay of the optimizer for adam/sgd
    momentum: float = 0.9  # sgd only
    clipnorm: Optional[float] = None
    schedule: str = "constant"  # constant | cosine | plateau
    warmup_epochs: int = 0  # cosine: linear warm-up epochs


@dataclass
class LossConfig:
    name: str = "bce"  # bce | dice | bce_dice
    dice_weight: float = 1.0  # bce_dice: weight of the Dice term


@dataclass
class AugmentConfig:
    name: str = "none"  # none | light | strong
    flips: bool = False
    rotate90: bool = False
    affine: float = 0.0  # max rotation (fraction of a full turn) and zoom/translation fraction
    color: float = 0.0  # brightness/contrast/saturation jitter strength on the image only


@dataclass
class TrainSection:
    epochs: int = 8
    batch_size: int = 8
    seed: int = 42
    sample_every: int = 1  # epochs between sample-mask logs
    sample_count: int = 4  # validation images shown in the sample masks
    verbose: int = 2  # Keras fit verbosity: 0 silent, 1 progress bar, 2 one line per epoch
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False
    steps_per_execution: int = 1
    strategy: str = "default"  # default | mirrored
    early_stopping: int = 0  # patience in epochs on val_iou; 0 disables
    checkpoint_monitor: str = "val_loss"  # metric that picks the best checkpoint
    deterministic: bool = False
    max_steps_per_epoch: Optional[int] = None  # cap batches per epoch (debug)
    pin_gpu: bool = False  # sweeps: job k sees only GPU k mod n


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///runs/mlflow.db"  # relative paths are taken from the working directory
    artifact_root: str = "runs/artifacts"  # for new experiments in a local store
    experiment: str = "skinexp"
    run_name: Optional[str] = None  # default: built from the command-line overrides
    log_model: bool = True  # also log an MLflow model (besides the .keras checkpoint)


@dataclass
class TrainAppConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainSection = field(default_factory=TrainSection)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: Optional[str] = None  # MLflow run id to continue from its last finished epoch
    rerun_of: Optional[str] = None  # MLflow run id whose config to train again (set by `rerun`)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainAppConfig)


_DATASET_CHOICES = {
    "dataset.name": ("synthetic", "npy", "folder"),
    "dataset.cache": ("memory", "disk"),
}
_CHOICES = {
    "model.upsample": ("upsampling", "transpose"),
    "optim.name": ("adam", "adamw", "sgd"),
    "optim.schedule": ("constant", "cosine", "plateau"),
    "loss.name": ("bce", "dice", "bce_dice"),
    "augment.name": ("none", "light", "strong", "custom"),
    "train.precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "train.strategy": ("default", "mirrored"),
}


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _check_choices(cfg: Any, choices_by_key: dict[str, tuple[str, ...]]) -> None:
    for key, choices in choices_by_key.items():
        value = _get(cfg, key)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}. Received: {key}={value}")


def validate_dataset(cfg: Any) -> None:
    """The checks of `cfg.dataset` alone (train runs them, and so does `data`, which has no model)."""
    _check_choices(cfg, _DATASET_CHOICES)
    for key in ("dataset.image_size", "dataset.num_samples"):
        value = _get(cfg, key)
        if value <= 0:
            raise ConfigError(f"{key} must be positive. Received: {key}={value}")
    for key in ("dataset.val_split",):
        value = _get(cfg, key)
        if not 0 < value < 1:
            raise ConfigError(f"{key} must be in the open interval (0, 1). Received: {key}={value}")
    for key in ("dataset.test_split",):
        value = _get(cfg, key)
        if not 0 <= value < 1 or value + cfg.dataset.val_split >= 1:
            raise ConfigError(f"{key} must be in [0, 1) and leave training data beside dataset.val_split."
                              f" Received: {key}={value}")
    if cfg.dataset.name in ("npy", "folder") and not cfg.dataset.root:
        raise ConfigError(f"dataset.root is required for dataset={cfg.dataset.name}. Received: dataset.root=None")
    if cfg.dataset.name == "synthetic" and cfg.dataset.image_size < 16:
        raise ConfigError("dataset.image_size must be at least 16 for dataset=synthetic. "
                          f"Received: dataset.image_size={cfg.dataset.image_size}")
    if cfg.dataset.cache == "disk" and not cfg.dataset.cache_dir:
        raise ConfigError("dataset.cache_dir must name a directory when dataset.cache=disk. "
                          f"Received: dataset.cache_dir={cfg.dataset.cache_dir!r}")


def validate_train(cfg: Any) -> None:
    """Raise ConfigError naming the key and received value for the first value that cannot work."""
    validate_dataset(cfg)
    _check_choices(cfg, _CHOICES)
    for key, high in (("augment.affine", 0.5), ("augment.color", 1.0)):  # the Keras layers' valid ranges
        value = _get(cfg, key)
        if not 0 <= value <= high:
            raise ConfigError(f"{key} must be in [0, {high}]. Received: {key}={value}")

    positive = ["model.filters", "model.depth", "optim.lr", "train.epochs", "train.batch_size",
                "train.sample_every", "train.steps_per_execution"]
    for key in positive:
        value = _get(cfg, key)
        if value <= 0:
            raise ConfigError(f"{key} must be positive. Received: {key}={value}")
    for key in ("model.dropout",):
        value = _get(cfg, key)
        if not 0 <= value < 1:
            raise ConfigError(f"{key} must be in [0, 1). Received: {key}={value}")
    for key in ("optim.weight_decay", "train.sample_count", "train.early_stopping", "optim.warmup_epochs"):
        value = _get(cfg, key)
        if value < 0:
            raise ConfigError(f"{key} must be non-negative. Received: {key}={value}")

    size, depth = cfg.dataset.image_size, cfg.model.depth
    if size % (2**depth) or size // (2**depth) < 2:
        raise ConfigError(
            "model.depth must divide dataset.image_size by 2^depth and leave at least 2x2 pixels at the "
            f"bottleneck. Received: model.depth={depth} with dataset.image_size={size}"
        )


@dataclass
class InferenceSection:
    """Keys shared by evaluate and predict (top level of their configs)."""

    run: str = MISSING  # MLflow run id (in tracking.uri) or path to a .keras file
    threshold: Optional[float] = None  # default: the run's best_threshold, else 0.5
    tta: bool = False  # average predictions over flips
    postprocess: str = "none"  # none | largest_component (applied only where it helps on validation)
    batch_size: int = 8
    output: Optional[str] = None  # default: runs/<command>/<date>/<time>-<pid>
    overwrite: bool = False


@dataclass
class EvaluateAppConfig(InferenceSection):
    split: str = "auto"  # auto | test | val | train | all
    columns: int = 5  # images in the notebook figure and in the best / worst figures
    dataset: Optional[DatasetConfig] = None  # default: the training run's dataset
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass
class PredictAppConfig(InferenceSection):
    input: str = MISSING  # a folder of images or an (N, H, W, 3) .npy file
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def register_inference_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="evaluate_schema", node=EvaluateAppConfig)
    cs.store(name="predict_schema", node=PredictAppConfig)


def validate_inference(cfg: Any) -> None:
    from omegaconf import OmegaConf

    for key in ("run",) + (("input",) if "input" in cfg else ()):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}= is required. Received: no {key}")
    if cfg.postprocess not in ("none", "largest_component"):
        raise ConfigError("postprocess must be one of none, largest_component. "
                          f"Received: postprocess={cfg.postprocess}")
    if cfg.threshold is not None and not 0 < cfg.threshold < 1:
        raise ConfigError(f"threshold must be in the open interval (0, 1). Received: threshold={cfg.threshold}")
    if cfg.batch_size <= 0:
        raise ConfigError(f"batch_size must be positive. Received: batch_size={cfg.batch_size}")
    if "split" in cfg and cfg.split not in ("auto", "test", "val", "train", "all"):
        raise ConfigError(f"split must be one of auto, test, val, train, all. Received: split={cfg.split}")
    if "columns" in cfg and cfg.columns <= 0:
        raise ConfigError(f"columns must be positive. Received: columns={cfg.columns}")
    if cfg.get("dataset") is not None:
        validate_dataset(cfg)
