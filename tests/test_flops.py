"""Training FLOPs per image, counted from a model's layers: hand-checked layers, and the U-Net the issue measured."""
from __future__ import annotations

import keras
import pytest

from skinexp.models.flops import forward_flops, training_flops_per_image


def test_each_layer_kind_counts_two_operations_per_multiply_add():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 outputs x 4 filters x 3*3*3 taps
    strided = keras.layers.Conv2D(2, 1, strides=2)(conv)  # 4*4 outputs x 2 filters x 4 taps
    up = keras.layers.Conv2DTranspose(5, 2, strides=2)(strided)  # 4*4 inputs x 2 channels x 2*2 x 5
    pooled = keras.layers.GlobalAveragePooling2D()(up)  # not counted
    outputs = keras.layers.Dense(7)(pooled)  # 5 x 7
    model = keras.Model(inputs, outputs)
    expected = 2 * (8 * 8 * 4 * 27 + 4 * 4 * 2 * 4 + 4 * 4 * 2 * 4 * 5 + 5 * 7)
    assert forward_flops(model) == expected
    assert training_flops_per_image(model) == 3 * expected


def test_the_default_unet_at_128_px_costs_5_15_gflop_per_training_image(compose):
    from skinexp.models.unet import build_unet

    cfg = compose("train", [])
    assert training_flops_per_image(build_unet(cfg.model, 128)) / 1e9 == pytest.approx(5.15, abs=0.01)
