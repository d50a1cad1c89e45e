"""make_dataset: batches of float32 pixels and {0, 1} masks, every image once per epoch, seeded shuffling."""
from __future__ import annotations

import numpy as np
import pytest
from datafiles import dataset_cfg, write_npy

from skinexp.data import Split, load_splits

tf = pytest.importorskip("tensorflow")
from skinexp.data.pipeline import make_dataset  # noqa: E402


def _numbered(count: int = 10, size: int = 8) -> Split:
    """Image i is filled with the value i, so a batch tells which images it holds."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, size, size, 3)).copy()
    masks = (images[..., :1] % 2).astype(np.uint8)
    return Split(images, masks, [str(i) for i in range(count)])


def _epoch(dataset) -> list[int]:
    return [int(v) for images, _ in dataset for v in images.numpy()[:, 0, 0, 0]]


def test_batches_are_float32_pixels_and_binary_masks():
    dataset = make_dataset(_numbered(), 4, training=True, seed=0)
    shapes = []
    for images, masks in dataset:
        assert images.dtype == tf.float32 and masks.dtype == tf.float32
        assert set(np.unique(masks.numpy())) <= {0.0, 1.0}
        assert np.array_equal(masks.numpy()[..., 0], images.numpy()[..., 0] % 2)
        shapes.append(images.shape[0])
    assert shapes == [4, 4, 2]
    assert dataset.element_spec[0].shape.as_list() == [None, 8, 8, 3]


def test_training_reshuffles_every_epoch_by_seed_and_evaluation_keeps_order():
    first = make_dataset(_numbered(), 3, training=True, seed=7)
    again = make_dataset(_numbered(), 3, training=True, seed=7)
    epoch_one, epoch_two = _epoch(first), _epoch(first)
    assert sorted(epoch_one) == list(range(10)) and sorted(epoch_two) == list(range(10))
    assert epoch_one != epoch_two and _epoch(again) == epoch_one
    assert _epoch(make_dataset(_numbered(), 3, training=False, seed=7)) == list(range(10))


def test_memory_mapped_source_reads_the_same_pixels(tmp_path):
    images, masks = write_npy(tmp_path, "train", 6, mask_value=1)
    write_npy(tmp_path, "val", 2, mask_value=1, seed=1)
    splits = load_splits(dataset_cfg(name="npy", root=tmp_path, image_size=16))
    assert isinstance(splits.train.images, np.memmap)
    batches = list(make_dataset(splits.train, 4, training=False, seed=0))
    assert np.array_equal(np.concatenate([b[0].numpy() for b in batches]), images.astype(np.float32))
    assert np.array_equal(np.concatenate([b[1].numpy() for b in batches])[..., 0], masks.astype(np.float32))
