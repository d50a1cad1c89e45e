"""The U-Net builder: the notebook's parameter count, shapes, and how depth/filters/options change them."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def build():
    from skinexp.model.unet import build_unet

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


# --- the ablation options: hand-counted parameters at depth 2, widths 4, 8, 16, 32 px ----------------------------
# The plain network: down1 3->4->4 (112 + 148), down2 4->8->8 (296 + 584), bottleneck 8->16->16 (1,168 + 2,320),
# up2 2x2 up-conv 16->8 (520) and 16->8->8 (1,160 + 584), up1 8->4 (132) and 8->4->4 (292 + 148), mask 4->1 (5).
PLAIN = 7_469
EVERY_OPTION = ["model.block=residual", "model.attention=gate", "model.conv=separable", "model.norm=group",
                "model.groups=2", "model.deep_supervision=true"]
OPTIONS = {
    "plain": ([], PLAIN),
    # 1x1 shortcuts where widths change: 3*4+4, 4*8+8, 8*16+16, 16*8+8 (after the concatenation), 8*4+4.
    "residual": (["model.block=residual"], PLAIN + 16 + 40 + 144 + 136 + 36),
    # gates at up2 (8 channels, 4 inside): 8*4 + (8*4+4) + (4+1); at up1 (4 channels, 2 inside): 4*2 + (4*2+2) + (2+1).
    "gate": (["model.attention=gate"], PLAIN + 73 + 21),
    # 9*in + in*out + out per 3x3 convolution: 43 + 56, 76 + 144, 216 + 416, 520 + 280 + 144, 132 + 108 + 56, 5.
    "separable": (["model.conv=separable"], 2_196),
    # down1's first convolution standard again: 3*9*4+4 = 112 instead of 27 + 12 + 4 = 43.
    "separable_standard_stem": (["model.conv=separable", "model.stem_conv=standard"], 2_196 - 43 + 112),
    # only down1's first convolution separable: 43 instead of 112.
    "separable_stem": (["model.stem_conv=separable"], PLAIN - 112 + 43),
    # each 3x3 convolution drops its bias (width) for a gamma and beta (2 * width): + 4+4+8+8+16+16+8+8+4+4.
    "group": (["model.norm=group", "model.groups=2"], PLAIN + 80),
    # batch normalisation adds a moving mean and variance as well: + 3 * 80.
    "batch": (["model.norm=batch"], PLAIN + 240),
    # the input standardised instead of rescaled: LayerNormalization without scale or offset has no weights.
    "channel_input": (["model.input_norm=channel"], PLAIN),
    # one head, on up2 (8 channels): 8 + 1.
    "deep_supervision": (["model.deep_supervision=true"], PLAIN + 9),
    # the bottleneck at 12 instead of 16: 8*9*12+12 + 12*9*12+12 = 2,184 (not 3,488); up2's up-conv 392 (not 520).
    "widths": (["model.widths=[4,8,12]"], PLAIN - 1_304 - 128),
    # separable (2,196) + group norm (+80) + shortcuts without bias, with group norm (20, 48, 160, 144, 40)
    # + the gates (94) + the head (9).
    "all": (EVERY_OPTION, 2_196 + 80 + 412 + 94 + 9),
}


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_adds_its_hand_counted_parameters(build, compose, option):
    overrides, parameters = OPTIONS[option]
    assert build(compose("train", ["model.depth=2", "model.filters=4", *overrides]).model, 32).count_params() == \
        parameters


def test_the_light_config_has_58_236_parameters(build, compose):
    """Widths 8, 16, 24, 32, 48, 64, separable convolutions without bias, group norm (2 per channel):
    encoder 219 + 664 + 1,416 + 2,424 + 4,752, bottleneck 8,432; decoder levels 5..1 with their 2x2 up-convolutions
    20,736 + 10,240 + 5,568 + 2,816 + 960; mask 9."""
    from skinexp.config.checks import check_model

    cfg = compose("train", ["model=unet_light", "dataset.image_size=256"])
    check_model(cfg.model, 256)
    model = build(cfg.model, 256)
    assert model.count_params() == 17_907 + 40_320 + 9 == 58_236
    assert model.get_layer("bottleneck_conv2").output.shape[1:] == (8, 8, 64)


def test_batchnorm_true_is_norm_batch(build, compose):
    def kinds(overrides):
        model = build(compose("train", ["model.depth=2", "model.filters=4", *overrides]).model, 32)
        return model.count_params(), [layer.__class__.__name__ for layer in model.layers]

    assert kinds(["model.batchnorm=true"]) == kinds(["model.norm=batch"])
    assert kinds(["model.batchnorm=true"]) == kinds(["model.batchnorm=true", "model.norm=batch"])


def test_widths_set_every_level_and_override_filters(build, compose):
    model = build(compose("train", ["model.depth=2", "model.filters=64", "model.widths=[3,5,7]"]).model, 32)
    assert [model.get_layer(name).output.shape[-1] for name in
            ("down1_conv2", "down2_conv2", "bottleneck_conv2", "up2_conv2", "up1_conv2")] == [3, 5, 7, 5, 3]


def test_an_attention_gate_weighs_each_skip_pixel_by_a_coefficient_in_0_1(build, compose):
    import keras

    model = build(compose("train", ["model.depth=2", "model.filters=4", "model.attention=gate"]).model, 32)
    probe = keras.Model(model.input, [model.get_layer("up1_gate").output, model.get_layer("up1_gated").output,
                                      model.get_layer("down1_conv2").output])
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    coefficients, gated, skip = probe.predict(images, verbose=0)
    assert coefficients.shape == (2, 32, 32, 1) and ((coefficients > 0) & (coefficients < 1)).all()
    np.testing.assert_allclose(gated, skip * coefficients, rtol=1e-5, atol=1e-6)


def test_input_norm_rescales_or_standardises_each_image_as_stated(build, compose):
    """A hand-made 32x32 image: red 0 on the left half and 200 on the right, green 50 everywhere, blue 100 and 140.
    `channel` standardises each channel apiece (red and blue to -1 and +1, the flat green to 0); `image` over all
    six values: mean 90, deviations -90, 110, -40, -40, 10, 50, variance 26,000 / 6."""
    import keras

    image = np.zeros((1, 32, 32, 3), "float32")
    image[..., :16, :] = [0, 50, 100]
    image[..., 16:, :] = [200, 50, 140]

    def first_layer(norm):
        model = build(compose("train", ["model.depth=2", "model.filters=4", f"model.input_norm={norm}"]).model, 32)
        return keras.Model(model.input, model.layers[1].output).predict(image, verbose=0)[0]

    np.testing.assert_allclose(first_layer("rescale"), image[0] / 255, rtol=1e-6)
    channel = first_layer("channel")
    np.testing.assert_allclose(channel[:, :16], np.broadcast_to([-1, 0, -1], (32, 16, 3)), atol=1e-5)
    np.testing.assert_allclose(channel[:, 16:], np.broadcast_to([1, 0, 1], (32, 16, 3)), atol=1e-5)
    whole = first_layer("image")
    sd = np.sqrt(26_000 / 6)
    np.testing.assert_allclose(whole[:, :16], np.broadcast_to(np.array([-90, -40, 10]) / sd, (32, 16, 3)), atol=1e-5)
    np.testing.assert_allclose(whole[:, 16:], np.broadcast_to(np.array([110, -40, 50]) / sd, (32, 16, 3)), atol=1e-5)


def test_a_colour_cast_does_not_reach_a_channel_standardised_network(build, compose):
    """A per-channel gain and offset (a different light, another camera's white balance) leaves `channel`'s
    prediction as it was; `image` follows only a gain common to all channels; `rescale` follows any change."""
    rng = np.random.default_rng(0)
    images = rng.uniform(20, 200, (2, 32, 32, 3)).astype("float32")
    cast = images * np.array([1.2, 0.9, 0.7], "float32") + np.array([10, 0, -5], "float32")
    dimmer = images * 0.6

    def predictions(norm, *batches):
        model = build(compose("train", ["model.depth=2", "model.filters=4", f"model.input_norm={norm}"]).model, 32)
        return [model.predict(batch, verbose=0) for batch in batches]

    plain, under_cast = predictions("channel", images, cast)
    np.testing.assert_allclose(under_cast, plain, atol=1e-4)
    plain, under_cast, dimmed = predictions("image", images, cast, dimmer)
    np.testing.assert_allclose(dimmed, plain, atol=1e-4)
    assert np.abs(under_cast - plain).max() > 1e-3
    plain, dimmed = predictions("rescale", images, dimmer)
    assert np.abs(dimmed - plain).max() > 1e-3


def test_a_residual_block_adds_its_input_or_its_1x1_projection(build, compose):
    model = build(compose("train", ["model.depth=2", "model.filters=4", "model.widths=[4,4,8]",
                                    "model.block=residual"]).model, 32)
    names = {layer.name for layer in model.layers}
    assert "down1_shortcut" in names  # 3 image channels -> 4
    assert "down2_shortcut" not in names  # 4 -> 4: the identity
    assert "up1_shortcut" in names  # the concatenation's 8 -> 4
    add = model.get_layer("down2_add")
    assert [tensor.name for tensor in add.input][0] == model.get_layer("down1_pool").output.name


def test_deep_supervision_weighs_the_heads_as_stated(compose):
    import keras

    from skinexp.model.deep_supervision import output_weights
    from skinexp.model.unet import build_unet

    assert output_weights(2) == pytest.approx([2 / 3, 1 / 3])
    assert output_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    assert output_weights(4) == pytest.approx([8 / 15, 4 / 15, 2 / 15, 1 / 15])
    model = build_unet(compose("train", ["model.depth=3", "model.filters=4", "model.deep_supervision=true"]).model, 32)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    training = model(images, training=True)
    assert [tuple(out.shape) for out in training] == [(2, 32, 32, 1)] * 3  # mask, then heads on up2 and up3
    assert model.predict(images, verbose=0).shape == (2, 32, 32, 1)  # inference: the mask alone
    np.testing.assert_allclose(model.network.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    # BCE against all-ones masks, weights 4/7, 2/7, 1/7:
    # 4/7 of -ln(1/2) + 2/7 of -ln(1/4) + 1/7 of -ln(1/8) = 11/7 ln 2.
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy())
    ones = np.ones((2, 32, 32, 1), "float32")
    outputs = [ones * 0.5, ones * 0.25, ones * 0.125]
    assert float(model.compute_loss(images, ones, outputs)) == pytest.approx(11 / 7 * np.log(2), rel=1e-4)
    assert float(model.compute_loss(images, ones, outputs[0])) == pytest.approx(np.log(2), rel=1e-4)  # validation


# each new layer, then all of them
TRAINED = ["residual", "gate", "separable", "group", "channel_input", "deep_supervision", "all"]


@pytest.mark.parametrize("option", TRAINED)
def test_each_option_trains_saves_and_loads_as_keras(compose, tmp_path, option):
    """Two steps of the real compiled training model, saved and loaded back (as resuming does) with its optimizer,
    and one more step; with deep supervision also the single-output U-Net that runs log, which loads without
    skinexp. (Eager calls, not predict: a tiny model's predict spends its time tracing.)"""
    import json
    import zipfile

    import keras

    from skinexp.training.train import build_compiled

    overrides, parameters = OPTIONS[option]
    cfg = compose("train", ["dataset.image_size=32", "model.depth=2", "model.filters=4", "train.epochs=1",
                            "optim.lr=1e-3", *overrides])
    model = build_compiled(cfg, steps_per_epoch=2, total_steps=4)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
    masks = (images[..., :1] > 127).astype("float32")

    def predict(network):
        return keras.ops.convert_to_numpy(network(images[:2], training=False))

    before = predict(model)
    history = model.fit(images, masks, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and not np.allclose(predict(model), before)
    model.save(tmp_path / "last.keras")
    loaded = keras.models.load_model(tmp_path / "last.keras")
    assert loaded.count_params() == parameters and int(loaded.optimizer.iterations.numpy()) == 2
    np.testing.assert_allclose(predict(loaded), predict(model), atol=1e-5)
    loaded.fit(images[:4], masks[:4], batch_size=4, epochs=1, verbose=0)  # resumes
    if "model.deep_supervision=true" in overrides:
        model.network.save(tmp_path / "best.keras")
        with zipfile.ZipFile(tmp_path / "best.keras") as archive:
            config = archive.read("config.json").decode()
        assert "skinexp" not in config and json.loads(config)["class_name"] == "Functional"
        served = keras.models.load_model(tmp_path / "best.keras", compile=False)
        assert len(served.outputs) == 1 and served.count_params() == parameters - 9
        np.testing.assert_allclose(predict(served), predict(model), atol=1e-5)


def test_deep_supervision_trains_under_xla_in_mixed_bfloat16(compose):
    """The heads run in float32, as the output layer does: with bf16 heads the resize gradient came back in float32
    and met the bf16 decoder gradient in one sum, which XLA refused ("different precisions"), so
    `train.jit_compile=true` died on a bf16 CPU whenever deep supervision was on."""
    import keras

    from skinexp.training.train import build_compiled

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        cfg = compose("train", ["dataset.image_size=32", "model.depth=2", "model.filters=4", "train.epochs=1",
                                "model.deep_supervision=true", "train.jit_compile=true"])
        model = build_compiled(cfg, steps_per_epoch=2, total_steps=2)
        images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
        history = model.fit(images, (images[..., :1] > 127).astype("float32"), batch_size=4, epochs=1, verbose=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.isfinite(history.history["loss"][0])
    heads = {layer.name: layer.compute_dtype for layer in model._flatten_layers() if layer.name.startswith("aux")}
    assert heads == {"aux2_logit": "float32", "aux2_upsample": "float32", "aux2": "float32"}


def test_a_deeply_supervised_run_logs_the_u_net_without_its_heads(main, tmp_path, store):
    import zipfile

    from mlflow.tracking import MlflowClient

    from conftest import TINY

    result = main("train", *TINY, "model.deep_supervision=true", "model.attention=gate", *store["overrides"],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store["uri"])
    (run,) = client.search_runs(["0"]) or client.search_runs(
        [e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED" and run.data.params["model.deep_supervision"] == "True"
    checkpoint = client.download_artifacts(run.info.run_id, "checkpoints/best.keras", str(tmp_path / "download"))
    with zipfile.ZipFile(checkpoint) as archive:
        config = archive.read("config.json").decode()
    assert '"class_name": "Functional"' in config[:200] and "aux2" not in config and "DeepSupervision" not in config
    assert run.data.tags["model_parameters"] == str(OPTIONS["gate"][1])  # TINY's U-Net with gates, no heads


# Trains each option in TRAINED for two steps on JAX, saves and loads it, and prints what it found as JSON.
JAX_SCRIPT = """
import json, sys, tempfile
from pathlib import Path
import keras, numpy as np
from skinexp.training import runtime
from skinexp.config.compose import compose
from skinexp.training.train import build_compiled
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
masks = (images[..., :1] > 127).astype("float32")
found = {}
for option, overrides in json.loads(sys.argv[1]).items():
    cfg = compose("train", ["dataset.image_size=32", "model.depth=2", "model.filters=4", "train.epochs=1",
                            "optim.lr=1e-3", *overrides])
    runtime.configure_runtime(cfg.train, 0)  # as training does: keeps TensorFlow out of a JAX process
    model = build_compiled(cfg, steps_per_epoch=2, total_steps=4)
    loss = model.fit(images, masks, batch_size=4, epochs=1, verbose=0).history["loss"][0]
    path = Path(tempfile.mkdtemp()) / "last.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded.fit(images[:4], masks[:4], batch_size=4, epochs=1, verbose=0)
    served = getattr(model, "network", model)
    served.save(path.with_name("best.keras"))
    served = keras.models.load_model(path.with_name("best.keras"), compile=False)
    found[option] = {"parameters": loaded.count_params(), "loss": float(loss), "outputs": len(served.outputs),
                     "same": bool(np.allclose(served.predict(images, verbose=0), model.predict(images, verbose=0),
                                              atol=1e-5))}
print(json.dumps({"found": found, "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.mark.jax
@pytest.mark.usefixtures("jax_installed")
@pytest.mark.timeout(900)  # every option trained on JAX in one subprocess: 270 s on 2 busy cores
def test_each_option_trains_saves_and_loads_on_jax():
    import json
    import os
    import subprocess
    import sys

    options = {option: OPTIONS[option][0] for option in TRAINED}
    env = {**{key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}, "KERAS_BACKEND": "jax",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(options)], capture_output=True, text=True,
                            timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tensorflow"] is False
    for option in TRAINED:
        found = report["found"][option]
        assert found["parameters"] == OPTIONS[option][1] and np.isfinite(found["loss"]), option
        assert found["outputs"] == 1 and found["same"], option
