"""Augmentation moves image and mask together, recolours only the image, and keeps masks binary: `apply` (keras.ops)
called eagerly, as the PyDataset pipeline calls it, and inside tf.data's graph (`tf_augmenter`); and the JAX
backend gives what TensorFlow gives for the same seeds."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import OmegaConf

from skinexp.config.schema import AugmentConfig
from skinexp.data.augment import IDENTITY, apply, draw_parameters
from skinexp.data.tf_pipeline import tf_augmenter

SEEDS = np.arange(16) + 100


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
    return images, masks


def _eager_path(cfg, images, masks):
    import keras

    moved = apply(images, masks, draw_parameters(cfg, SEEDS[: len(images)], images.shape[1]))
    return tuple(keras.ops.convert_to_numpy(tensor) for tensor in moved)


def _tensorflow_path(cfg, images, masks):
    moved_images, moved_masks = tf_augmenter(cfg, images.shape[1])(tf.constant(images), tf.constant(masks),
                                                                   tf.constant(SEEDS[: len(images)]))
    return moved_images.numpy(), moved_masks.numpy()


PATHS = pytest.mark.parametrize("path", [_eager_path, _tensorflow_path], ids=["eager", "tf.data"])


def _red_marks_mask(images, masks) -> float:
    """Fraction of pixels where "red > 127" disagrees with the mask."""
    return float(np.mean((images[..., 0] > 127) != (masks[..., 0] > 0.5)))


@PATHS
@pytest.mark.parametrize("values", [{"flips": True}, {"rotate90": True}, {"flips": True, "rotate90": True}])
def test_flips_and_quarter_turns_keep_the_mask_on_its_image_exactly(path, values):
    images, masks = _marked_batch()
    moved_images, moved_masks = path(_augment_cfg(**values), images, masks)
    assert _red_marks_mask(moved_images, moved_masks) == 0
    assert not np.array_equal(moved_masks, masks)  # something did move
    assert np.array_equal(np.sort(moved_masks.sum(axis=(1, 2, 3))), np.sort(masks.sum(axis=(1, 2, 3))))
    assert np.allclose(np.sort(moved_images, axis=None), np.sort(images, axis=None), atol=1e-3)  # moved, not changed


@PATHS
def test_affine_moves_image_and_mask_together_and_masks_stay_binary(path):
    images, masks = _marked_batch()
    moved_images, moved_masks = path(_augment_cfg(flips=True, rotate90=True, affine=0.1), images, masks)
    assert set(np.unique(moved_masks)) <= {0.0, 1.0}
    assert not np.array_equal(moved_masks, masks)
    assert _red_marks_mask(moved_images, moved_masks) < 0.05  # only interpolated border pixels may differ


@PATHS
def test_colour_changes_the_image_only(path):
    images, masks = _marked_batch()
    new_images, new_masks = path(_augment_cfg(color=0.3), images, masks)
    assert np.array_equal(new_masks, masks)
    assert not np.allclose(new_images, images)
    assert new_images.min() >= 0 and new_images.max() <= 255


def test_colour_jitter_is_brightness_contrast_and_saturation_by_hand():
    image = np.zeros((1, 2, 2, 3), np.float32)
    image[0, 0, 0] = [100, 50, 0]
    parameters = IDENTITY[None].copy()
    parameters[0, 8:] = [10, 1.0, 0.0]  # +10 brightness, same contrast, no saturation: every pixel its grey
    moved, _ = apply(image, np.zeros((1, 2, 2, 1), np.float32), parameters)
    grey = np.array([110, 60, 10]) @ [0.299, 0.587, 0.114]
    assert np.allclose(moved[0, 0, 0], grey, atol=1e-3) and np.allclose(moved[0, 1, 1], 10, atol=1e-3)


JAX_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_augment import _augment_cfg, _eager_path, _marked_batch
import keras
assert keras.backend.backend() == "jax"
images, masks = _eager_path(_augment_cfg(**json.loads(sys.argv[2])), *_marked_batch())
np.savez(sys.argv[3], images=images, masks=masks)
"""


@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (make install-jax)")
@pytest.mark.parametrize("values", [{"flips": True, "rotate90": True, "color": 0.2}, {"affine": 0.1}])
def test_the_jax_and_tensorflow_backends_agree_for_the_same_seeds(values, tmp_path):
    output = tmp_path / "jax.npz"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(Path(__file__).parent), json.dumps(values),
                             str(output)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jax_result = np.load(output)
    tf_images, tf_masks = _eager_path(_augment_cfg(**values), *_marked_batch())
    assert np.abs(jax_result["images"] - tf_images).max() < 0.01
    assert np.mean(jax_result["masks"] != tf_masks) < 0.002  # at most a pixel where bilinear lands on 0.5


def test_each_seed_draws_its_own_parameters_and_the_same_seed_the_same():
    cfg = _augment_cfg(flips=True, rotate90=True, affine=0.1, color=0.2)
    first, again = draw_parameters(cfg, [1, 2, 3], 32), draw_parameters(cfg, [1, 2, 3], 32)
    assert np.array_equal(first, again) and not np.array_equal(first[0], first[1])
    assert np.array_equal(draw_parameters(_augment_cfg(), [1, 2], 32), np.tile(IDENTITY, (2, 1)))


@pytest.mark.parametrize("preset", ["none", "light", "strong"])
def test_presets_build_and_keep_the_contract(compose, preset):
    cfg = compose("train", [f"augment={preset}"]).augment
    assert set(cfg) == {"name", "flips", "rotate90", "affine", "color"} and cfg.name == preset
    images, masks = _marked_batch(4)
    for new_images, new_masks in (_eager_path(cfg, images, masks), _tensorflow_path(cfg, images, masks)):
        assert new_images.shape == images.shape and new_images.dtype == np.float32
        assert new_masks.shape == masks.shape and set(np.unique(new_masks)) <= {0.0, 1.0}


@pytest.mark.parametrize("override, message", [("augment.color=1.5", "augment.color must be in [0, 1.0]"),
                                               ("augment.affine=-0.1", "augment.affine must be in [0, 0.5]")])
def test_strengths_outside_their_ranges_are_config_errors(compose, override, message):
    from skinexp.config.checks import check_train
    from skinexp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_train(compose("train", [override]))
