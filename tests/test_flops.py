"""Training FLOPs per image, counted from a model's layers: hand-checked layers, and the U-Net the issue measured."""
from __future__ import annotations

import keras
import pytest

from skinexp.model.flops import forward_flops, training_flops_per_image


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
    from skinexp.model.unet import build_unet

    cfg = compose("train", [])
    assert training_flops_per_image(build_unet(cfg.model, 128)) / 1e9 == pytest.approx(5.15, abs=0.01)


def test_a_separable_convolution_counts_its_depthwise_and_pointwise_products():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.SeparableConv2D(4, 3, padding="same")(inputs)  # 8*8 x (3*3*3 depthwise + 3*4 pointwise)
    assert forward_flops(keras.Model(inputs, outputs)) == 2 * 8 * 8 * (27 + 12) == 4_992


def test_normalisation_merges_and_upsampling_count_nothing():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.GroupNormalization(2)(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Add()([inputs, x])
    x = keras.layers.Multiply()([x, keras.layers.Activation("sigmoid")(x)])
    outputs = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    assert forward_flops(keras.Model(inputs, outputs)) == 0


# The plain U-Net at depth 2, widths 4, 8, 16, 32 px, in multiply-adds per output pixel x pixels: down1
# (27 + 36) * 4 x 1,024, down2 (36 + 72) * 8 x 256, bottleneck (72 + 144) * 16 x 64, up2 2x2 up-conv 16*4*8 and
# (144 + 72) * 8 x 256, up1 8*4*4 and (72 + 36) * 4 x 1,024, mask 4 x 1,024: 1,851,392 multiply-adds.
PLAIN = 2 * 1_851_392
UNET_FLOPS = {
    "plain": ([], PLAIN),
    # 9*in + in*out per pixel: (39 + 52) x 1,024, (68 + 136) x 256, (200 + 400) x 64, 512 + 408 x 256,
    # 128 + 156 x 1,024, 4 x 1,024 (the up-convolutions and the mask stay standard).
    "separable": (["model.conv=separable"], 2 * 714_240),
    # down1's first convolution standard again: 27 * 4 instead of 27 + 12 per pixel, x 1,024.
    "separable_standard_stem": (["model.conv=separable", "model.stem_conv=standard"], 2 * (714_240 + 69 * 1_024)),
    # 1x1 shortcuts: 3*4 x 1,024, 4*8 x 256, 8*16 x 64, 16*8 x 256, 8*4 x 1,024.
    "residual": (["model.block=residual"], PLAIN + 2 * 94_208),
    # gates: up2 (8*4 + 8*4 + 4*1) x 256, up1 (4*2 + 4*2 + 2*1) x 1,024.
    "gate": (["model.attention=gate"], PLAIN + 2 * (17_408 + 18_432)),
    # the head on up2: 8*1 x 256.
    "deep_supervision": (["model.deep_supervision=true"], PLAIN + 2 * 2_048),
    "group": (["model.norm=group", "model.groups=2"], PLAIN),  # normalisation is not counted
    "channel_input": (["model.input_norm=channel"], PLAIN),  # nor the input's standardisation
    "all": (["model.conv=separable", "model.block=residual", "model.attention=gate", "model.deep_supervision=true",
             "model.norm=group", "model.groups=2"], 2 * (714_240 + 94_208 + 35_840 + 2_048)),
}


@pytest.mark.parametrize("option", UNET_FLOPS)
def test_each_u_net_option_costs_its_hand_counted_flops(compose, option):
    from skinexp.model.unet import build_unet

    overrides, flops = UNET_FLOPS[option]
    model = build_unet(compose("train", ["model.depth=2", "model.filters=4", *overrides]).model, 32)
    assert forward_flops(model) == flops
