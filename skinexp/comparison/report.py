"""The comparison as an HTML page for people who do not open the MLflow UI: the table first, then the compared
per-image score as box plots (the very values the table ranks and tests), val IoU per epoch per group (mean
line, band over runs; a training-curve figure, not ranked), and the validation images where the groups differ
most from the reference, side by side. Pictures are embedded, so `report.html` opens from disk anywhere."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Optional

import numpy as np

from skinexp.comparison.table import COLUMNS, Comparison, comparison_csv, comparison_markdown, rows
from skinexp.evaluation.figures import close, overlay

FILES = ("report.html", "comparison.csv", "comparison.md")
IMAGE_ROWS = 8


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def group_curves_figure(comparison: Comparison, histories: dict[str, list[float]]):
    """val IoU per epoch: each group's mean over its runs, with a band from the lowest to the highest run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axis = plt.subplots(figsize=(7, 3.6))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for group in comparison.groups:
        curves = [histories[run.info.run_id] for run in group.runs if histories.get(run.info.run_id)]
        if not curves:
            continue
        length = min(len(curve) for curve in curves)
        stacked = np.array([curve[:length] for curve in curves])
        epochs = np.arange(1, length + 1)
        axis.plot(epochs, stacked.mean(axis=0), "o-", label=f"{group.name} (n={len(curves)})")
        axis.fill_between(epochs, stacked.min(axis=0), stacked.max(axis=0), alpha=0.2)
    axis.set_xlabel("epoch")
    axis.set_ylabel("val_iou")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)
    return figure


def boxes_figure(comparison: Comparison):
    """The compared per-image score of every group (pooled validation images) as box plots; the mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(4, 1.4 * len(comparison.groups)), 3.6))
    groups = [group for group in comparison.groups if group.per_image]
    axis.boxplot([list(group.per_image.values()) for group in groups], showmeans=True)
    axis.set_xticks(range(1, len(groups) + 1), [group.name for group in groups], rotation=20, fontsize=8)
    axis.set_ylabel(f"per-image {comparison.metric} at threshold {comparison.threshold}")
    axis.grid(alpha=0.3, axis="y")
    return figure


def disagreeing_images(comparison: Comparison, count: int = IMAGE_ROWS) -> list[str]:
    """Image ids every group scored, ordered by the largest paired difference from the reference group on any
    of them (the differences the table's `diff` averages), largest first."""
    scored = [group.per_image for group in comparison.groups if group.per_image]
    common = set.intersection(*(set(table) for table in scored)) if scored else set()
    reference = next(g.per_image for g in comparison.groups if g.name == comparison.reference)
    gap = {image_id: max(abs(table[image_id] - reference[image_id]) for table in scored) for image_id in common}
    return sorted(common, key=lambda image_id: (-gap[image_id], image_id))[:count]


def _image_cell(picture: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return f'<td><img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"></td>'


def images_table(comparison: Comparison, ids: list[str], pixels: Optional[dict[str, tuple]],
                 masks: dict[str, dict[str, np.ndarray]]) -> str:
    """Rows of image | truth | each group's prediction (outlined truth in green, prediction in red)."""
    if not ids or pixels is None:
        return "<p>The validation images could not be shown: their dataset is not readable here.</p>"
    header = "".join(f"<th>{html.escape(group.name)}</th>" for group in comparison.groups)
    lines = [f"<table class='images'><tr><th>id</th><th>image</th><th>truth</th>{header}</tr>"]
    for image_id in ids:
        image, truth = pixels[image_id]
        cells = [f"<td>{html.escape(image_id)}</td>", _image_cell(image),
                 _image_cell(np.repeat(truth.astype(np.uint8) * 255, 3, axis=-1))]
        for group in comparison.groups:
            predicted = masks.get(group.name, {}).get(image_id)
            iou = group.per_image.get(image_id)
            if predicted is None:
                cells.append("<td>-</td>")
                continue
            cells.append(_image_cell(overlay(image, truth, predicted)).replace(
                "</td>", f"<br>{comparison.metric} {iou:.3f}</td>" if iou is not None else "</td>"))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines + ["</table>"])


def write(directory: Path, comparison: Comparison, title: str, histories: dict[str, list[float]],
          pixels: Optional[dict[str, tuple]], masks: dict[str, dict[str, np.ndarray]]) -> list[Path]:
    """report.html, comparison.csv and comparison.md in `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    header = "".join(f"<th>{html.escape(name)}</th>" for name in (*COLUMNS, *comparison.keys))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows(comparison))
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in comparison.notes)
    curves, boxes = _png(group_curves_figure(comparison, histories)), _png(boxes_figure(comparison))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }} .images td {{ text-align: center; }}
.images img {{ width: 128px; image-rendering: pixelated; }}</style></head><body>
<h1>{html.escape(title)}</h1>
<table id="comparison"><tr>{header}</tr>{body}</table>
<p>Groups ranked by mean per-image {html.escape(comparison.metric)} at threshold
{html.escape(comparison.threshold)}; differences against {html.escape(comparison.reference)}.</p>
<ul>{notes}</ul>
<h2>Per-image {html.escape(comparison.metric)}</h2><img class="plot" src="data:image/png;base64,{boxes}">
<h2>val_iou per epoch (training curves, not ranked)</h2><img class="plot" src="data:image/png;base64,{curves}">
<h2>Where the groups differ most from {html.escape(comparison.reference)}</h2>
{images_table(comparison, disagreeing_images(comparison), pixels, masks)}
</body></html>
"""
    paths = [directory / name for name in FILES]
    for path, text in zip(paths, (page, comparison_csv(comparison), comparison_markdown(comparison))):
        path.write_text(text)
    return paths
