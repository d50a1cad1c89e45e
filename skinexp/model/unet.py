"""The U-Net, as one builder whose body reads like the diagram of the network.

Every option is a key of `model` (an Enum in `skinexp.config.schema`) looked up in a table below: the block
(`plain` | `residual`), its 3x3 convolutions (`standard` | `separable`) and normalisation (`none` | `batch` |
`group`), the up-sampling, the skip connections (`none` | an attention `gate`), deep supervision, and what the
model does to the pixels first (`rescale` | per-image standardisation). Every layer is Keras' own, so a saved
network loads with Keras alone (the served segmenter's contract).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import keras
from keras import layers

from skinexp.config.checks import model_norm, model_widths
from skinexp.config.schema import Attention, Block, ConvKind, InputNorm, Norm, Upsample
from skinexp.errors import ConfigError
from skinexp.model.deep_supervision import DeepSupervision


def _lookup(table: dict, choice, key: str, allowed: type):
    if choice not in table:
        raise ConfigError(f"model.{key} must be one of {allowed.names()}. Received: model.{key}={choice}")
    return table[choice]


# --- the blocks' layers -----------------------------------------------------------------------------------------

def _standard(width: int, use_bias: bool, activation, name: str):
    return layers.Conv2D(width, 3, padding="same", activation=activation, use_bias=use_bias,
                         kernel_initializer="he_normal", name=name)


def _separable(width: int, use_bias: bool, activation, name: str):
    return layers.SeparableConv2D(width, 3, padding="same", activation=activation, use_bias=use_bias,
                                  depthwise_initializer="he_normal", pointwise_initializer="he_normal", name=name)


CONVOLUTIONS = {ConvKind.standard: _standard, ConvKind.separable: _separable}
NORMALISATIONS = {
    Norm.batch: lambda groups, name: layers.BatchNormalization(name=f"{name}_bn"),
    Norm.group: lambda groups, name: layers.GroupNormalization(groups, name=f"{name}_gn"),
}


@dataclass(frozen=True)
class Layers:
    """How a block's 3x3 convolutions are made: `conv` (standard | separable), `norm` (none | batch | group)
    before each ReLU, `groups` for group normalisation; `first_conv`, when set, makes the block's first 3x3
    convolution (the stem, in the first block)."""

    conv: ConvKind
    norm: Norm
    groups: int
    first_conv: Optional[ConvKind] = None

    def conv_norm(self, x, width: int, name: str, relu: bool = True, first: bool = False):
        """A 3x3 convolution (`{name}`), its normalisation (`{name}_bn` | `{name}_gn`) and a ReLU; without
        normalisation the ReLU is the convolution's own activation, as in the notebook."""
        kind, key = (self.first_conv, "stem_conv") if first and self.first_conv is not None else (self.conv, "conv")
        convolution = _lookup(CONVOLUTIONS, kind, key, ConvKind)
        if self.norm == Norm.none:
            return convolution(width, True, "relu" if relu else None, name)(x)
        x = convolution(width, False, None, name)(x)  # the normalisation's offset replaces the bias
        x = _lookup(NORMALISATIONS, self.norm, "norm", Norm)(self.groups, name)(x)
        return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _plain_block(x, width: int, style: Layers, name: str):
    """Two 3x3 convolutions, each followed by the normalisation and a ReLU."""
    for i in (1, 2):
        x = style.conv_norm(x, width, f"{name}_conv{i}", first=i == 1)
    return x


def _residual_block(x, width: int, style: Layers, name: str):
    """ResNet's basic block: two 3x3 convolutions (the second without its ReLU) added to the input, through a 1x1
    convolution (and the normalisation) where the widths differ, then a ReLU."""
    shortcut = x
    if x.shape[-1] != width:
        shortcut = layers.Conv2D(width, 1, use_bias=style.norm == Norm.none, kernel_initializer="he_normal",
                                 name=f"{name}_shortcut")(x)
        if style.norm != Norm.none:
            shortcut = _lookup(NORMALISATIONS, style.norm, "norm", Norm)(style.groups, f"{name}_shortcut")(shortcut)
    x = style.conv_norm(x, width, f"{name}_conv1", first=True)
    x = style.conv_norm(x, width, f"{name}_conv2", relu=False)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


BLOCKS = {Block.plain: _plain_block, Block.residual: _residual_block}


# --- the input ---------------------------------------------------------------------------------------------------

def _standardise(axes: tuple[int, ...]):
    """Each image to zero mean and unit variance over `axes` (Keras' LayerNormalization without its scale and
    offset, so no weights and nothing but Keras to load the saved model with); in float32 under mixed precision, on
    the 0..255 pixels, where its epsilon (1e-3) is negligible beside any real image's variance and a flat image
    becomes 0."""
    return lambda x: layers.LayerNormalization(axis=axes, center=False, scale=False, dtype="float32",
                                               name="input_norm")(x)


INPUT_NORMS = {
    InputNorm.rescale: lambda x: layers.Rescaling(1.0 / 255, name="rescale")(x),
    InputNorm.image: _standardise((1, 2, 3)),  # tf.image.per_image_standardization's rule
    InputNorm.channel: _standardise((1, 2)),  # a colour cast, a per-channel gain and offset, is taken out
}


# --- up-sampling, skip connections, heads ------------------------------------------------------------------------

def _transpose(x, width: int, name: str):
    return layers.Conv2DTranspose(width, 2, strides=2, padding="same", activation="relu",
                                  kernel_initializer="he_normal", name=f"{name}_transpose")(x)


def _upsampling(x, width: int, name: str):
    x = layers.UpSampling2D(2, name=f"{name}_upsample")(x)
    return layers.Conv2D(width, 2, activation="relu", padding="same", kernel_initializer="he_normal",
                         name=f"{name}_upconv")(x)


UPSAMPLERS = {Upsample.upsampling: _upsampling, Upsample.transpose: _transpose}


def _plain_skip(skip, gating, name: str):
    return skip


def _attention_gate(skip, gating, name: str):
    """Oktay et al.'s additive attention gate, with the up-sampled decoder features as the gating signal (same
    resolution as the skip): skip * sigmoid(psi(relu(W_x skip + W_g gating))), where W_x (no bias) and W_g map to
    half the skip's width (at least 1) and psi to one channel, all 1x1 convolutions."""
    inner = max(1, skip.shape[-1] // 2)
    from_skip = layers.Conv2D(inner, 1, use_bias=False, name=f"{name}_gate_skip")(skip)
    from_gating = layers.Conv2D(inner, 1, name=f"{name}_gate_signal")(gating)
    joint = layers.Activation("relu", name=f"{name}_gate_relu")(layers.Add(name=f"{name}_gate_add")(
        [from_skip, from_gating]))
    coefficients = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_gate")(joint)
    return layers.Multiply(name=f"{name}_gated")([skip, coefficients])


SKIPS = {Attention.none: _plain_skip, Attention.gate: _attention_gate}


def _auxiliary_head(x, level: int):
    """Deep supervision at decoder level `level` (2..depth): one logit, bilinearly up-sampled by 2^(level-1) to the
    input's resolution, then a sigmoid, all three in float32, as the output layer is. (Under mixed_bfloat16 a bf16
    head's resize gradient comes back in float32 and meets the bf16 decoder gradient in one sum, which XLA refuses.)"""
    x = layers.Conv2D(1, 1, dtype="float32", name=f"aux{level}_logit")(x)
    x = layers.UpSampling2D(2 ** (level - 1), interpolation="bilinear", dtype="float32", name=f"aux{level}_upsample")(x)
    return layers.Activation("sigmoid", dtype="float32", name=f"aux{level}")(x)


def build_unet(model_cfg, image_size: int, channels: int = 3) -> keras.Model:
    """Build a U-Net for binary segmentation.

    Args:
        model_cfg: the `model` config section (checked by `skinexp.config.checks.check_model`): `depth` (number of
            2x down-samplings); `widths` (`depth + 1` widths: the encoder levels, then the bottleneck; decoder level i
            has encoder level i's width), else `filters` doubled per level; `dropout` (rate after the two deepest
            blocks, as in the notebook); `block` (`plain` | `residual`); `conv` (`standard` | `separable` 3x3
            convolutions in the blocks; the up-sampling, gates and heads stay standard); `stem_conv` (the first
            block's first 3x3 convolution, on the image; none: as `conv`); `norm` (`none` | `batch` | `group` with
            `groups`; `batchnorm=true` is `norm=batch`); `upsample` (`upsampling` | `transpose`); `attention`
            (`none` | `gate` on each skip connection); `two_channel_head` (the notebook's `Conv2D(2, 3, relu)` before
            the output); `deep_supervision`; `input_norm` (`rescale`: x / 255; `image`: each image standardised
            over its pixels and channels; `channel`: each of its channels standardised apiece).
        image_size: square input side; must be divisible by 2**depth (checked by the config).
        channels: input channels.

    Returns:
        A `keras.Model` mapping images `(N, image_size, image_size, channels)` float32 in 0..255 (the model
        rescales or standardises them itself) to lesion probabilities `(N, image_size, image_size, 1)` float32 in 0..1.
        With `deep_supervision` it is a `DeepSupervision` model, which also returns its heads' probabilities when
        called with `training=True`, and whose `.network` is the U-Net alone. With `model=unet_seed` at 256x256x3
        it has the notebook's 31,032,837 parameters.
    """
    depth, widths = model_cfg.depth, model_widths(model_cfg)
    style = Layers(conv=model_cfg.conv, norm=model_norm(model_cfg), groups=model_cfg.groups)
    block = _lookup(BLOCKS, model_cfg.block, "block", Block)
    upsample = _lookup(UPSAMPLERS, model_cfg.upsample, "upsample", Upsample)
    skip_connection = _lookup(SKIPS, model_cfg.attention, "attention", Attention)
    normalise = _lookup(INPUT_NORMS, model_cfg.input_norm, "input_norm", InputNorm)

    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = normalise(inputs)

    skips = []
    for level in range(depth):
        level_style = replace(style, first_conv=model_cfg.stem_conv) if level == 0 else style
        x = block(x, widths[level], level_style, name=f"down{level + 1}")
        if model_cfg.dropout and level == depth - 1:
            x = layers.Dropout(model_cfg.dropout, name=f"down{level + 1}_dropout")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)

    x = block(x, widths[depth], style, name="bottleneck")
    if model_cfg.dropout:
        x = layers.Dropout(model_cfg.dropout, name="bottleneck_dropout")(x)

    decoded = {}
    for level in reversed(range(depth)):
        x = upsample(x, widths[level], name=f"up{level + 1}")
        skip = skip_connection(skips[level], x, name=f"up{level + 1}")
        x = layers.Concatenate(name=f"up{level + 1}_skip")([skip, x])
        x = block(x, widths[level], style, name=f"up{level + 1}")
        decoded[level + 1] = x

    if model_cfg.two_channel_head:
        x = layers.Conv2D(2, 3, activation="relu", padding="same", kernel_initializer="he_normal", name="head")(x)
    # float32 output keeps the loss stable under mixed precision.
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
    if not model_cfg.deep_supervision:
        return keras.Model(inputs, outputs, name=str(model_cfg.name))

    heads = [_auxiliary_head(decoded[level], level) for level in range(2, depth + 1)]
    return DeepSupervision(keras.Model(inputs, [outputs, *heads], name=str(model_cfg.name)))
