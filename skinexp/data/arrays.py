"""Chunked conversion of stored arrays to the sources' contract, without a float32 copy of the whole set.

Images become `(N, S, S, 3)` uint8 0..255 and masks `(N, S, S, 1)` uint8 {0, 1}, S = `dataset.image_size`.
Arrays that already match (uint8 at the right size, {0, 1} masks) are returned as they are, so a
memory-mapped file stays on disk.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from skinexp.errors import DataError

CHUNK = 64  # images converted at a time: bounds the float32 temporaries to a few MB


def resize(batch: np.ndarray, size: int, resample: int) -> np.ndarray:
    """`(n, H, W, C)` uint8 -> `(n, size, size, C)` uint8 with PIL (`Image.BILINEAR` images, `Image.NEAREST` masks)."""
    if batch.shape[1:3] == (size, size):
        return batch
    out = np.empty((len(batch), size, size, batch.shape[-1]), np.uint8)
    for i, item in enumerate(batch):
        plane = item[..., 0] if item.shape[-1] == 1 else item
        resized = np.asarray(Image.fromarray(plane).resize((size, size), resample))
        out[i] = resized.reshape(size, size, -1)
    return out


def binarise(mask: np.ndarray, maximum) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's rule: divide by the maximum, threshold at 0.5.

    Returns (uint8 {0, 1} of the same shape, per-mask flag "had values other than 0 and the maximum").
    """
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    axes = tuple(range(1, mask.ndim))
    other_values = np.any((mask != 0) & (mask != maximum), axis=axes)
    return (mask > maximum / 2).astype(np.uint8), other_values


def _chunks(count: int):
    for start in range(0, count, CHUNK):
        yield slice(start, min(start + CHUNK, count))


def _value_range(array: np.ndarray, name: str) -> tuple[float, float]:
    """(min, max) over the array, read in chunks; DataError at the first NaN or inf."""
    low, high = np.inf, -np.inf
    for part in _chunks(len(array)):
        block = np.asarray(array[part])
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            bad = part.start + int(np.argmax(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
            raise DataError(f"{name} must hold finite values. Received: NaN or inf at index {bad}")
        if block.size:
            low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high


def images_to_uint8(array: np.ndarray, size: int, name: str) -> np.ndarray:
    """`(N, H, W, 3)` uint8, integer or float images in 0..255 or 0..1 (detected) -> `(N, size, size, 3)` uint8.

    Float images whose maximum is at most 1 are taken as 0..1 and scaled by 255. Returns `array`
    itself when it is already uint8 at `size`.
    """
    if array.dtype == np.uint8 and array.shape[1:3] == (size, size):
        return array
    scale = pixel_scale(array, name)
    out = np.empty((len(array), size, size, 3), np.uint8)
    for part in _chunks(len(array)):
        out[part] = resize(scaled_uint8(np.asarray(array[part]), scale), size, Image.BILINEAR)
    return out


def pixel_scale(array: np.ndarray, name: str) -> float:
    """What turns the array's pixels into 0..255: 255 for floats in 0..1, else 1; DataError outside 0..255."""
    if array.dtype == np.uint8:
        return 1.0
    low, high = _value_range(array, name)
    if low < 0 or high > 255:
        raise DataError(f"{name} must hold pixel values in 0..255 or 0..1. Received: values from {low:g} "
                        f"to {high:g} ({array.dtype})")
    return 255.0 if array.dtype.kind == "f" and high <= 1.0 else 1.0


def scaled_uint8(block: np.ndarray, scale: float) -> np.ndarray:
    """Pixels times `scale` (from `pixel_scale`), rounded to uint8 0..255; uint8 comes back as it is."""
    if block.dtype == np.uint8:
        return block
    return np.clip(np.rint(block.astype(np.float32) * scale), 0, 255).astype(np.uint8)


def masks_to_binary(array: np.ndarray, size: int, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """`(N, H, W)` or `(N, H, W, 1)` masks of any numeric dtype -> `(N, size, size, 1)` uint8 {0, 1}.

    Binarised as the notebook does: divided by the maximum of the whole array, thresholded at 0.5.
    Returns (masks, foreground fraction per mask, number of masks that had values other than 0 and the
    maximum). A uint8 {0, 1} array at `size` is returned as a view, not copied.
    """
    masks = array.reshape(*array.shape[:3], 1) if array.ndim == 3 else array
    _, maximum = _value_range(masks, name)
    maximum = max(maximum, 0.0)
    keep = masks.dtype == np.uint8 and maximum <= 1 and masks.shape[1:3] == (size, size)
    out = masks if keep else np.empty((len(masks), size, size, 1), np.uint8)
    foreground = np.empty(len(masks), np.float64)
    other_values = 0
    for part in _chunks(len(masks)):
        binary, flags = binarise(np.asarray(masks[part]), maximum)
        foreground[part] = binary.reshape(len(binary), -1).mean(axis=1)
        other_values += int(flags.sum())
        if not keep:
            out[part] = resize(binary, size, Image.NEAREST)
    return out, foreground, other_values
