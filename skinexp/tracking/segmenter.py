"""The `segmenter` pyfunc model: dermoscopy image files in, mask PNGs out (MLflow "models from code").

MLflow copies this file into the logged model and runs it to load it, so it imports only MLflow, NumPy, PIL,
SciPy and Keras, never skinexp: `mlflow.pyfunc.load_model` and `mlflow models serve` need no skinexp.

Input: a DataFrame with one string column `image`, each the base64 of a JPEG (or MPO), PNG or BMP file of at most
SKINEXP_SERVE_MAX_PIXELS pixels (default 40 million), at most SKINEXP_SERVE_MAX_ROWS rows (default 16).
Output: a DataFrame with `mask` (base64 of a 0/255 8-bit PNG at the image's own size, after its EXIF orientation)
and `lesion_fraction` (float, the fraction of mask pixels that are lesion). The model config holds `threshold` and
`keep_largest` (the run's post-processing). Each step is the one `skinexp predict` takes, so both give the same mask.

Rows are decoded and segmented one at a time, each image's size read from its header before any pixel is decoded:
a request holds at most one image's pixels (12-15 bytes each while it is segmented). A bad row is HTTP 400, a row
or an image over a limit HTTP 413, each with one line naming the row; never a traceback.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
import warnings

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

MODEL_NAME = "segmenter"
ARTIFACT = "keras_model"
MAX_PIXELS_ENV, MAX_PIXELS = "SKINEXP_SERVE_MAX_PIXELS", 40_000_000  # a 7300x5500 dermoscopy photograph fits
MAX_ROWS_ENV, MAX_ROWS = "SKINEXP_SERVE_MAX_ROWS", 16
FORMATS = ("JPEG", "MPO", "PNG", "BMP")  # MPO: a JPEG with extra frames (phone cameras); its first frame is read
TOO_LARGE = 413


class BadImage(MlflowException):
    """HTTP 400 (or `status`, 413 for a request over a limit) whose message is exactly our one line.

    MLflow's scoring server prefixes an MlflowException's message with the whole request DataFrame (many lines);
    this message ignores that reassignment, so the client reads only the line that names the row.
    """

    def __init__(self, line: str, status: int = 400):
        self._line, self._status = line, status
        super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

    def get_http_status_code(self) -> int:
        return self._status

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        pass


def limit(name: str, default: int) -> int:
    """A positive integer limit from the environment (`skinexp serve` sets them), else `default`."""
    text = os.environ.get(name, "")
    return int(text) if text.isdigit() and int(text) > 0 else default


def to_rgb(image) -> np.ndarray:
    """A decoded PIL image as (H, W, 3) uint8 as it is meant to be seen: its EXIF orientation applied, 16-bit
    grayscale scaled to 0..255 (not clipped), palette, CMYK, alpha and 1-bit converted. The same steps as
    `skinexp.data.folder.to_rgb`, which `predict` uses (this file may not import skinexp)."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16"):
        wide = np.asarray(image).astype(np.float32)
        gray = np.rint(wide / 257.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in ("I", "F"):
        raise ValueError(f"{image.mode} pixels (32-bit) have no agreed 0..255 scale")
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)


def _reason(error: BaseException) -> str:
    if type(error).__name__ == "UnidentifiedImageError":
        return "bytes no image decoder recognises"
    return f"{type(error).__name__}: {error}".replace("\n", " ")[:200]


def decode_image(text, row: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Row `row`'s base64 image file as (H, W, 3) uint8; BadImage naming the row when it is no image (400) or has
    more than `max_pixels` pixels by its header (413, nothing decoded)."""
    from PIL import Image

    expected = f"row {row}: image must be the base64 of a JPEG, PNG or BMP file"
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadImage(f"{expected}. Received: {_reason(error)}") from None
    try:
        with warnings.catch_warnings():  # the cap below is lower than Pillow's warning threshold
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise BadImage(f"row {row}: the image has more pixels than this endpoint decodes ({max_pixels}, "
                       f"{MAX_PIXELS_ENV}). Received: {_reason(error)}", TOO_LARGE) from None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for broken headers
        raise BadImage(f"{expected}. Received: {_reason(error)}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadImage(f"row {row}: the image has more pixels than this endpoint decodes ({max_pixels}, "
                       f"{MAX_PIXELS_ENV}). Received: {width}x{height} = {width * height} pixels", TOO_LARGE)
    if image.format not in FORMATS:
        raise BadImage(f"{expected}. Received: format {image.format}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            return to_rgb(image)
    except Exception as error:  # truncated data, a bad mode, a decoder error: this row's fault, not the server's
        raise BadImage(f"{expected}. Received: {_reason(error)}") from None


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """(H, W) uint8 {0, 1} -> only its largest 8-connected component (first in row-major order on a tie), as
    `skinexp.evaluation.postprocess.largest_component` keeps it."""
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
        self.max_pixels = limit(MAX_PIXELS_ENV, MAX_PIXELS)
        self.max_rows = limit(MAX_ROWS_ENV, MAX_ROWS)

    # A DataFrame hint: MLflow validates against the logged signature and asks for no other type hints.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        if "image" not in getattr(model_input, "columns", ()):
            raise BadImage(f"the input must have a column `image`. Received: columns "
                           f"{list(getattr(model_input, 'columns', []))}")
        rows = model_input["image"]
        if len(rows) > self.max_rows:
            raise BadImage(f"a request may hold at most {self.max_rows} images ({MAX_ROWS_ENV}); send the rest in "
                           f"further requests. Received: {len(rows)} rows", TOO_LARGE)
        encoded, fractions = [], []
        for row, text in enumerate(rows):  # one image's pixels at a time
            mask = segment(self.model, decode_image(text, row, self.max_pixels), self.size, self.threshold,
                           self.keep_largest)
            encoded.append(encode_png(mask))
            fractions.append(float(mask.mean()))
        return pd.DataFrame({"mask": encoded, "lesion_fraction": fractions})


mlflow.models.set_model(Segmenter())
