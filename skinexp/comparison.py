"""Grouped comparison of configs: each group's runs summarised with a Student t interval, and the best group
tested against each other one on the per-image IoU of the validation images both scored (Wilcoxon signed-rank,
Holm-corrected when more than two groups are compared)."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from skinexp.errors import ConfigError
from skinexp.grouping import differing_keys, group_name, group_runs
from skinexp.stats import ALPHA, holm, mean_interval, paired_p_value

COLUMNS = ("rank", "group", "n", "mean", "sd", "ci95_low", "ci95_high", "p_value", "verdict")


@dataclass
class Group:
    name: str
    key: tuple
    runs: list
    scores: list[float]  # each run's best metric
    per_image: dict[str, float]  # image id -> IoU, out-of-fold images pooled, repeats of a split averaged
    mean: float = math.nan
    sd: float = math.nan
    ci95: tuple[float, float] = (math.nan, math.nan)
    p_value: Optional[float] = None
    verdict: str = ""
    paired_images: int = 0


@dataclass
class Comparison:
    metric: str
    groups: list[Group]  # ranked, best first
    keys: list[str]  # the grouping keys shown as columns
    notes: list[str] = field(default_factory=list)


def run_score(run, metric: str) -> float:
    """A run's best value of `metric` (`best_<metric>` when logged), else its last value; NaN if neither."""
    metrics = run.data.metrics
    return float(metrics.get(f"best_{metric}", metrics.get(metric, math.nan)))


def pooled_per_image(tables: list[dict[str, float]]) -> dict[str, float]:
    """One IoU per image over a group's runs: each fold scores its own images, and an image scored by several
    runs (seeds on one split) gets their mean."""
    values: dict[str, list[float]] = {}
    for table in tables:
        for image_id, iou in table.items():
            values.setdefault(image_id, []).append(iou)
    return {image_id: float(np.mean(ious)) for image_id, ious in values.items()}


def parse_per_image(text: Optional[bytes]) -> dict[str, float]:
    if not text:
        return {}
    return {row["id"]: float(row["iou"]) for row in csv.DictReader(io.StringIO(text.decode()))}


def compare(runs: list, metric: str, group_by: Optional[list[str]],
            per_image: dict[str, dict[str, float]]) -> Comparison:
    """Rank the groups of FINISHED `runs` by the mean of their runs' best `metric` and test them.

    Args:
        per_image: run id -> {image id: IoU} of the run's validation images (its `val_per_image.csv`).
    """
    finished = [run for run in runs if run.info.status == "FINISHED"]
    notes = []
    running = sum(run.info.status == "RUNNING" for run in runs)
    if running:
        notes.append(f"{running} run(s) still RUNNING were left out")
    if not finished:
        raise ConfigError(f"the compared runs hold no FINISHED training run. Received: {len(runs)} runs, "
                          f"{running} RUNNING")
    logged = {name for run in finished for name in run.data.metrics}
    if not {metric, f"best_{metric}"} & logged:
        names = sorted(name for name in logged if not name.startswith("best_"))
        raise ConfigError(f"metric must be one the runs logged: {', '.join(names)}. Received: metric={metric}")
    for key in group_by or []:
        if not any(key in run.data.params for run in finished):
            raise ConfigError(f"group_by must name params of the runs (e.g. model.filters). Received: group_by={key}")
    grouped = group_runs(finished, group_by)
    keys = list(group_by) if group_by else differing_keys(list(grouped))
    groups = [Group(group_name(key, keys), key, members, [run_score(run, metric) for run in members],
                    pooled_per_image([per_image.get(run.info.run_id, {}) for run in members]))
              for key, members in grouped.items()]
    for group in groups:
        group.mean, group.sd, low, high = mean_interval(group.scores)
        group.ci95 = (low, high)
    lower_is_better = metric.endswith("loss")
    groups.sort(key=lambda g: (math.isnan(g.mean), g.mean if lower_is_better else -g.mean))
    _test_against_the_best(groups, notes)
    return Comparison(metric, groups, keys, notes)


def _test_against_the_best(groups: list[Group], notes: list[str]) -> None:
    best, others = groups[0], groups[1:]
    best.verdict = "best"
    raw = []
    for group in others:
        common = sorted(set(best.per_image) & set(group.per_image))
        group.paired_images = len(common)
        if not common:
            group.verdict = "unpaired"
            notes.append(f"{group.name}: no validation image in common with {best.name}; no test was run")
            continue
        raw.append((group, paired_p_value([best.per_image[i] for i in common], [group.per_image[i] for i in common])))
    adjusted = holm([p for _, p in raw]) if len(others) > 1 else [p for _, p in raw]
    for (group, _), p_value in zip(raw, adjusted):
        group.p_value = p_value
        group.verdict = "worse" if p_value < ALPHA else "within noise"
    if len(others) > 1 and raw:
        notes.append(f"p-values are Holm-corrected for {len(raw)} comparisons with the best group")
    notes.append("ci95: Student t over the runs of a group; p_value: Wilcoxon signed-rank on the per-image IoU "
                 "of the validation images both groups scored (out-of-fold images pooled, seeds averaged)")


def _number(value: Optional[float]) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"


def rows(comparison: Comparison) -> list[list[str]]:
    """The table: COLUMNS, then one column per grouping key."""
    table = []
    for rank, group in enumerate(comparison.groups, 1):
        values = dict(group.key)
        table.append([str(rank), group.name, str(len(group.runs)), _number(group.mean), _number(group.sd),
                      _number(group.ci95[0]), _number(group.ci95[1]),
                      "" if group.p_value is None else f"{group.p_value:.4g}", group.verdict,
                      *[values.get(key, "") for key in comparison.keys]])
    return table


def to_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *comparison.keys])
    writer.writerows(rows(comparison))
    return out.getvalue()


def to_markdown(comparison: Comparison) -> str:
    header = [*COLUMNS, *comparison.keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows(comparison):
        if row[2] == "1":
            row[5] = row[6] = "n=1"
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    lines.append("")
    lines += [f"- {note}" for note in comparison.notes]
    return "\n".join(lines) + "\n"
