"""Augmentation of (image, mask) batches: geometry applied to both together, colour to the image only.

Keras 3 image preprocessing layers do the flips and the affine part (rotation, zoom, translation): given
`{"images": ..., "segmentation_masks": ...}` they draw one transform per image and apply it to both,
with nearest-neighbour interpolation for the masks. 90-degree rotations use `tf.image.rot90` with the
same k for image and mask.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

# Pixels stay float32 in the input pipeline whatever `train.precision` sets as Keras' global policy.
FLOAT32 = {"dtype": "float32"}


def build_augmenter(augment_cfg, seed: int) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """A function for `tf.data.Dataset.map` over batches.

    Args:
        augment_cfg: `augment` config: `flips` (horizontal and vertical, each with probability 0.5),
            `rotate90` (k x 90 degrees, k uniform in 0..3; square images only), `affine` (rotation up to
            `affine` of a full turn, zoom and translation up to that fraction; reflected borders),
            `color` (brightness, contrast and saturation jitter of that strength, image only).
        seed: seeds every random draw.

    Returns:
        `augment(images, masks)`: images `(B, S, S, 3)` float32 0..255 and masks `(B, S, S, 1)` float32
        {0, 1} in, the same shapes, dtypes and ranges out; masks stay binary.
    """
    geometric, colour = [], []
    if augment_cfg.flips:
        geometric.append(keras.layers.RandomFlip("horizontal_and_vertical", seed=seed, **FLOAT32))
    if augment_cfg.affine > 0:
        amount = float(augment_cfg.affine)
        geometric += [
            keras.layers.RandomRotation(amount, fill_mode="reflect", seed=seed + 1, **FLOAT32),
            keras.layers.RandomZoom(amount, fill_mode="reflect", seed=seed + 2, **FLOAT32),
            keras.layers.RandomTranslation(amount, amount, fill_mode="reflect", seed=seed + 3, **FLOAT32),
        ]
    if augment_cfg.color > 0:
        strength = float(augment_cfg.color)
        colour += [
            keras.layers.RandomBrightness(strength, value_range=(0, 255), seed=seed + 4, **FLOAT32),
            keras.layers.RandomContrast(strength, value_range=(0, 255), seed=seed + 5, **FLOAT32),
            keras.layers.RandomSaturation((0.5 - strength / 2, 0.5 + strength / 2), value_range=(0, 255),
                                          seed=seed + 6, **FLOAT32),
        ]
    quarter_turns = tf.random.Generator.from_seed(seed + 7) if augment_cfg.rotate90 else None

    def augment(images, masks):
        if quarter_turns is not None:
            images, masks = _rotate90(images, masks, quarter_turns)
        for layer in geometric:
            both = layer({"images": images, "segmentation_masks": masks}, training=True)
            images, masks = both["images"], both["segmentation_masks"]
        for layer in colour:
            images = layer(images, training=True)
        # Nearest interpolation keeps masks binary already; the threshold guards against any layer that does not.
        return tf.clip_by_value(images, 0.0, 255.0), tf.cast(masks > 0.5, tf.float32)

    return augment


def _rotate90(images, masks, generator: tf.random.Generator):
    """Each image and its mask rotated by the same random k x 90 degrees."""
    k = generator.uniform([tf.shape(images)[0]], 0, 4, dtype=tf.int32)

    def rotated(batch):
        turns = tf.stack([tf.image.rot90(batch, quarter) for quarter in range(4)])  # (4, B, S, S, C)
        return tf.gather(tf.transpose(turns, [1, 0, 2, 3, 4]), k, batch_dims=1)

    return rotated(images), rotated(masks)
