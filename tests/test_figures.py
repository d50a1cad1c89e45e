"""Figures (skinexp.evaluation.figures): the sample panel's layout, the overlay's colours, the curves and the notebook
grid."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from skinexp.evaluation.figures import curves_figure, notebook_figure, overlay, sample_panel

GREY, GREEN, TINTED = [100, 100, 100], [0, 255, 0], [162, 60, 60]  # tinted: 0.6 * 100 + 0.4 * (255, 0, 0)


def _square_truth(size: int = 5) -> np.ndarray:
    truth = np.zeros((size, size, 1), np.uint8)
    truth[1:4, 1:4] = 1  # 3x3: its outline is the 8 outer pixels, (2, 2) is inside
    return truth


@pytest.fixture
def figures():
    made = []
    yield made
    for figure in made:
        plt.close(figure)


def test_overlay_tints_the_prediction_red_and_outlines_the_truth_green():
    image = np.full((5, 5, 3), 100, np.uint8)
    prediction = np.zeros((5, 5, 1), np.uint8)
    prediction[0, 0] = prediction[2, 2] = prediction[1, 1] = 1
    out = overlay(image, _square_truth(), prediction)
    assert out.dtype == np.uint8 and out.shape == (5, 5, 3)
    assert out[0, 0].tolist() == TINTED and out[2, 2].tolist() == TINTED  # predicted, not on the outline
    assert out[1, 1].tolist() == GREEN  # the outline is drawn over the tint
    assert all(out[r, c].tolist() == GREEN for r, c in [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)])
    assert out[4, 4].tolist() == GREY and out[0, 2].tolist() == GREY
    assert int((out == GREEN).all(axis=-1).sum()) == 8


def test_sample_panel_is_a_row_per_sample_of_four_cells_with_white_gaps():
    count, height, width, gap = 3, 5, 6, 2
    rng = np.random.default_rng(0)
    images = rng.integers(0, 200, (count, height, width, 3), dtype=np.uint8)
    truths = np.zeros((count, height, width, 1), np.uint8)
    truths[1, 1:4, 1:4] = 1
    predictions = np.zeros_like(truths)
    predictions[2, 0, 0] = 1
    panel = sample_panel(images, truths, predictions, gap=gap)
    assert panel.dtype == np.uint8
    assert panel.shape == (count * height + (count - 1) * gap, 4 * width + 3 * gap, 3)  # (19, 30, 3)

    def cell(row: int, column: int) -> np.ndarray:
        top, left = row * (height + gap), column * (width + gap)
        return panel[top:top + height, left:left + width]

    assert np.array_equal(cell(1, 0), images[1])
    assert np.array_equal(cell(1, 1), np.repeat(truths[1] * 255, 3, axis=-1))
    assert np.array_equal(cell(2, 2)[..., 0], predictions[2, ..., 0] * 255)
    assert np.array_equal(cell(1, 3), overlay(images[1], truths[1], predictions[1]))
    assert (panel[:, width:width + gap] == 255).all()  # the gap between columns
    assert (panel[height:height + gap] == 255).all()  # and between rows


def test_curves_are_loss_accuracy_and_iou_each_train_against_val(figures):
    history = {"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.7, 0.6], "accuracy": [0.6, 0.8, 0.9],
               "val_accuracy": [0.5, 0.7, 0.8], "iou": [0.1, 0.3, 0.5], "val_iou": [0.05, 0.2, 0.4]}
    figure = curves_figure(history)
    figures.append(figure)
    assert [ax.get_title() for ax in figure.axes] == ["loss", "accuracy", "iou"]
    for ax, name in zip(figure.axes, ("loss", "accuracy", "iou")):
        train, val = ax.get_lines()
        assert len(ax.get_lines()) == 2
        assert (train.get_label(), val.get_label()) == (f"train {name}", f"val {name}")
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == history[name] and list(val.get_ydata()) == history[f"val_{name}"]


def test_notebook_figure_is_four_labelled_rows_by_one_column_per_image(figures):
    count = 3
    images = np.full((count, 5, 5, 3), 100, np.uint8)
    truths = np.stack([_square_truth()] * count)
    predictions = np.zeros_like(truths)
    titles = ["ISIC_1 iou 0.50", "ISIC_2 iou 0.75", "ISIC_3 iou 1.00"]
    figure = notebook_figure(images, truths, predictions, titles, title="run abc")
    figures.append(figure)
    axes = np.array(figure.axes).reshape(4, count)  # row-major, as plt.subplots made them
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["image", "ground truth", "prediction", "overlay"]
    assert all(ax.get_ylabel() == "" for ax in axes[:, 1:].ravel())  # labels on the first column only
    assert [ax.get_title() for ax in axes[0]] == titles
    assert figure.get_suptitle() == "run abc"
    assert np.array_equal(axes[1, 2].images[0].get_array(), truths[2, ..., 0])
    assert np.array_equal(axes[3, 0].images[0].get_array(), overlay(images[0], truths[0], predictions[0]))
