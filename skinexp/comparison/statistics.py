"""The statistics of a comparison, all on per-image scores: a group mean's bootstrap interval, the paired
difference between two groups with its paired bootstrap interval, the Wilcoxon signed-rank test (SciPy) with
Holm's correction over the comparisons, and the smallest difference the shared images could detect."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
RESAMPLES = 4000
SEED = 0  # every interval of a comparison is reproducible: same runs, same numbers


def mean_interval(values: Sequence[float], strata: Sequence[int], resamples: int = RESAMPLES,
                  seed: int = SEED) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its 95 % percentile bootstrap interval, resampling values
    with replacement within each stratum (the images of one run or fold keep their count). A mean of values
    that lie in a score's range stays in that range, and so does every bound."""
    array = np.asarray(values, np.float64)
    labels = np.asarray(strata)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    for label in np.unique(labels):
        members = array[labels == label]
        picks = rng.integers(0, len(members), (resamples, len(members)))
        totals += members[picks].sum(axis=1)
    means = totals / len(array)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return mean, float(low), float(high)


@dataclass(frozen=True)
class Difference:
    """A group against the reference on their shared images: `diff` = mean(group - reference)."""

    images: int
    diff: float
    low: float
    high: float
    p_value: float  # two-sided Wilcoxon signed-rank, before any correction
    mdd: float  # the smallest |diff| these images detect with 80 % power at ALPHA (paired t approximation)


def paired_difference(group: Sequence[float], reference: Sequence[float], resamples: int = RESAMPLES,
                      seed: int = SEED) -> Difference:
    """The paired difference `group - reference` over images scored by both (the same order in both lists):
    its mean, a 95 % paired bootstrap interval (images resampled with replacement), Wilcoxon's p-value and the
    minimum detectable difference."""
    differences = np.asarray(group, np.float64) - np.asarray(reference, np.float64)
    count = len(differences)
    diff = float(differences.mean())
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, count, (resamples, count))].mean(axis=1)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return Difference(count, diff, float(low), float(high), wilcoxon_p_value(differences),
                      minimum_detectable_difference(differences))


def wilcoxon_p_value(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences; 1.0 when every difference is zero (no
    evidence of a difference), where SciPy has no ranks to test."""
    from scipy import stats

    array = np.asarray(differences, np.float64)
    if not np.any(array):
        return 1.0
    return float(stats.wilcoxon(array).pvalue)


def minimum_detectable_difference(differences: Sequence[float], alpha: float = ALPHA, power: float = POWER) -> float:
    """(t(1 - alpha/2) + t(power)) * sd / sqrt(n), n - 1 degrees of freedom: the mean paired difference a
    two-sided test at `alpha` finds with probability `power`, given the spread of these differences. NaN
    below two images."""
    from scipy import stats

    array = np.asarray(differences, np.float64)
    if len(array) < 2:
        return math.nan
    degrees = len(array) - 1
    factor = stats.t.ppf(1 - alpha / 2, degrees) + stats.t.ppf(power, degrees)
    return float(factor * array.std(ddof=1) / math.sqrt(len(array)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), kept monotone, capped at 1."""
    order = np.argsort(p_values, kind="stable")
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted
