"""The U-Net, as one builder whose body reads like the diagram of the network."""
from __future__ import annotations

import keras
from keras import layers

from skinexp.config.schema import Upsample
from skinexp.errors import ConfigError


def _conv_block(x, width: int, batchnorm: bool, name: str):
    """Two 3x3 convolutions with ReLU (and batch normalisation before each ReLU when asked)."""
    for i in (1, 2):
        if batchnorm:
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                              name=f"{name}_conv{i}")(x)
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
            x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
        else:
            x = layers.Conv2D(width, 3, activation="relu", padding="same", kernel_initializer="he_normal",
                              name=f"{name}_conv{i}")(x)
    return x


def _transpose(x, width: int, name: str):
    return layers.Conv2DTranspose(width, 2, strides=2, padding="same", activation="relu",
                                  kernel_initializer="he_normal", name=f"{name}_transpose")(x)


def _upsampling(x, width: int, name: str):
    x = layers.UpSampling2D(2, name=f"{name}_upsample")(x)
    return layers.Conv2D(width, 2, activation="relu", padding="same", kernel_initializer="he_normal",
                         name=f"{name}_upconv")(x)


UPSAMPLERS = {Upsample.upsampling: _upsampling, Upsample.transpose: _transpose}


def _upsample(x, width: int, mode: Upsample, name: str):
    if mode not in UPSAMPLERS:
        raise ConfigError(f"model.upsample must be one of {Upsample.names()}. Received: model.upsample={mode}")
    return UPSAMPLERS[mode](x, width, name)


def build_unet(model_cfg, image_size: int, channels: int = 3) -> keras.Model:
    """Build a U-Net for binary segmentation.

    Args:
        model_cfg: the `model` config section: `depth` (number of 2x down-samplings), `filters`
            (first-level width, doubled per level), `dropout` (rate after the two deepest blocks, as in
            the notebook), `batchnorm`, `upsample` (`upsampling` | `transpose`), `two_channel_head`
            (the notebook's `Conv2D(2, 3, relu)` before the output).
        image_size: square input side; must be divisible by 2**depth (checked by the config).
        channels: input channels.

    Returns:
        A `keras.Model` mapping images `(N, image_size, image_size, channels)` float32 in 0..255
        (the model rescales them to 0..1 itself) to lesion probabilities `(N, image_size, image_size, 1)`
        float32 in 0..1. With `model=unet_seed` at 256x256x3 it has the notebook's 31,032,837 parameters.
    """
    depth, filters = model_cfg.depth, model_cfg.filters
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)

    skips = []
    for level in range(depth):
        x = _conv_block(x, filters * 2**level, model_cfg.batchnorm, name=f"down{level + 1}")
        if model_cfg.dropout and level == depth - 1:
            x = layers.Dropout(model_cfg.dropout, name=f"down{level + 1}_dropout")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level + 1}_pool")(x)

    x = _conv_block(x, filters * 2**depth, model_cfg.batchnorm, name="bottleneck")
    if model_cfg.dropout:
        x = layers.Dropout(model_cfg.dropout, name="bottleneck_dropout")(x)

    for level in reversed(range(depth)):
        x = _upsample(x, filters * 2**level, model_cfg.upsample, name=f"up{level + 1}")
        x = layers.Concatenate(name=f"up{level + 1}_skip")([skips[level], x])
        x = _conv_block(x, filters * 2**level, model_cfg.batchnorm, name=f"up{level + 1}")

    if model_cfg.two_channel_head:
        x = layers.Conv2D(2, 3, activation="relu", padding="same", kernel_initializer="he_normal", name="head")(x)
    # float32 output keeps the loss stable under mixed precision.
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="mask")(x)
    return keras.Model(inputs, outputs, name=str(model_cfg.name))
