"""The statistics of a listening test, as pure functions of ratings and counts: t-intervals
(ITU-R BS.1534 reports MUSHRA means with them), Wilcoxon signed-rank tests with Holm's
correction, exact binomial intervals and tests, and the hidden-reference screening rule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
SCREEN_BELOW = 90.0  # a hidden reference rated below this counts against the listener ...
SCREEN_SHARE = 0.15  # ... who is excluded when that happens in more than this share of trials


def t_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean, treating each value (one listener's
    rating of one clip) as one observation; NaN bounds with fewer than two values."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else math.nan
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1)
    half /= math.sqrt(len(values))
    return mean, mean - half, mean + half


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(W, two-sided p) of paired ratings a, b (zero differences dropped, as Wilcoxon's own
    rule); p = 1 when every pair is tied."""
    difference = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not np.any(difference != 0):
        return 0.0, 1.0
    result = stats.wilcoxon(difference, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def binomial(successes: int, trials: int, confidence: float = CONFIDENCE) -> dict[str, float]:
    """A preference rate with its exact (Clopper-Pearson) interval and the two-sided binomial
    (sign) test of no preference, p = 0.5."""
    if trials == 0:
        return {"rate": math.nan, "low": math.nan, "high": math.nan, "p": 1.0}
    result = stats.binomtest(successes, trials, 0.5, alternative="two-sided")
    interval = result.proportion_ci(confidence_level=confidence, method="exact")
    return {
        "rate": successes / trials,
        "low": float(interval.low),
        "high": float(interval.high),
        "p": float(result.pvalue),
    }


def screen(reference_ratings: Sequence[float]) -> dict[str, float | bool]:
    """One listener against the screening rule: how often they rated the hidden reference
    below 90, and whether that exceeds 15 % of their trials (then they are excluded)."""
    ratings = np.asarray(reference_ratings, dtype=float)
    below = int((ratings < SCREEN_BELOW).sum())
    share = below / len(ratings) if len(ratings) else 0.0
    return {
        "trials": len(ratings),
        "below": below,
        "share": share,
        "excluded": share > SCREEN_SHARE,
    }


def spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(rho, two-sided p) of Spearman's rank correlation; NaN with fewer than three points or a
    constant side."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan, math.nan
    result = stats.spearmanr(a, b)
    return float(result.statistic), float(result.pvalue)
