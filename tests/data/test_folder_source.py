"""dataset=folder: the naming conventions, sizes, split folders, the caches, and every way a folder can be wrong."""
from __future__ import annotations

import os

import numpy as np
import pytest
from datafiles import dataset_cfg, expect_data_error, pixels, write_folder
from PIL import Image

from skinexp.data import folder, load_splits


def _load(root, **values):
    return load_splits(dataset_cfg(name="folder", root=root, image_size=values.pop("image_size", 16), **values))


def _all_ids(splits):
    return sorted(splits.train.ids + splits.val.ids + (splits.test.ids if splits.test else []))


@pytest.mark.parametrize("image_ext, mask_ext, suffix, stem", [
    (".jpg", ".png", "", "a{}"),                                   # same stem
    (".jpg", ".png", "_segmentation", "ISIC_000000{}"),             # ISIC
    (".bmp", ".bmp", "_lesion", "IMD00{}"),                         # PH2
    (".JPEG", ".PNG", "", "Upper{}"),                               # extensions in any case
])
def test_naming_conventions_pair_every_image(tmp_path, image_ext, mask_ext, suffix, stem):
    stems = write_folder(tmp_path, 5, image_ext=image_ext, mask_ext=mask_ext, mask_suffix=suffix, stem=stem)
    splits = _load(tmp_path)
    assert _all_ids(splits) == sorted(stems) and len(splits.val) == 1
    for split in (splits.train, splits.val):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (16, 16, 3)
        assert split.masks.dtype == np.uint8 and split.masks.shape[1:] == (16, 16, 1)
        assert set(np.unique(split.masks)) <= {0, 1}


def test_hidden_and_other_files_are_ignored(tmp_path):
    write_folder(tmp_path, 3)
    (tmp_path / "images" / "._img0.png").write_bytes(b"AppleDouble resource fork")
    (tmp_path / "images" / "notes.txt").write_text("x")
    (tmp_path / "masks" / "Thumbs.db").write_bytes(b"x")
    assert _all_ids(_load(tmp_path)) == ["img0", "img1", "img2"]


def test_png_pixels_and_masks_survive_exactly_at_their_own_size(tmp_path):
    write_folder(tmp_path, 4, size=16)
    images, masks = pixels(4, 16)
    splits = _load(tmp_path, val_split=0.25)
    for split in (splits.train, splits.val):
        for name, image, mask in zip(split.ids, split.images, split.masks):
            index = int(name[3:])
            assert np.array_equal(image, images[index]) and np.array_equal(mask[..., 0], masks[index])


def test_any_size_is_resized_and_masks_stay_aligned(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, (width, height) in enumerate([(40, 30), (23, 61)]):
        image = np.zeros((height, width, 3), np.uint8)
        image[:, : width // 2] = 255  # left half white, and the mask marks the same half
        Image.fromarray(image).save(tmp_path / "images" / f"x{i}.png")
        Image.fromarray(image[..., 0]).save(tmp_path / "masks" / f"x{i}.png")
    splits = _load(tmp_path, val_split=0.5)
    for split in (splits.train, splits.val):
        assert split.images.shape[1:] == (16, 16, 3)
        assert np.array_equal(split.masks[0, :, :, 0], (split.images[0, :, :, 0] > 127).astype(np.uint8))


def test_train_val_test_subfolders(tmp_path):
    write_folder(tmp_path / "train", 5, stem="tr{}")
    write_folder(tmp_path / "val", 2, stem="va{}")
    write_folder(tmp_path / "test", 3, stem="te{}")
    splits = _load(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (5, 2, 3)
    assert splits.val.ids == ["va0", "va1"] and splits.test.ids[0] == "te0"


def test_memory_and_disk_caches_give_the_same_data_and_disk_skips_decoding(tmp_path, monkeypatch):
    write_folder(tmp_path / "data", 6)
    cache_dir = tmp_path / "cache"
    memory = _load(tmp_path / "data")
    disk = _load(tmp_path / "data", cache="disk", cache_dir=cache_dir)
    assert memory.fingerprint() == disk.fingerprint()
    (entry,) = cache_dir.iterdir()
    assert entry.name.startswith("folder-") and (entry / "train_images.npy").is_file()

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder, "decode_pair", no_decoding)
    assert _load(tmp_path / "data", cache="disk", cache_dir=cache_dir).fingerprint() == memory.fingerprint()
    with pytest.raises(AssertionError, match="decoded again"):  # another image size is another key
        _load(tmp_path / "data", cache="disk", cache_dir=cache_dir, image_size=8)
    mask = tmp_path / "data" / "masks" / "img0.png"
    os.utime(mask, ns=(mask.stat().st_atime_ns, mask.stat().st_mtime_ns + 10**9))
    _load(tmp_path / "data", cache="disk", cache_dir=cache_dir)  # the key is the content: touching is no change
    edited = np.asarray(Image.open(mask)).copy()
    edited[0, 0] = 255 - edited[0, 0]
    Image.fromarray(edited).save(mask)
    with pytest.raises(AssertionError, match="decoded again"):  # a changed file is another key
        _load(tmp_path / "data", cache="disk", cache_dir=cache_dir)


def test_soft_masks_warn_with_their_count_and_orphan_masks_are_ignored(tmp_path):
    write_folder(tmp_path, 4)
    soft = np.zeros((24, 24), np.uint8)
    soft[:8], soft[8:12] = 200, 60  # three values: 0, 60, 200 -> lesion where > 100
    Image.fromarray(soft).save(tmp_path / "masks" / "img1.png")
    Image.fromarray(soft).save(tmp_path / "masks" / "stray.png")
    splits = _load(tmp_path, image_size=24, val_split=0.25)
    masks = {i: m for s in (splits.train, splits.val) for i, m in zip(s.ids, s.masks)}
    assert masks["img1"][:8].all() and not masks["img1"][8:].any()
    assert any("1 of the 4 masks" in w and "binarised" in w for w in splits.warnings), splits.warnings
    assert any("stray.png" in w for w in splits.warnings), splits.warnings


def _expect(root, *fragments, **values):
    return expect_data_error(_load, root, *fragments, **values)


def test_missing_root(tmp_path):
    _expect(tmp_path / "nowhere", "dataset.root", "nowhere")


def test_missing_images_or_masks_folder(tmp_path):
    write_folder(tmp_path, 2)
    for path in (tmp_path / "masks").iterdir():
        path.unlink()
    (tmp_path / "masks").rmdir()
    _expect(tmp_path, str(tmp_path / "masks"))
    (tmp_path / "images").rename(tmp_path / "pictures")
    _expect(tmp_path, "images/ and masks/", "pictures/")


def test_empty_images_folder(tmp_path):
    write_folder(tmp_path, 2)
    for path in (tmp_path / "images").iterdir():
        path.unlink()
    (tmp_path / "images" / "readme.txt").write_text("x")
    _expect(tmp_path, str(tmp_path / "images"), "none of them such images")


def test_image_without_mask_is_named(tmp_path):
    write_folder(tmp_path, 3)
    (tmp_path / "masks" / "img2.png").unlink()
    _expect(tmp_path, str(tmp_path / "images" / "img2.png"), "has no mask")


def test_image_and_mask_sizes_differ(tmp_path):
    write_folder(tmp_path, 3)
    Image.new("L", (20, 24)).save(tmp_path / "masks" / "img1.png")
    _expect(tmp_path, "img1.png", "24x24", "20x24")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_truncated_image_is_named(tmp_path, damage):
    write_folder(tmp_path, 3, size=64, image_ext=".jpg")
    target = tmp_path / "images" / "img1.jpg"
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2] if damage == "truncated" else b"junk")
    message = _expect(tmp_path, str(target), "could not be decoded")
    assert "img0" not in message


def test_several_problems_name_the_first_and_count_the_rest(tmp_path):
    write_folder(tmp_path, 3)
    (tmp_path / "images" / "img0.png").write_bytes(b"junk")
    (tmp_path / "images" / "img2.png").write_bytes(b"junk")
    _expect(tmp_path, "img0.png", "and 1 more", "data check")


def test_all_masks_empty(tmp_path):
    write_folder(tmp_path, 3)
    for path in (tmp_path / "masks").iterdir():
        Image.new("L", (24, 24)).save(path)
    _expect(tmp_path, "all 3 masks are empty")
