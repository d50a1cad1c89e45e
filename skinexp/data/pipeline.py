"""tf.data input pipelines: uint8 arrays in, gathered a batch at a time, cast in graph, augmented, prefetched."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from skinexp.data.types import Split


def augmentation_enabled(augment_cfg) -> bool:
    """Whether any augmentation key is on; the preset's name (`augment.name`) plays no part."""
    return bool(augment_cfg.flips or augment_cfg.rotate90 or augment_cfg.affine > 0 or augment_cfg.color > 0)


def make_dataset(split: Split, batch_size: int, *, training: bool, seed: int, augment_cfg=None) -> tf.data.Dataset:
    """Batches of (images float32 0..255 (B, H, W, 3), masks float32 {0, 1} (B, H, W, 1)).

    The dataset shuffles and batches indices and reads each batch's pixels from `split` when it is
    needed, so the arrays are never copied into TensorFlow: a memory-mapped source stays on disk, and
    pixels stay uint8 until the graph casts the batch. Training datasets reshuffle every epoch (seeded)
    and apply `augment_cfg` to image and mask together.
    """
    images, masks = split.images, split.masks
    height, width = images.shape[1:3]

    def gather(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(images[index]), np.asarray(masks[index])

    def load_batch(index):
        batch_images, batch_masks = tf.numpy_function(gather, [index], (tf.uint8, tf.uint8), stateful=False)
        batch_images.set_shape((None, height, width, 3))
        batch_masks.set_shape((None, height, width, 1))
        return tf.cast(batch_images, tf.float32), tf.cast(batch_masks, tf.float32)

    dataset = tf.data.Dataset.range(len(split))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment_cfg is not None and augmentation_enabled(augment_cfg):
        from skinexp.data.augment import build_augmenter

        augmenter = build_augmenter(augment_cfg, seed)
        dataset = dataset.map(augmenter, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
