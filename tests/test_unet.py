"""The U-Net builder: the notebook's parameter count, shapes, and how depth/filters/options change them."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def build():
    from skinexp.models.unet import build_unet

    return build_unet


def test_unet_seed_has_the_notebooks_parameter_count(build, compose):
    model = build(compose("train", ["model=unet_seed"]).model, 256)
    assert model.count_params() == 31_032_837


@pytest.mark.parametrize("upsample", ["upsampling", "transpose"])
@pytest.mark.parametrize("batchnorm", [False, True])
def test_output_is_a_probability_map_of_the_input_size(build, compose, upsample, batchnorm):
    cfg = compose("train", ["model.depth=2", "model.filters=4", f"model.upsample={upsample}",
                            f"model.batchnorm={batchnorm}"]).model
    model = build(cfg, 32)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    out = model.predict(images, verbose=0)
    assert out.shape == (2, 32, 32, 1) and out.dtype == np.float32
    head = model.get_layer("mask")
    assert head.activation.__name__ == "sigmoid" and head.compute_dtype == "float32"
    assert not np.allclose(out[0], out[1])  # the output depends on the image


def test_depth_and_filters_change_the_network(build, compose):
    def summary(overrides, size=64):
        model = build(compose("train", overrides).model, size)
        bottleneck = model.get_layer("bottleneck_conv2").output.shape
        return model.count_params(), bottleneck

    params_small, bottleneck_small = summary(["model.depth=2", "model.filters=4"])
    params_wide, bottleneck_wide = summary(["model.depth=2", "model.filters=8"])
    params_deep, bottleneck_deep = summary(["model.depth=3", "model.filters=4"])
    assert bottleneck_small[1:] == (16, 16, 16)  # 64 / 2^2, 4 * 2^2 filters
    assert bottleneck_wide[1:] == (16, 16, 32)
    assert bottleneck_deep[1:] == (8, 8, 32)
    assert params_small < params_wide and params_small < params_deep
    # Widths double, so parameters scale about 4x with filters.
    assert 3.5 < params_wide / params_small < 4.5


def test_dropout_sits_after_the_two_deepest_blocks(build, compose):
    model = build(compose("train", ["model=unet_seed"]).model, 64)
    dropouts = [layer.name for layer in model.layers if layer.__class__.__name__ == "Dropout"]
    assert dropouts == ["down4_dropout", "bottleneck_dropout"]
