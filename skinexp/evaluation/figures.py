"""Figures: sample-mask panels (image | truth | prediction | overlay), training curves, the notebook's grid."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

TRUTH_COLOUR = np.array([0, 255, 0], dtype=np.float32)
PREDICTION_COLOUR = np.array([255, 0, 0], dtype=np.float32)


def _boundary(mask: np.ndarray) -> np.ndarray:
    mask = mask.astype(bool)
    return mask & ~ndimage.binary_erosion(mask, iterations=1, border_value=0)


def overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Image (H, W, 3) uint8 with the prediction tinted red and the truth outlined in green."""
    out = image.astype(np.float32)
    predicted = prediction[..., 0].astype(bool)
    out[predicted] = 0.6 * out[predicted] + 0.4 * PREDICTION_COLOUR
    out[_boundary(truth[..., 0])] = TRUTH_COLOUR
    return out.astype(np.uint8)


def sample_panel(images: np.ndarray, truths: np.ndarray, predictions: np.ndarray, gap: int = 2) -> np.ndarray:
    """One uint8 RGB picture: a row per sample, columns image | truth | prediction | overlay.

    Args:
        images: (N, H, W, 3) uint8. truths, predictions: (N, H, W, 1) in {0, 1}.
    """
    rows = []
    for image, truth, prediction in zip(images, truths, predictions):
        truth_rgb = np.repeat(truth.astype(np.uint8) * 255, 3, axis=-1)
        prediction_rgb = np.repeat(prediction.astype(np.uint8) * 255, 3, axis=-1)
        cells = [image, truth_rgb, prediction_rgb, overlay(image, truth, prediction)]
        spacer = np.full((image.shape[0], gap, 3), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, spacer)][:-1], axis=1))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def close(figure) -> None:
    """Free a figure once it is saved or logged (pyplot keeps every open figure alive)."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def curves_figure(history: dict[str, list[float]]):
    """The notebook's curves: loss, accuracy and IoU per epoch, train vs validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, name in zip(axes, ("loss", "accuracy", "iou")):
        epochs = range(1, len(history.get(name, [])) + 1)
        ax.plot(epochs, history.get(name, []), "o-", label=f"train {name}")
        ax.plot(epochs, history.get(f"val_{name}", []), "s-", label=f"val {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def notebook_figure(images: np.ndarray, truths: np.ndarray, predictions: np.ndarray, titles: list[str],
                    title: str = ""):
    """The notebook's figure, extended: rows image / ground truth / prediction / overlay, one column per image.

    Args:
        images: (N, H, W, 3) uint8. truths, predictions: (N, H, W, 1) in {0, 1}. titles: N column titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, len(images))
    fig, axes = plt.subplots(4, columns, figsize=(2.6 * columns, 10.8), squeeze=False)
    rows = ("image", "ground truth", "prediction", "overlay")
    for col in range(columns):
        if col >= len(images):
            break
        cells = (images[col], truths[col][..., 0], predictions[col][..., 0],
                 overlay(images[col], truths[col], predictions[col]))
        for row, cell in enumerate(cells):
            ax = axes[row, col]
            ax.imshow(cell, cmap="gray" if cell.ndim == 2 else None, vmin=0, vmax=1 if cell.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(rows[row])
        axes[0, col].set_title(titles[col], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
