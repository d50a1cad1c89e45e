"""Augmentation of (image, mask) batches: geometry applied to both together, colour to the image only.

Every image draws its own parameters from its own seed (`draw_parameters`, NumPy): a flip, a quarter turn and
a small rotation, zoom and translation, all folded into one projective transform, and a brightness, contrast
and saturation jitter. One resampling moves image and mask together (bilinear, reflected borders; the mask is
thresholded at 0.5 after, so it stays binary, and flips and quarter turns land on the pixel grid exactly).
`apply` is written once in `keras.ops` (`keras.ops.image.affine_transform`), so it runs on whichever backend
Keras has: inside the tf.data graph on TensorFlow (`skinexp.data.tf_pipeline`), in the PyDataset's threads on
JAX (`skinexp.data.py_pipeline`). Seeding per image (not per call) keeps an epoch's augmentation the same
however many threads prepare its batches.
"""
from __future__ import annotations

import math

import numpy as np

TRANSFORM = slice(0, 8)  # the 8 projective-transform coefficients, as tf.raw_ops.ImageProjectiveTransformV3 takes
BRIGHTNESS, CONTRAST, SATURATION = 8, 9, 10
PARAMETERS = 11
IDENTITY = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1], np.float32)
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma


def augmentation_enabled(augment_cfg) -> bool:
    """Whether any augmentation key is on; the preset's name (`augment.name`) plays no part."""
    return bool(augment_cfg.flips or augment_cfg.rotate90 or augment_cfg.affine > 0 or augment_cfg.color > 0)


def draw_parameters(augment_cfg, seeds, size: int) -> np.ndarray:
    """(B, 11) float32: one row of transform and colour parameters per seed (one seed per image).

    Args:
        augment_cfg: `augment` config: `flips` (horizontal and vertical, each with probability 0.5),
            `rotate90` (k x 90 degrees, k uniform in 0..3; square images), `affine` (rotation up to `affine` of a
            full turn, zoom and translation up to that fraction), `color` (brightness shift up to `color` x 255,
            contrast and saturation factors in 1 +- `color`).
        seeds: (B,) integers, one per image.
        size: the images' side in pixels.
    """
    rows = np.tile(IDENTITY, (len(seeds), 1))
    centre = (size - 1) / 2
    for row, seed in zip(rows, np.asarray(seeds).astype(np.uint64)):
        rng = np.random.default_rng(int(seed))
        # Output pixel -> input pixel, about the image centre: input = centre + linear @ (output - centre) + shift.
        linear = np.eye(2)
        if augment_cfg.flips:
            linear = linear @ np.diag([rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])])
        if augment_cfg.rotate90:
            linear = linear @ _rotation(rng.integers(0, 4) * math.pi / 2)
        shift = np.zeros(2)
        if augment_cfg.affine > 0:
            amount = float(augment_cfg.affine)
            zoom = 1.0 + rng.uniform(-amount, amount)
            linear = linear @ _rotation(rng.uniform(-amount, amount) * 2 * math.pi) / zoom
            shift = rng.uniform(-amount, amount, 2) * size
        offset = centre - linear @ np.array([centre, centre]) + shift
        # (x, y) = (column, row): [a0 a1 a2; b0 b1 b2] maps output (x, y) to input (a0 x + a1 y + a2, ...).
        row[TRANSFORM] = [linear[0, 0], linear[0, 1], offset[0], linear[1, 0], linear[1, 1], offset[1], 0, 0]
        if augment_cfg.color > 0:
            strength = float(augment_cfg.color)
            row[BRIGHTNESS] = rng.uniform(-strength, strength) * 255
            row[CONTRAST] = 1 + rng.uniform(-strength, strength)
            row[SATURATION] = 1 + rng.uniform(-strength, strength)
    return rows


def _rotation(angle: float) -> np.ndarray:
    cosine, sine = round(math.cos(angle), 12), round(math.sin(angle), 12)  # quarter turns exactly on the grid
    return np.array([[cosine, -sine], [sine, cosine]])


def apply(images, masks, parameters):
    """The parameters applied with the active Keras backend's ops: images `(B, S, S, 3)` float32 0..255 and masks
    `(B, S, S, 1)` float32 {0, 1} in (arrays or the backend's tensors, also symbolic ones in a tf.data graph),
    `parameters` `(B, 11)` float32 from `draw_parameters`; the same shapes, dtypes and ranges out."""
    from keras import ops

    both = ops.image.affine_transform(ops.concatenate([images, masks], axis=-1), parameters[:, TRANSFORM],
                                      interpolation="bilinear", fill_mode="reflect", data_format="channels_last")
    moved = colour(both[..., :3], parameters[:, BRIGHTNESS], parameters[:, CONTRAST], parameters[:, SATURATION],
                   mean=lambda x: ops.mean(x, axis=(1, 2, 3), keepdims=True),
                   grey=lambda x: ops.sum(x * GREY_WEIGHTS, axis=-1, keepdims=True))
    return ops.clip(moved, 0.0, 255.0), ops.cast(both[..., 3:] > 0.5, "float32")


def colour(images, brightness, contrast, saturation, *, mean, grey):
    """Brightness shift, contrast about each image's mean, saturation about its grey (`mean` and `grey` are the
    framework's per-image mean and RGB -> grey)."""
    images = images + brightness[:, None, None, None]
    average = mean(images)
    images = average + (images - average) * contrast[:, None, None, None]
    luma = grey(images)
    return luma + (images - luma) * saturation[:, None, None, None]
