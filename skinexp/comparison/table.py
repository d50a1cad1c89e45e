"""The comparison of configs on one quantity: a per-image score of each run's kept checkpoint at one declared
threshold, read from the run's per-image table. Groups are ranked by the mean of their pooled per-image values;
every other group is set against a reference group (the best, or `baseline=`) by the paired difference over the
images both scored, its bootstrap interval, a Holm-adjusted Wilcoxon p-value, the minimum detectable difference
and a verdict. Table, terminal, report and box plots all show that one quantity."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from skinexp.comparison.grouping import ABSENT, differing_keys, execution_only, group_name, group_runs
from skinexp.comparison.statistics import ALPHA, RESAMPLES, holm, mean_interval, paired_difference
from skinexp.comparison.text import csv_text, markdown_text
from skinexp.errors import ConfigError

COLUMNS = ("rank", "group", "runs", "images", "mean", "ci95_low", "ci95_high", "diff", "diff_ci95_low",
           "diff_ci95_high", "p_value", "mdd", "verdict")
# Per-image scores a comparison can rank: (lowest, highest, higher is better), as `skinexp.evaluation.scores`
# defines them.
SCORES = {"iou": (0.0, 1.0, True), "dice": (0.0, 1.0, True), "precision": (0.0, 1.0, True),
          "sensitivity": (0.0, 1.0, True), "specificity": (0.0, 1.0, True), "hd95": (0.0, math.inf, False)}
THRESHOLDS = ("0.5", "tuned")
# The per-image tables a training run logs: its kept checkpoint's validation images at 0.5 and at its tuned
# threshold (`best_threshold`, tuned on those same images).
PER_IMAGE_FILES = {"0.5": "val_per_image.csv", "tuned": "val_per_image_tuned.csv"}
VERDICTS = ("reference", "better", "worse", "no detectable difference")


def score_name(metric: str) -> str:
    """`iou`, `dice`, ... from `metric=` (a `val_` prefix is accepted); ConfigError naming the choices."""
    name = metric.removeprefix("val_")
    if name not in SCORES:
        raise ConfigError(f"metric must be a per-image score: {', '.join(SCORES)} (a val_ prefix is accepted). "
                          f"Received: metric={metric}")
    return name


def threshold_name(threshold: str) -> str:
    if str(threshold) not in THRESHOLDS:
        raise ConfigError(f"threshold must be one of {', '.join(THRESHOLDS)}. Received: threshold={threshold}")
    return str(threshold)


@dataclass
class Group:
    name: str
    key: tuple
    runs: list
    per_image: dict[str, float]  # image id -> score: out-of-fold images pooled, repeats of a split averaged
    strata: dict[str, int]  # image id -> which run (or set of runs) scored it: the bootstrap's strata
    mean: float = math.nan
    ci95: tuple[float, float] = (math.nan, math.nan)
    diff: Optional[float] = None
    diff_ci95: tuple[float, float] = (math.nan, math.nan)
    p_value: Optional[float] = None
    mdd: Optional[float] = None
    verdict: str = ""
    paired_images: int = 0


@dataclass
class Comparison:
    metric: str  # the per-image score
    threshold: str
    groups: list[Group]  # ranked, best first
    keys: list[str]  # the grouping keys shown as columns
    reference: str = ""
    notes: list[str] = field(default_factory=list)


def pooled_per_image(tables: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, int]]:
    """One score per image over a group's runs, and each image's stratum: each fold scores its own images, and
    an image scored by several runs (seeds on one split) gets their mean. Runs that scored the same set of
    images form one stratum."""
    values: dict[str, list[float]] = {}
    scorers: dict[str, list[int]] = {}
    for index, table in enumerate(tables):
        for image_id, value in table.items():
            values.setdefault(image_id, []).append(value)
            scorers.setdefault(image_id, []).append(index)
    labels: dict[tuple, int] = {}
    strata = {image_id: labels.setdefault(tuple(runs), len(labels)) for image_id, runs in scorers.items()}
    return {image_id: float(np.mean(scores)) for image_id, scores in values.items()}, strata


def parse_per_image(text: Optional[bytes], score: str) -> dict[str, float]:
    """{image id: score} from a run's per-image table (CSV with an `id` column and one column per score)."""
    if not text:
        return {}
    return {row["id"]: float(row[score]) for row in csv.DictReader(io.StringIO(text.decode())) if row.get(score)}


def compare(runs: list, metric: str, group_by: Optional[list[str]], per_image: dict[str, dict[str, float]],
            threshold: str = "0.5", baseline: Optional[str] = None) -> Comparison:
    """Rank the groups of FINISHED `runs` by the mean per-image `metric` and set each against the reference.

    Args:
        per_image: run id -> {image id: score} of the run's validation images at `threshold`.
        baseline: the reference group's name (as the table shows it); default the best-ranked group.
    """
    score = score_name(metric)
    finished = [run for run in runs if run.info.status == "FINISHED"]
    notes = []
    running = sum(run.info.status == "RUNNING" for run in runs)
    if running:
        notes.append(f"{running} run(s) still RUNNING were left out")
    if not finished:
        raise ConfigError(f"the compared runs hold no FINISHED training run. Received: {len(runs)} runs, "
                          f"{running} RUNNING")
    for key in group_by or []:
        if not any(key in run.data.params for run in finished):
            raise ConfigError(f"group_by must name params of the runs (e.g. model.filters). Received: group_by={key}")
    unscored = [run.info.run_name for run in finished if not per_image.get(run.info.run_id)]
    if unscored:
        notes.append(f"{len(unscored)} run(s) have no per-image table and were left out: {', '.join(unscored[:5])}")
    scored = [run for run in finished if per_image.get(run.info.run_id)]
    if not scored:
        raise ConfigError(f"no compared run has a per-image table ({PER_IMAGE_FILES[threshold]}): they were "
                          f"trained before skinexp logged one. Received: {len(finished)} FINISHED runs")
    grouped = group_runs(scored, group_by)
    keys = list(group_by) if group_by else differing_keys(list(grouped))
    groups = []
    for key, members in grouped.items():
        values, strata = pooled_per_image([per_image[run.info.run_id] for run in members])
        groups.append(Group(group_name(key, keys), key, members, values, strata))
    for group in groups:
        ids = sorted(group.per_image)
        group.mean, low, high = mean_interval([group.per_image[i] for i in ids], [group.strata[i] for i in ids])
        group.ci95 = (low, high)
    higher_is_better = SCORES[score][2]
    groups.sort(key=lambda g: -g.mean if higher_is_better else g.mean)
    if not group_by and len(groups) > 1 and execution_only(keys):
        notes.append(f"the groups differ only in {', '.join(keys)}, which say how a run executed, not what it "
                     "learned; name the keys to compare with group_by=")
    reference = _reference(groups, baseline)
    _set_against(reference, groups, higher_is_better, notes)
    if any(ABSENT in dict(group.key).values() for group in groups):
        notes.append(f"{ABSENT}: the key is not among that group's params (runs logged before the key existed)")
    notes.append(f"mean: the mean {score} of a group's pooled per-image values (out-of-fold images pooled, runs on "
                 f"one split averaged per image) at threshold {threshold}; ci95: bootstrap over images within runs, "
                 f"{RESAMPLES} resamples")
    notes.append(f"diff: group - {reference.name} over shared images, ci95 by paired bootstrap; p_value: Wilcoxon "
                 f"signed-rank, Holm-adjusted over {max(len(groups) - 1, 1)} comparison(s); verdict better/worse "
                 f"when p_value < {ALPHA} and the interval excludes 0; mdd: the smallest |diff| detectable with 80 % "
                 f"power")
    return Comparison(score, threshold, groups, keys, reference.name, notes)


def _reference(groups: list[Group], baseline: Optional[str]) -> Group:
    if baseline is None:
        return groups[0]
    for group in groups:
        if group.name == baseline:
            return group
    raise ConfigError(f"baseline must name a group of the comparison: {', '.join(g.name for g in groups)}. "
                      f"Received: baseline={baseline}")


def _set_against(reference: Group, groups: list[Group], higher_is_better: bool, notes: list[str]) -> None:
    reference.verdict = "reference"
    tested = []
    for group in groups:
        if group is reference:
            continue
        common = sorted(set(reference.per_image) & set(group.per_image))
        group.paired_images = len(common)
        if len(common) < 2:
            group.verdict = "no detectable difference"
            notes.append(f"{group.name}: {len(common)} image(s) in common with {reference.name}; no test was run")
            continue
        difference = paired_difference([group.per_image[i] for i in common], [reference.per_image[i] for i in common])
        group.diff, group.diff_ci95, group.mdd = difference.diff, (difference.low, difference.high), difference.mdd
        tested.append((group, difference.p_value))
    for (group, _), p_value in zip(tested, holm([p for _, p in tested])):
        group.p_value = p_value
        low, high = group.diff_ci95
        if p_value < ALPHA and low > 0:
            group.verdict = "better" if higher_is_better else "worse"
        elif p_value < ALPHA and high < 0:
            group.verdict = "worse" if higher_is_better else "better"
        else:
            group.verdict = "no detectable difference"


def _number(value: Optional[float]) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6f}"


def rows(comparison: Comparison) -> list[list[str]]:
    """The table: COLUMNS, then one column per grouping key."""
    table = []
    for rank, group in enumerate(comparison.groups, 1):
        values = dict(group.key)
        table.append([str(rank), group.name, str(len(group.runs)), str(len(group.per_image)), _number(group.mean),
                      _number(group.ci95[0]), _number(group.ci95[1]), _number(group.diff),
                      _number(group.diff_ci95[0]), _number(group.diff_ci95[1]),
                      "" if group.p_value is None else f"{group.p_value:.4g}", _number(group.mdd), group.verdict,
                      *[values.get(key, ABSENT) for key in comparison.keys]])
    return table


def comparison_csv(comparison: Comparison) -> str:
    return csv_text([*COLUMNS, *comparison.keys], rows(comparison))


def comparison_markdown(comparison: Comparison) -> str:
    return markdown_text([*COLUMNS, *comparison.keys], rows(comparison)) + "\n" + "".join(
        f"- {note}\n" for note in comparison.notes)
