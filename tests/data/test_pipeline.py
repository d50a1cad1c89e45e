"""make_dataset, on both engines (tf.data for TensorFlow, PyDataset for the other backends): batches of float32
pixels and {0, 1} masks, every image once per epoch, seeded shuffling, memory-mapped sources read in place."""
from __future__ import annotations

import numpy as np
import pytest
from datafiles import dataset_cfg, write_npy

from skinexp.data import Split, load_splits
from skinexp.data.pipeline import ENGINES, make_dataset

ENGINE = pytest.mark.parametrize("engine", ENGINES)


def _numbered(count: int = 10, size: int = 8) -> Split:
    """Image i is filled with the value i, so a batch tells which images it holds."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, size, size, 3)).copy()
    masks = (images[..., :1] % 2).astype(np.uint8)
    return Split(images, masks, [str(i) for i in range(count)])


def _batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of either engine as NumPy arrays (ending the epoch as Keras' fit does)."""
    if hasattr(dataset, "on_epoch_end"):
        batches = [dataset[index] for index in range(len(dataset))]
        dataset.on_epoch_end()
        return batches
    return [(images.numpy(), masks.numpy()) for images, masks in dataset]


def _epoch(dataset) -> list[int]:
    return [int(v) for images, _ in _batches(dataset) for v in images[:, 0, 0, 0]]


@ENGINE
def test_batches_are_float32_pixels_and_binary_masks(engine):
    shapes = []
    for images, masks in _batches(make_dataset(_numbered(), 4, training=True, seed=0, engine=engine)):
        assert images.dtype == np.float32 and masks.dtype == np.float32
        assert set(np.unique(masks)) <= {0.0, 1.0}
        assert np.array_equal(masks[..., 0], images[..., 0] % 2)
        shapes.append(images.shape)
    assert shapes == [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]


@ENGINE
def test_training_reshuffles_every_epoch_by_seed_and_evaluation_keeps_order(engine):
    first = make_dataset(_numbered(), 3, training=True, seed=7, engine=engine)
    again = make_dataset(_numbered(), 3, training=True, seed=7, engine=engine)
    epoch_one, epoch_two = _epoch(first), _epoch(first)
    assert sorted(epoch_one) == list(range(10)) and sorted(epoch_two) == list(range(10))
    assert epoch_one != epoch_two and _epoch(again) == epoch_one
    assert _epoch(make_dataset(_numbered(), 3, training=False, seed=7, engine=engine)) == list(range(10))


def test_the_tf_data_pipeline_runs_no_autotune_model_thread():
    """Keras drops each epoch's iterator, and its end waited for the autotune model thread, which at times slept
    out its optimisation period: 19-20 s stalls in 11 of 52 epochs of a 20-minute run on the AMX Xeon. Training and
    evaluation pipelines run without it (a race: no timing in a test shows it reliably)."""
    split = _numbered()
    for training in (True, False):
        dataset = make_dataset(split, 3, training=training, seed=0, engine="tf.data",
                               max_batches=2 if training else None)
        assert dataset.options().autotune.enabled is False


@ENGINE
@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_a_capped_epoch_is_its_first_batches_each_epoch_afresh(engine, steps_per_execution):
    """train.max_steps_per_epoch: 10 images in batches of 3 are 4 batches; capped at 3, an epoch is the first 3
    batches of that epoch's order, and 4 epochs of fit train 12 steps at any steps per execution. (Through fit's
    steps_per_epoch=3, Keras carried one iterator across epochs: at k=1 every second epoch ran out after 1 batch, 8
    steps in all; at k=2 every epoch ran 4 steps, 16 in all.)"""
    import keras

    capped = make_dataset(_numbered(), 3, training=True, seed=7, engine=engine, max_batches=3)
    first, second = _epoch(capped), _epoch(capped)
    assert len(first) == len(set(first)) == len(second) == 9 and first != second
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(1, 1)])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution)
    capped = make_dataset(_numbered(), 3, training=True, seed=7, engine=engine, max_batches=3)
    model.fit(capped, epochs=4, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 12


@ENGINE
def test_augmented_epochs_differ_and_replay_by_seed(engine, compose):
    augment_cfg = compose("train", ["augment=strong"]).augment
    split = _numbered(count=6, size=16)
    split.images[:, :4, :2] = 200  # a corner that augmentation moves
    first = make_dataset(split, 3, training=True, seed=1, augment_cfg=augment_cfg, engine=engine)
    again = make_dataset(split, 3, training=True, seed=1, augment_cfg=augment_cfg, engine=engine)
    one, two, replay = _batches(first), _batches(first), _batches(again)
    assert not np.array_equal(one[0][0], two[0][0])
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(one, replay))
    assert all(set(np.unique(masks)) <= {0.0, 1.0} for _, masks in one)


@ENGINE
def test_memory_mapped_source_reads_the_same_pixels(tmp_path, engine):
    images, masks = write_npy(tmp_path, "train", 6, mask_value=1)
    write_npy(tmp_path, "val", 2, mask_value=1, seed=1)
    splits = load_splits(dataset_cfg(name="npy", root=tmp_path, image_size=16))
    assert isinstance(splits.train.images, np.memmap)
    batches = _batches(make_dataset(splits.train, 4, training=False, seed=0, engine=engine))
    assert np.array_equal(np.concatenate([b[0] for b in batches]), images.astype(np.float32))
    assert np.array_equal(np.concatenate([b[1] for b in batches])[..., 0], masks.astype(np.float32))
