"""Deep supervision (`model.deep_supervision=true`): auxiliary heads on the decoder's lower levels, in training only.

Each decoder level i = 2..depth (i = 1 is full resolution, where the U-Net's own `mask` output sits) gets a head:
a 1x1 convolution to one logit, bilinear up-sampling by 2^(i-1) to full resolution, a sigmoid. Training minimises
the weighted sum of the configured loss (`loss.name`) of every output against the same full-resolution mask, with
the weights of `output_weights`: 2^-(i-1) for level i, normalised to sum to 1, as nnU-Net (depth 2: 2/3 and 1/3;
depth 4: 8/15, 4/15, 2/15, 1/15). So the training `loss` Keras logs is that weighted sum, while `val_loss`, the
metrics and every prediction are of the full-resolution output alone, comparable with a run without heads.

What a run logs, registers and serves is the single-output U-Net (`DeepSupervision.network`, without the heads):
training replaces its best checkpoint with it when it ends, so evaluate, predict and serve never meet the heads.
The per-epoch `last.keras` keeps the whole `DeepSupervision` model and its optimizer state, for resuming.
"""
from __future__ import annotations

import keras


def output_weights(outputs: int) -> list[float]:
    """Loss weights of the full-resolution output, then of the heads on decoder levels 2, 3, ...: 2^-(i-1) for level
    i, normalised to sum to 1. `outputs` counts all of them (the network's depth)."""
    raw = [0.5**index for index in range(outputs)]
    return [weight / sum(raw) for weight in raw]


@keras.saving.register_keras_serializable(package="skinexp")
class DeepSupervision(keras.Model):
    """A U-Net trained through its full-resolution output and auxiliary heads.

    Args:
        network_with_heads: a functional model mapping images to `[mask, head_2, ..., head_depth]`, each
            `(N, H, W, 1)` float32 probabilities at the input's resolution.

    Called with `training=True` it returns that list (the loss weighs them with `output_weights`); otherwise, as in
    `predict`, `evaluate` and validation, the full-resolution `mask` alone. Metrics are always of `mask`.
    """

    def __init__(self, network_with_heads: keras.Model, **kwargs):
        super().__init__(**{"name": network_with_heads.name, **kwargs})
        self.network_with_heads = network_with_heads
        self.output_weights = output_weights(len(network_with_heads.outputs))
        self.built = True  # its one layer, the functional model, is built

    @property
    def network(self) -> keras.Model:
        """The U-Net alone (images to the full-resolution mask), sharing this model's layers and weights."""
        heads = self.network_with_heads
        return keras.Model(heads.inputs, heads.outputs[0], name=self.name)

    def call(self, images, training=False):
        outputs = self.network_with_heads(images, training=training)
        return outputs if training else outputs[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, (list, tuple)):  # validation: the full-resolution output alone
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        total = 0.0
        for weight, prediction in zip(self.output_weights, y_pred):
            total = total + weight * super().compute_loss(x, y, prediction, sample_weight, training=training)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        mask = y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred
        return super().compute_metrics(x, y, mask, sample_weight)

    def get_config(self):
        return {"name": self.name, "network_with_heads": keras.saving.serialize_keras_object(self.network_with_heads)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        network_with_heads = keras.saving.deserialize_keras_object(config.pop("network_with_heads"))
        return cls(network_with_heads, **config)
