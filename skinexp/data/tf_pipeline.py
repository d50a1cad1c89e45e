"""The tf.data pipeline (TensorFlow backend): index batches gathered from the uint8 arrays, cast in graph,
augmented by `skinexp.data.augment.apply` in the graph, prefetched. The contract is `skinexp.data.pipeline`'s."""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from skinexp.data import augment
from skinexp.data.types import Split

# Keras makes an iterator each epoch and drops the last. With autotuning on, the iterator's end waits for its
# autotune model thread, which at times sleeps out its optimisation period first: on the AMX Xeon, 11 of a 20-minute
# run's 52 epochs stalled for 19-20 s with both cores idle (gdb: ~RootDataset::Iterator waiting on
# Model::OptimizeLoop), 3.6 of its 20 training minutes. Without the model thread, AUTOTUNE keeps its defaults (map:
# one call per core), which kept the pipeline as fast on 2 cores.
_WITHOUT_AUTOTUNE_MODEL = tf.data.Options()
_WITHOUT_AUTOTUNE_MODEL.autotune.enabled = False


def tf_dataset(split: Split, batch_size: int, *, training: bool, seed: int, augment_cfg=None,
               max_batches: Optional[int] = None) -> tf.data.Dataset:
    """The arrays are never copied into TensorFlow: each batch's pixels are read from `split` when it is needed.
    `augment_cfg` (None: no augmentation) draws each image's parameters from its own seed, taken from a seeded
    stream that changes every epoch. `max_batches` (None: all) keeps an epoch's first batches."""
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
    if augment_cfg is None:
        dataset = dataset.batch(batch_size).map(load_batch, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        augment_batch = tf_augmenter(augment_cfg, height)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).batch(batch_size)
        dataset = dataset.map(lambda index, image_seeds: augment_batch(*load_batch(index), image_seeds),
                              num_parallel_calls=tf.data.AUTOTUNE)
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_WITHOUT_AUTOTUNE_MODEL)


def tf_augmenter(augment_cfg, size: int):
    """`augment(images, masks, seeds)` for a batch of tensors: `skinexp.data.augment.apply` with parameters drawn
    from the seeds."""

    def parameters(seeds: np.ndarray) -> np.ndarray:
        return augment.draw_parameters(augment_cfg, seeds, size)

    def augment_batch(images, masks, seeds):
        rows = tf.numpy_function(parameters, [seeds], tf.float32, stateful=False)
        rows.set_shape((None, augment.PARAMETERS))
        return augment.apply(images, masks, rows)

    return augment_batch
