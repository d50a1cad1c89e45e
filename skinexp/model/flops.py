"""Floating-point operations of a model, counted from its layers (for throughput as a fraction of a peak).

Only the convolutions and dense layers are counted: they are the multiply-adds a peak GFLOP/s figure is
quoted for, and they hold all but a few per cent of a U-Net's arithmetic. One multiply-add is 2 operations.
Counted: Conv2D (also the 1x1 shortcuts, attention gates and deep-supervision heads), Conv2DTranspose,
SeparableConv2D (its depthwise 3x3 and its pointwise 1x1), Dense. Left out as memory-bound
element-wise work: batch and group normalisation, activations, pooling, up-sampling (bilinear too),
concatenation, the residual blocks' Add and the attention gates' Add and Multiply.
"""
from __future__ import annotations

import math

TRAINING_FACTOR = 3  # forward, plus the backward pass's two products (gradients of inputs and of weights)


def forward_flops(model) -> int:
    """Operations of one forward pass of one image through `model` (a built Keras model)."""
    import keras

    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.SeparableConv2D):
            height, width = layer.output.shape[1:3]
            channels_in = layer.input.shape[-1]
            depthwise = math.prod(layer.kernel_size) * channels_in * layer.depth_multiplier
            pointwise = channels_in * layer.depth_multiplier * layer.filters
            total += 2 * height * width * (depthwise + pointwise)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            height, width, channels_in = layer.input.shape[1:4]
            total += 2 * height * width * math.prod(layer.kernel_size) * channels_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            channels_in = layer.input.shape[-1]
            height, width = layer.output.shape[1:3]
            total += 2 * height * width * math.prod(layer.kernel_size) * channels_in * layer.filters // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.output.shape[1:-1] or (1,)) * layer.input.shape[-1] * layer.units
    return int(total)


def training_flops_per_image(model) -> int:
    """Operations one training step spends per image: forward and backward."""
    return TRAINING_FACTOR * forward_flops(model)


def _layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # nested models
            yield from _layers(layer)
        else:
            yield layer
