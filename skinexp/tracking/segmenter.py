"""The `segmenter` pyfunc model: dermoscopy image files in, mask PNGs out (MLflow "models from code").

MLflow copies this file into the logged model and runs it to load it, so it imports only MLflow, NumPy, PIL,
SciPy and Keras, never skinexp: `mlflow.pyfunc.load_model` and `mlflow models serve` need no skinexp.

Input: a DataFrame with one string column `image`, each the base64 of a JPEG, PNG or BMP file (any size).
Output: a DataFrame with `mask` (base64 of a 0/255 8-bit PNG at the image's own size) and `lesion_fraction`
(float, the fraction of mask pixels that are lesion). The model config holds `threshold` and `keep_largest`
(the run's post-processing). Each step is the one `skinexp predict` takes, so both give the same mask.
"""
from __future__ import annotations

import base64
import binascii
import io

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

MODEL_NAME = "segmenter"
ARTIFACT = "keras_model"


class BadImage(MlflowException):
    """HTTP 400 whose message is exactly our one line.

    MLflow's scoring server prefixes an MlflowException's message with the whole request DataFrame (many lines);
    this message ignores that reassignment, so the client reads only the line that names the row.
    """

    def __init__(self, line: str):
        self._line = line
        super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        pass


def decode_image(text, row: int) -> np.ndarray:
    """Row `row`'s base64 image file as (H, W, 3) uint8; BadImage naming the row when it is no image."""
    from PIL import Image

    try:
        data = base64.b64decode(str(text), validate=True)
        image = Image.open(io.BytesIO(data))
        if image.format not in ("JPEG", "PNG", "BMP"):
            raise ValueError(f"format {image.format}")
        return np.asarray(image.convert("RGB"))
    except (binascii.Error, OSError, ValueError, SyntaxError) as error:
        reason = "bytes no image decoder recognises" if type(error).__name__ == "UnidentifiedImageError" \
            else f"{type(error).__name__}: {error}".replace("\n", " ")[:200]
        raise BadImage(f"row {row}: image must be the base64 of a JPEG, PNG or BMP file. Received: {reason}") \
            from None


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 {0, 1} -> only its largest 8-connected component (first in row-major order on a tie), as
    `skinexp.postprocess.largest_component` keeps it."""
    from scipy import ndimage

    labels, count = ndimage.label(mask > 0, structure=np.ones((3, 3), dtype=bool))
    if not count:
        return np.zeros_like(mask)
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    return (labels == largest).astype(np.uint8)


def segment(model, image: np.ndarray, size: int, threshold: float, keep_largest: bool) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint8 {0, 1}: resize to the model's size (bilinear), predict, resize the
    probabilities back (bilinear), threshold (`>`), optionally keep the largest component."""
    from PIL import Image

    height, width = image.shape[:2]
    resized = image if (height, width) == (size, size) else np.asarray(
        Image.fromarray(image).resize((size, size), Image.BILINEAR))
    probability = np.asarray(model.predict_on_batch(resized[None].astype(np.float32)), np.float32)[0]
    full = np.asarray(Image.fromarray(probability[..., 0], mode="F").resize((width, height), Image.BILINEAR))
    mask = (full > threshold).astype(np.uint8)
    return keep_largest_component(mask) if keep_largest else mask


def encode_png(mask: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mask * 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Segmenter(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import keras

        self.model = keras.models.load_model(context.artifacts[ARTIFACT], compile=False)
        self.size = int(self.model.input_shape[1])
        config = context.model_config or {}
        self.threshold = float(config.get("threshold", 0.5))
        self.keep_largest = bool(config.get("keep_largest", False))

    # A DataFrame hint: MLflow validates against the logged signature and asks for no other type hints.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if "image" not in getattr(model_input, "columns", ()):
            raise BadImage(f"the input must have a column `image`. Received: columns "
                           f"{list(getattr(model_input, 'columns', []))}")
        images = [decode_image(text, row) for row, text in enumerate(model_input["image"])]
        masks = [segment(self.model, image, self.size, self.threshold, self.keep_largest) for image in images]
        return pd.DataFrame({"mask": [encode_png(mask) for mask in masks],
                             "lesion_fraction": [float(mask.mean()) for mask in masks]})


mlflow.models.set_model(Segmenter())
