"""The pipeline of the backends other than TensorFlow: a `keras.utils.PyDataset` over the uint8 sources, batches
gathered with NumPy and augmented by `skinexp.data.augment.apply` on the backend. The contract is
`skinexp.data.pipeline`'s."""
from __future__ import annotations

import math
import os
from typing import Optional

import keras
import numpy as np

from skinexp.data.augment import apply, draw_parameters
from skinexp.data.types import Split

SEED_LIMIT = 2**63 - 1
# Worker threads: NumPy's gathers and the backend's kernels release the GIL, so threads scale with cores; at most
# 8, to bound the batches held in memory.
DEFAULT_WORKERS = max(2, min(8, os.cpu_count() or 2))


class BatchSequence(keras.utils.PyDataset):
    """Batch `index` of the current epoch, gathered from `split` by index (a memory-mapped source stays on disk).

    Training draws the epoch's order and each position's augmentation seed from `(seed, epoch)`, so batches are
    the same whichever worker thread prepares them; `on_epoch_end` (Keras calls it) moves to the next epoch.
    """

    def __init__(self, split: Split, batch_size: int, *, training: bool, seed: int, augment_cfg=None,
                 workers: int = DEFAULT_WORKERS, max_batches: Optional[int] = None):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=8)
        self.split, self.batch_size, self.training, self.seed = split, batch_size, training, seed
        self.augment_cfg, self.max_batches = augment_cfg, max_batches
        self.epoch = 0
        self._order, self._seeds = self._draw(0)

    def _draw(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.split)
        if not self.training:
            return np.arange(count), np.zeros(count, np.int64)
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(count), rng.integers(0, SEED_LIMIT, count)

    def __len__(self) -> int:
        batches = math.ceil(len(self.split) / self.batch_size)
        return batches if self.max_batches is None else min(batches, self.max_batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        positions = slice(index * self.batch_size, (index + 1) * self.batch_size)
        chosen = self._order[positions]
        images = np.asarray(self.split.images[chosen], np.float32)
        masks = np.asarray(self.split.masks[chosen], np.float32)
        if self.augment_cfg is not None:
            moved = apply(images, masks, draw_parameters(self.augment_cfg, self._seeds[positions], images.shape[1]))
            images, masks = (keras.ops.convert_to_numpy(tensor) for tensor in moved)
        return images, masks

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order, self._seeds = self._draw(self.epoch)
