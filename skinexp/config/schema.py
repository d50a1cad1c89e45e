"""Typed config schemas and every config choice, once.

The YAML files under `conf/` extend these schemas, so an unknown key, a value of the wrong type or a
choice outside its Enum fails at composition (before TensorFlow loads) with the allowed values. The
builders look names up in tables keyed by these Enums. Every key is documented in docs/configuration.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from omegaconf import MISSING


class Choice(str, Enum):
    """A config choice: compares equal to its name, prints as its name (params, YAML, messages)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def names(cls) -> str:
        return ", ".join(member.value for member in cls)


class DatasetName(Choice):
    synthetic = "synthetic"
    npy = "npy"
    folder = "folder"


class CacheKind(Choice):
    memory = "memory"
    disk = "disk"


class Upsample(Choice):
    upsampling = "upsampling"  # UpSampling2D then a 2x2 convolution
    transpose = "transpose"  # Conv2DTranspose


class Block(Choice):
    plain = "plain"  # two 3x3 convolutions
    residual = "residual"  # the same two, added to an identity shortcut (a 1x1 convolution where widths differ)


class Attention(Choice):
    none = "none"
    gate = "gate"  # an additive attention gate on each skip connection (Oktay et al. 2018)


class ConvKind(Choice):
    standard = "standard"  # Conv2D 3x3
    separable = "separable"  # SeparableConv2D 3x3: a depthwise 3x3, then a pointwise 1x1


class InputNorm(Choice):
    rescale = "rescale"  # x / 255: pixels to 0..1, every image as it was taken
    image = "image"  # each image to zero mean and unit variance over its pixels and channels: contrast, not colour
    channel = "channel"  # each image's channels to zero mean and unit variance apiece: also the colour cast


class Norm(Choice):
    none = "none"
    batch = "batch"  # BatchNormalization before each ReLU of a block
    group = "group"  # GroupNormalization (model.groups groups) before each ReLU of a block


class OptimName(Choice):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Schedule(Choice):
    constant = "constant"
    cosine = "cosine"
    plateau = "plateau"


class LossName(Choice):
    bce = "bce"
    dice = "dice"
    bce_dice = "bce_dice"
    bce_lovasz = "bce_lovasz"


class DiceOver(Choice):
    """What one Dice term is taken over: the whole batch's pixels (Keras' default), or each image, then averaged."""

    batch = "batch"
    image = "image"


class AugmentPreset(Choice):
    """The `augment` option the keys started from; the keys alone decide what is applied."""

    none = "none"
    light = "light"
    strong = "strong"


class Precision(Choice):
    auto = "auto"  # mixed_bfloat16 where the hardware runs bf16 natively, else float32 (skinexp.training.runtime)
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


class Backend(Choice):
    tensorflow = "tensorflow"
    jax = "jax"


class Strategy(Choice):
    default = "default"
    mirrored = "mirrored"


# What a training run logs per epoch: Keras' loss and these metrics (`skinexp.model.metrics`), each also with val_.
TRAINING_METRICS = ("accuracy", "iou", "miou", "dice")
Monitor = Choice("Monitor", {name: name for base in ("loss", *TRAINING_METRICS) for name in (f"val_{base}", base)})
Monitor.__doc__ = "A metric a training run logs per epoch: what `train.checkpoint_monitor` may name."


class Postprocess(Choice):
    none = "none"
    largest_component = "largest_component"


class EvaluateSplit(Choice):
    auto = "auto"
    test = "test"
    val = "val"
    train = "train"
    all = "all"


class DataFormat(Choice):
    folder = "folder"
    npy = "npy"


@dataclass
class DatasetConfig:
    name: DatasetName = DatasetName.synthetic
    image_size: int = 128  # square side every image is resized to
    num_samples: int = 300  # synthetic only: images generated
    val_split: float = 0.2  # fraction held out for validation when the source has no val split
    seed: int = 0  # seeds generation and the train/val split
    root: Optional[str] = None  # npy / folder: directory holding the data
    cache: CacheKind = CacheKind.memory  # folder: decoded uint8 cache
    cache_dir: str = "runs/cache"  # folder with cache=disk: where decoded arrays are kept (from the working dir)
    test_split: float = 0.0  # fraction held out for test when the source has no test split
    root_from: Optional[str] = None  # the environment variable a preset reads `root` from (named in errors)
    folds: int = 0  # cross-validation: K >= 2 folds of the images outside test; 0 = the split above
    fold: Optional[int] = None  # with folds: the validation fold, 0..folds-1 (default 0)


@dataclass
class ModelConfig:
    name: str = "unet"  # the option's name, also the Keras model's name
    depth: int = 4  # number of 2x down-samplings
    filters: int = 16  # first-level width, doubled at each level
    dropout: float = 0.0  # dropout rate after the two deepest encoder blocks
    batchnorm: bool = False
    upsample: Upsample = Upsample.upsampling
    two_channel_head: bool = False  # the notebook's Conv2D(2, 3, relu) before the 1x1 sigmoid
    widths: Optional[list[int]] = None  # depth + 1 widths (encoder levels, then the bottleneck); overrides filters
    block: Block = Block.plain
    attention: Attention = Attention.none
    conv: ConvKind = ConvKind.standard
    # the first 3x3 convolution, on the image's channels; none: as `conv`. A separable one there sees 3 channels
    # through 3 depthwise filters, which is why MobileNet and Xception start with a standard convolution
    stem_conv: Optional[ConvKind] = None
    input_norm: InputNorm = InputNorm.rescale  # what the model does to the 0..255 pixels before the first block
    norm: Norm = Norm.none  # batchnorm=true is norm=batch
    groups: int = 8  # norm=group: groups per normalisation; must divide every width
    deep_supervision: bool = False  # auxiliary heads on the lower decoder levels (skinexp.model.deep_supervision)


@dataclass
class OptimConfig:
    name: OptimName = OptimName.adam
    lr: float = 1e-4
    weight_decay: float = 0.0  # decoupled for adamw, the optimizer's own decay for adam/sgd
    momentum: float = 0.9  # sgd only
    clipnorm: Optional[float] = None
    schedule: Schedule = Schedule.constant
    warmup_epochs: int = 0  # cosine: linear warm-up epochs
    ema: Optional[float] = None  # momentum of an exponential moving average of the weights, in (0, 1): validated,
    # kept and logged with the averaged weights (skinexp.training.callbacks.AveragedWeights); none: the weights alone


@dataclass
class LossConfig:
    name: LossName = LossName.bce
    dice_weight: float = 1.0  # bce_dice: weight of the Dice term
    lovasz_weight: float = 1.0  # bce_lovasz: weight of the per-image Lovász (IoU) term
    dice_over: DiceOver = DiceOver.batch  # dice, bce_dice: image weighs each image alike, as a mean per-image IoU does


@dataclass
class AugmentConfig:
    name: AugmentPreset = AugmentPreset.none
    flips: bool = False
    rotate90: bool = False
    affine: float = 0.0  # max rotation (fraction of a full turn) and zoom/translation fraction
    color: float = 0.0  # brightness/contrast/saturation jitter strength on the image only


@dataclass
class BudgetConfig:
    """At most one: how much training a run gets instead of `train.epochs` (`skinexp.training.budget`)."""

    minutes: Optional[float] = None  # training minutes (train steps; validation and the probe not counted)
    gflop: Optional[float] = None  # training compute: images seen x the model's training FLOPs per image
    steps: Optional[int] = None  # optimizer steps: what a minutes budget resolved to (rerun and resume use it)
    # with steps: a minutes budget's revisions, [[0, planned], [at step, total], ...] (rerun and resume set it)
    plan: Optional[list[list[int]]] = None


@dataclass
class TrainSection:
    epochs: int = 8  # ignored when train.budget sets minutes, gflop or steps
    batch_size: int = 8
    seed: int = 42
    sample_every: int = 1  # epochs between sample-mask logs
    sample_count: int = 4  # validation images shown in the sample masks
    verbose: str = "auto"  # auto: a progress bar on a terminal, else one line per epoch; 0 | 1 | 2 as in Keras
    backend: Backend = Backend.tensorflow  # conf/train/default.yaml: $KERAS_BACKEND when it is set
    precision: Precision = Precision.auto
    jit_compile: str = "auto"  # auto (Keras decides: XLA on JAX and TensorFlow GPUs, not TF CPUs) | true | false
    steps_per_execution: int = 1
    strategy: Strategy = Strategy.default
    early_stopping: int = 0  # patience in epochs on val_iou; 0 disables
    checkpoint_monitor: Monitor = Monitor.val_iou  # metric that picks the kept checkpoint
    deterministic: bool = False
    max_steps_per_epoch: Optional[int] = None  # cap batches per epoch (debug)
    pin_gpu: bool = False  # sweeps: job k sees only GPU k mod n
    budget: BudgetConfig = field(default_factory=BudgetConfig)


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///runs/mlflow.db"  # relative paths are taken from the working directory
    artifact_root: str = "runs/artifacts"  # for new experiments in a local store
    experiment: str = "skinexp"
    run_name: Optional[str] = None  # default: built from the command-line overrides
    log_model: bool = True  # also log an MLflow model (besides the .keras checkpoint)
    retry_seconds: float = 300  # a remote server: how long one outage may last before the run gives up


DEFAULT_TRACKING = TrackingConfig()  # the one place the default store is written; ui, compare, runs read it


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


@dataclass
class InferenceSection:
    """Keys shared by evaluate and predict (top level of their configs)."""

    run: str = MISSING  # MLflow run id (in tracking.uri) or path to a .keras file
    group: Optional[str] = None  # with a cross-validation sweep as run=: the config to ensemble (default: the best)
    threshold: Optional[float] = None  # default: the run's best_threshold, else 0.5
    tta: bool = False  # average predictions over flips
    postprocess: Postprocess = Postprocess.none  # largest_component is applied only where it helps on validation
    batch_size: int = 8
    backend: Backend = Backend.tensorflow  # Keras' backend (conf: $KERAS_BACKEND when it is set); any loads any run
    output: Optional[str] = None  # default: runs/<command>/<date>/<time>-<pid>
    overwrite: bool = False


@dataclass
class EvaluateAppConfig(InferenceSection):
    split: EvaluateSplit = EvaluateSplit.auto
    columns: int = 5  # images in the notebook figure and in the best / worst figures
    dataset: Optional[DatasetConfig] = None  # default: the training run's dataset
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass
class PredictAppConfig(InferenceSection):
    input: str = MISSING  # a folder of images or an (N, H, W, 3) .npy file
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


@dataclass
class DataAppConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output: Optional[str] = None  # convert, synth: the directory to write
    format: DataFormat = DataFormat.folder  # synth
    overwrite: bool = False  # convert, synth: replace existing files


SCHEMAS = {"train_schema": TrainAppConfig, "evaluate_schema": EvaluateAppConfig,
           "predict_schema": PredictAppConfig, "data_schema": DataAppConfig}


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore, where each top-level config's defaults list names it."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
