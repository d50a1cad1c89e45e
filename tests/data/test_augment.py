"""Augmentation moves image and mask together, recolours only the image, and keeps masks binary."""
from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from skinexp.config.schema import AugmentConfig

tf = pytest.importorskip("tensorflow")
from skinexp.data.augment import build_augmenter  # noqa: E402


def _augment_cfg(**values):
    return OmegaConf.structured(AugmentConfig(**values))  # the keys alone decide; the preset name plays no part


def _marked_batch(count: int = 16, size: int = 32):
    """Images whose red channel is 255 exactly where the mask is 1 (an off-centre, asymmetric blob)."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:size, :size]
    masks = np.zeros((count, size, size, 1), np.float32)
    for i in range(count):
        centre = rng.uniform(0.2, 0.6, 2) * size
        masks[i, ..., 0] = ((rows - centre[0]) ** 2 / 3 + (cols - centre[1]) ** 2 < (size / 5) ** 2)
        masks[i, : size // 4, : size // 8, 0] = 1  # a corner patch: any flip or turn moves it
    images = rng.uniform(0, 120, (count, size, size, 3)).astype(np.float32)
    images[..., 0] = masks[..., 0] * 255
    return tf.constant(images), tf.constant(masks)


def _red_marks_mask(images, masks) -> float:
    """Fraction of pixels where "red > 127" disagrees with the mask."""
    return float(np.mean((images.numpy()[..., 0] > 127) != (masks.numpy()[..., 0] > 0.5)))


@pytest.mark.parametrize("values", [{"flips": True}, {"rotate90": True}, {"flips": True, "rotate90": True}])
def test_flips_and_quarter_turns_keep_the_mask_on_its_image_exactly(values):
    images, masks = _marked_batch()
    augment = build_augmenter(_augment_cfg(**values), seed=3)
    moved_images, moved_masks = augment(images, masks)
    assert _red_marks_mask(moved_images, moved_masks) == 0
    assert not np.array_equal(moved_masks.numpy(), masks.numpy())  # something did move
    assert np.array_equal(np.sort(moved_masks.numpy().sum(axis=(1, 2, 3))), np.sort(masks.numpy().sum(axis=(1, 2, 3))))


def test_affine_moves_image_and_mask_together_and_masks_stay_binary():
    images, masks = _marked_batch()
    augment = build_augmenter(_augment_cfg(flips=True, rotate90=True, affine=0.1), seed=5)
    moved_images, moved_masks = augment(images, masks)
    assert set(np.unique(moved_masks.numpy())) <= {0.0, 1.0}
    assert not np.array_equal(moved_masks.numpy(), masks.numpy())
    assert _red_marks_mask(moved_images, moved_masks) < 0.05  # only interpolated border pixels may differ


def test_colour_changes_the_image_only():
    images, masks = _marked_batch()
    augment = build_augmenter(_augment_cfg(color=0.3), seed=1)
    new_images, new_masks = augment(images, masks)
    assert np.array_equal(new_masks.numpy(), masks.numpy())
    assert not np.allclose(new_images.numpy(), images.numpy())
    assert new_images.numpy().min() >= 0 and new_images.numpy().max() <= 255


@pytest.mark.parametrize("preset", ["none", "light", "strong"])
def test_presets_build_and_keep_the_contract(compose, preset):
    cfg = compose("train", [f"augment={preset}"]).augment
    assert set(cfg) == {"name", "flips", "rotate90", "affine", "color"} and cfg.name == preset
    images, masks = _marked_batch(4)
    new_images, new_masks = build_augmenter(cfg, seed=0)(images, masks)
    assert new_images.shape == images.shape and new_images.dtype == tf.float32
    assert new_masks.shape == masks.shape and set(np.unique(new_masks.numpy())) <= {0.0, 1.0}


@pytest.mark.parametrize("override, message", [("augment.color=1.5", "augment.color must be in [0, 1.0]"),
                                               ("augment.affine=-0.1", "augment.affine must be in [0, 0.5]")])
def test_strengths_outside_the_layers_ranges_are_config_errors(compose, override, message):
    from skinexp.config.checks import check_train
    from skinexp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_train(compose("train", [override]))
