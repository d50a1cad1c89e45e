"""The statistics of a comparison: a Student t interval over runs, the Wilcoxon signed-rank test on paired
per-image scores (SciPy), and Holm's correction for comparing one config against several."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ALPHA = 0.05


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, sd, low, high): the sample mean, its standard deviation (n - 1) and a Student t interval for the
    mean. With one value the sd and the interval are NaN: one run says nothing about its spread."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(array.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, len(array) - 1)) * sd / math.sqrt(len(array))
    return mean, sd, mean - half, mean + half


def paired_p_value(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences; 1.0 when every pair is equal (no
    evidence of a difference), where SciPy has no ranks to test."""
    from scipy import stats

    differences = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(first, second).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i), kept monotone, capped at 1."""
    order = np.argsort(p_values, kind="stable")
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted
