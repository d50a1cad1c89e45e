"""tf.data input pipelines: uint8 arrays in, cast in graph, shuffled, augmented, batched, prefetched."""
from __future__ import annotations

import tensorflow as tf

from skinexp.data import Split


def make_dataset(split: Split, batch_size: int, *, training: bool, seed: int, augment_cfg=None) -> tf.data.Dataset:
    """Batches of (images float32 0..255 (B, H, W, 3), masks float32 {0, 1} (B, H, W, 1)).

    Pixels stay uint8 until the graph casts each batch, so the data costs a quarter of float32 in memory.
    Training datasets reshuffle every epoch (seeded) and apply `augment_cfg` to image and mask together.
    """
    dataset = tf.data.Dataset.from_tensor_slices((split.images, split.masks))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=False)
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment_cfg is not None and augment_cfg.name != "none":
        from skinexp.data.augment import build_augmenter

        augmenter = build_augmenter(augment_cfg, seed)
        dataset = dataset.map(augmenter, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _to_float(images, masks):
    return tf.cast(images, tf.float32), tf.cast(masks, tf.float32)
