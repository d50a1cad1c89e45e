"""Files saved before the package moved into feature rooms still load and predict (tests/saved/).

Saved by the code of commit 3eda716 (2026-12-05) from one epoch of a tiny run with every U-Net option
(`model.filters=2 model.block=residual model.attention=gate model.conv=separable model.norm=group
model.groups=2 model.deep_supervision=true loss.name=bce_dice`, 32 px): `checkpoints/best.keras` (the
kept checkpoint, single output), `checkpoints/last.keras` (the resume checkpoint, with the
deep-supervision heads and the optimizer state) and `segmenter/` (the logged `segmenter` pyfunc model).
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SAVED = Path(__file__).with_name("saved")


def _lesion_image() -> Image.Image:
    """A 40x48 image (not the model's 32 px) of a dark disc on skin colour."""
    rows, cols = np.mgrid[:40, :48]
    image = np.full((40, 48, 3), (200, 160, 140), np.uint8)
    image[(rows - 20) ** 2 + (cols - 24) ** 2 < 100] = (90, 50, 40)
    return Image.fromarray(image)


def test_a_saved_checkpoint_predicts_masks_through_the_predict_command(main, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _lesion_image().save(images / "a.png")
    result = main("predict", f"run={SAVED / 'checkpoints' / 'best.keras'}", f"input={images}",
                  f"output={tmp_path / 'masks'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    mask = np.asarray(Image.open(tmp_path / "masks" / "a.png"))
    assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}


def test_the_saved_resume_checkpoint_loads_with_its_heads_and_optimizer():
    import keras

    import skinexp.model.losses  # noqa: F401
    import skinexp.model.metrics  # noqa: F401
    import skinexp.model.unet  # noqa: F401  (registers the deep-supervision wrapper, losses and metrics)

    model = keras.models.load_model(SAVED / "checkpoints" / "last.keras")
    assert len(model.network_with_heads.outputs) == 2  # the full-resolution mask and the level-2 head
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) > 0
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).shape == (1, 32, 32, 1)


def test_the_saved_segmenter_model_serves_a_mask_through_mlflow():
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(SAVED / "segmenter"))
    buffer = io.BytesIO()
    _lesion_image().save(buffer, format="PNG")
    out = model.predict(pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()]}))
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(out["mask"][0]))))
    assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}
    assert float(out["lesion_fraction"][0]) == pytest.approx(float((mask == 255).mean()))
