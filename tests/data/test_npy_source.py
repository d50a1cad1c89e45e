"""dataset=npy: the notebook's files in every dtype and layout they come in, and every way they can be wrong."""
from __future__ import annotations

import numpy as np
import pytest
from datafiles import dataset_cfg, expect_data_error, write_npy

from skinexp.data import load_splits


def _load(root, **values):
    return load_splits(dataset_cfg(name="npy", root=root, image_size=values.pop("image_size", 16), **values))


def _contract(split, size):
    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (size, size, 3)
    assert split.masks.dtype == np.uint8 and split.masks.shape[1:] == (size, size, 1)
    assert set(np.unique(split.masks)) <= {0, 1}
    assert len(split.ids) == len(split.images) == len(split.masks)


@pytest.mark.parametrize("image_dtype, scale", [(np.uint8, 1), (np.float32, 1), (np.float32, 1 / 255),
                                                (np.float64, 1 / 255), (np.int64, 1)])
def test_images_in_any_dtype_and_range_become_the_same_uint8(tmp_path, image_dtype, scale):
    images, masks = write_npy(tmp_path, "train", 6, image_dtype=image_dtype, scale=scale)
    write_npy(tmp_path, "val", 2, image_dtype=image_dtype, scale=scale, seed=1)
    splits = _load(tmp_path)
    _contract(splits.train, 16)
    assert np.abs(splits.train.images.astype(int) - images.astype(int)).max() <= 1  # rounding of x / 255 * 255
    assert np.array_equal(splits.train.masks[..., 0], masks)


@pytest.mark.parametrize("mask_value, mask_shape", [(255, "NHW"), (1, "NHWC"), (1.0, "NHW"), (True, "NHWC"),
                                                    (1000.0, "NHW")])
def test_masks_in_any_dtype_and_layout_are_binarised_by_the_max(tmp_path, mask_value, mask_shape):
    _, masks = write_npy(tmp_path, mask_value=mask_value, mask_shape=mask_shape)
    splits = _load(tmp_path, val_split=0.5)
    order = [int(i.split("_")[1]) for i in splits.train.ids]
    assert np.array_equal(splits.train.masks[..., 0], masks[order])
    assert splits.warnings == []


def test_soft_masks_are_thresholded_at_half_the_max_with_a_warning(tmp_path):
    write_npy(tmp_path, count=4)
    soft = np.zeros((4, 16, 16), np.float32)
    soft[0, :4] = 0.9
    soft[0, 4:8] = 0.3
    soft[1, :2] = 0.9
    np.save(tmp_path / "mask_train.npy", soft)
    splits = _load(tmp_path, val_split=0.25)
    everything = {i: m for s in (splits.train, splits.val) for i, m in zip(s.ids, s.masks)}
    assert everything["train_00000"][:4].all() and not everything["train_00000"][4:].any()
    (warning,) = splits.warnings
    assert "1 of the 4 masks" in warning and "mask_train.npy" in warning


def test_uint8_files_at_the_right_size_stay_memory_mapped(tmp_path):
    write_npy(tmp_path, "train", 6, mask_value=1)
    write_npy(tmp_path, "val", 3, mask_value=1, seed=1)
    splits = _load(tmp_path)
    for split in (splits.train, splits.val):
        assert isinstance(split.images, np.memmap) and isinstance(split.masks, np.memmap)
    assert str(splits.train.images.filename).endswith("data_train.npy")


def test_val_and_test_files_are_used_else_val_is_held_out_by_seed(tmp_path):
    write_npy(tmp_path, "train", 10)
    first, second = _load(tmp_path, seed=3), _load(tmp_path, seed=3)
    assert len(first.val) == 2 and first.val.ids == second.val.ids and first.test is None
    write_npy(tmp_path, "val", 3, seed=1)
    write_npy(tmp_path, "test", 4, seed=2)
    splits = _load(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 3, 4)
    assert splits.test.ids[0] == "test_00000"


def test_other_sizes_are_resized_bilinear_images_nearest_masks(tmp_path):
    write_npy(tmp_path, count=3, size=32, image_dtype=np.float32, scale=1 / 255)
    splits = _load(tmp_path, image_size=16, val_split=0.34)
    _contract(splits.train, 16)
    _contract(splits.val, 16)


def _expect(root, *fragments, **values):
    return expect_data_error(_load, root, *fragments, **values)


def test_missing_root(tmp_path):
    _expect(tmp_path / "nowhere", "dataset.root", "nowhere")


def test_missing_train_files(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    _expect(tmp_path, "data_train.npy", "mask_train.npy")


def test_image_file_without_its_mask_file(tmp_path):
    write_npy(tmp_path)
    write_npy(tmp_path, "val", 2)
    (tmp_path / "mask_val.npy").unlink()
    _expect(tmp_path, "mask_val.npy", "data_val.npy")


def test_image_and_mask_counts_differ(tmp_path):
    write_npy(tmp_path, count=6)
    np.save(tmp_path / "mask_train.npy", np.zeros((5, 16, 16), np.uint8))
    _expect(tmp_path, "data_train.npy", "mask_train.npy", "6 images, 5 masks")


@pytest.mark.parametrize("file, shape", [("data_train.npy", (6, 16, 16)), ("data_train.npy", (6, 16, 16, 4)),
                                         ("mask_train.npy", (6, 16, 16, 3)), ("mask_train.npy", (6, 256))])
def test_wrong_rank_or_channels(tmp_path, file, shape):
    write_npy(tmp_path)
    np.save(tmp_path / file, np.zeros(shape, np.uint8))
    _expect(tmp_path, file, str(shape))


def test_image_and_mask_sizes_differ(tmp_path):
    write_npy(tmp_path)
    np.save(tmp_path / "mask_train.npy", np.ones((6, 8, 8), np.uint8))
    _expect(tmp_path, "data_train.npy", "16x16", "8x8")


@pytest.mark.parametrize("content", [b"", b"not an npy file at all", "truncated"])
def test_corrupt_npy(tmp_path, content):
    write_npy(tmp_path)
    target = tmp_path / "data_train.npy"
    target.write_bytes(target.read_bytes()[:200] if content == "truncated" else content)
    _expect(tmp_path, "data_train.npy", "not a readable .npy")


def test_pickled_objects_are_refused(tmp_path):
    write_npy(tmp_path)
    np.save(tmp_path / "data_train.npy", np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
    _expect(tmp_path, "data_train.npy")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("file", ["data_train.npy", "mask_train.npy"])
def test_nan_or_inf_pixels(tmp_path, bad, file):
    write_npy(tmp_path, image_dtype=np.float32, mask_value=1.0)
    array = np.load(tmp_path / file)
    array[3, 2, 2] = bad
    np.save(tmp_path / file, array)
    _expect(tmp_path, file, "NaN or inf", "index 3")


def test_values_out_of_range(tmp_path):
    write_npy(tmp_path, image_dtype=np.float32, scale=1.0)
    array = np.load(tmp_path / "data_train.npy")
    array -= 100
    np.save(tmp_path / "data_train.npy", array)
    _expect(tmp_path, "data_train.npy", "0..255 or 0..1")


def test_all_masks_empty(tmp_path):
    write_npy(tmp_path)
    np.save(tmp_path / "mask_train.npy", np.zeros((6, 16, 16), np.uint8))
    _expect(tmp_path, "all 6 masks are empty")
