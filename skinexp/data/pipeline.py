"""Input pipelines: uint8 sources in, gathered a batch at a time by index, float32 batches out.

`make_dataset` picks the pipeline of the backend Keras runs on: tf.data on TensorFlow
(`skinexp.data.tf_pipeline`), a `keras.utils.PyDataset` on the others (`skinexp.data.py_pipeline`, no
TensorFlow in it). Both keep one contract: batches of (images float32 0..255 `(B, H, W, 3)`, masks float32
{0, 1} `(B, H, W, 1)`); every image once per epoch; training reshuffles every epoch (seeded) and augments
(`skinexp.data.augment`), evaluation keeps the order; a memory-mapped source stays on disk. With
`max_batches`, an epoch is the first `max_batches` batches of that epoch's order.
"""
from __future__ import annotations

from typing import Optional

from skinexp.data.augment import augmentation_enabled
from skinexp.data.types import Split

ENGINES = ("tf.data", "pydataset")

__all__ = ["augmentation_enabled", "make_dataset", "ENGINES"]


def make_dataset(split: Split, batch_size: int, *, training: bool, seed: int, augment_cfg=None,
                 engine: Optional[str] = None, max_batches: Optional[int] = None):
    """The batches of `split` (see the module's contract); `engine` (default: the backend's) is `tf.data` or
    `pydataset`; `max_batches` (None: all) ends each epoch after that many batches. The dataset's own length is the
    epoch's, so Keras starts each epoch afresh: given `fit(steps_per_epoch=)` instead, it carries one iterator across
    epochs and cuts an epoch short where the data runs out, or runs an epoch's last execution to a whole
    `steps_per_execution`."""
    if engine is None:
        import keras

        engine = ENGINES[0] if keras.backend.backend() == "tensorflow" else ENGINES[1]
    augment_cfg = augment_cfg if training and augment_cfg is not None and augmentation_enabled(augment_cfg) else None
    if engine == ENGINES[0]:
        from skinexp.data.tf_pipeline import tf_dataset

        return tf_dataset(split, batch_size, training=training, seed=seed, augment_cfg=augment_cfg,
                          max_batches=max_batches)
    from skinexp.data.py_pipeline import BatchSequence

    return BatchSequence(split, batch_size, training=training, seed=seed, augment_cfg=augment_cfg,
                         max_batches=max_batches)
