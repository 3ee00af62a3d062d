"""Statistics for the probability-filter study: DeLong AUC (plain and clustered by
header), exact binomial tail, Holm, power.

Kept free of scipy on purpose: every number in a ``tpf`` verdict comes from formulas in
this file that the tests check against brute force and published values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

_NORMAL = NormalDist()


class StatsError(ValueError):
    """Raised for inputs a statistic is undefined on (no positives, bad probabilities)."""


# --------------------------------------------------------------------------- AUC

def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given the mean of their ranks."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    n = len(x)
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], n]
    run_rank = (starts + ends + 1) / 2.0          # mean of 1-based ranks start+1..end
    ranks = np.empty(n, dtype=float)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


@dataclass(frozen=True)
class AucResult:
    """ROC AUC with its DeLong standard error and interval, and a one-sided p-value.

    ``p_value`` tests H0 "labels are independent of the scores" against AUC > 0.5 with
    the Mann-Whitney null variance (tie-corrected). Under that H0 the labels are
    exchangeable given the scores, so the test stays valid however the scores depend on
    each other (e.g. nonces of one header sharing state words); the DeLong interval
    describes the estimate.
    """

    auc: float
    se: float
    low: float
    high: float
    p_value: float
    n_pos: int
    n_neg: int

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def delong_auc(scores: np.ndarray, labels: np.ndarray, level: float = 0.95) -> AucResult:
    """ROC AUC and DeLong variance by the midrank algorithm (Sun & Xu 2014), O(n log n)."""
    scores = np.asarray(scores, dtype=float).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise StatsError("scores and labels must have the same length")
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise StatsError(f"AUC needs at least 2 positives and 2 negatives, got {m} and {n}")
    tx, ty = midranks(pos), midranks(neg)
    tz = midranks(np.concatenate([pos, neg]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
    v10 = (tz[:m] - tx) / n          # per-positive placement: share of negatives below
    v01 = 1.0 - (tz[m:] - ty) / m    # per-negative placement: share of positives above
    var = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    se = math.sqrt(max(var, 0.0))
    z = _NORMAL.inv_cdf(0.5 + level / 2.0)
    null_sd = math.sqrt(_null_var(tz, m, n))
    if null_sd > 0:
        p = 1.0 - _NORMAL.cdf((auc - 0.5) / null_sd)
    else:   # every score tied: no ranking at all
        p = 1.0
    return AucResult(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), p, m, n)


def clustered_auc(scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray,
                  level: float = 0.95) -> AucResult:
    """ROC AUC with a variance that treats each cluster (e.g. a block header) as one unit.

    Nonces of one header share its early round state, so their scores are not independent;
    DeLong's variance, which assumes they are, is then too small. This is the clustered
    DeLong estimator of Obuchowski (Biometrics 53, 567, 1997): the per-positive and
    per-negative placement values are summed within each cluster, and the variance comes
    from the spread of those sums over clusters. With one observation per cluster it
    is DeLong's variance to within a factor (m - 1) / m * I / (I - 1). The AUC and the permutation p-value are
    unchanged (under H0 the labels are exchangeable whatever the scores share).
    """
    scores = np.asarray(scores, dtype=float).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    clusters = np.asarray(clusters).ravel()
    if clusters.shape != scores.shape:
        raise StatsError("clusters need one entry per score")
    base = delong_auc(scores, labels, level)
    _, cid = np.unique(clusters, return_inverse=True)
    n_clusters = int(cid.max()) + 1
    if n_clusters < 2:
        raise StatsError("a clustered AUC interval needs at least two clusters")
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    tx, ty = midranks(pos), midranks(neg)
    tz = midranks(np.concatenate([pos, neg]))
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    auc = base.auc
    c_pos, c_neg = cid[labels], cid[~labels]
    m_i = np.bincount(c_pos, minlength=n_clusters).astype(float)
    n_i = np.bincount(c_neg, minlength=n_clusters).astype(float)
    d10 = np.bincount(c_pos, weights=v10, minlength=n_clusters) - m_i * auc
    d01 = np.bincount(c_neg, weights=v01, minlength=n_clusters) - n_i * auc
    k = n_clusters / (n_clusters - 1.0)
    s10 = k * float(np.sum(d10 ** 2)) / m
    s01 = k * float(np.sum(d01 ** 2)) / n
    s11 = k * float(np.sum(d10 * d01))
    var = s10 / m + s01 / n + 2.0 * s11 / (m * n)
    se = math.sqrt(max(var, 0.0))
    z = _NORMAL.inv_cdf(0.5 + level / 2.0)
    return AucResult(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), base.p_value,
                     m, n)


def _null_var(ranks: np.ndarray, m: int, n: int) -> float:
    """Variance of AUC = U/(mn) when labels are a random split (Mann-Whitney, tie-corrected)."""
    total = m + n
    _, counts = np.unique(ranks, return_counts=True)
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    var_u = m * n / 12.0 * ((total + 1) - ties / (total * (total - 1)))
    return max(var_u, 0.0) / (m * n) ** 2


def auc_brute_force(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """P(score_pos > score_neg) + 0.5 P(tie) by comparing every pair (for tests)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    total = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return total / (len(pos) * len(neg))


# --------------------------------------------------------------------------- binomial

def binom_sf(k: int, n: int, p: float) -> float:
    """Exact upper tail P(X >= k) for X ~ Binomial(n, p), summed in log space."""
    if not 0 <= p <= 1:
        raise StatsError(f"probability must lie in [0, 1], got {p}")
    if n < 0:
        raise StatsError(f"n must be >= 0, got {n}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    j = np.arange(k, n + 1, dtype=float)
    logs = (math.lgamma(n + 1) - _lgamma(j + 1) - _lgamma(n - j + 1)
            + j * math.log(p) + (n - j) * math.log1p(-p))
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


def _lgamma(x: np.ndarray) -> np.ndarray:
    return np.array([math.lgamma(v) for v in x])


def recall_test(recalled: int, positives: int, abort_fraction: float) -> float:
    """One-sided exact p-value that recall beats random aborting (recall > 1 - s).

    Under H0 the labels are independent of which nonces were aborted, so the recalled
    count is binomial whatever the abort decisions have in common.
    """
    return binom_sf(recalled, positives, 1.0 - abort_fraction)


# --------------------------------------------------------------------------- multiplicity

def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone), in the input order."""
    p = list(p_values)
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


# --------------------------------------------------------------------------- power

def auc_se_null(n_pos: int) -> float:
    """Standard error of AUC under H0 when negatives vastly outnumber positives."""
    return 1.0 / math.sqrt(12.0 * n_pos)


def positives_needed(auc: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Positives for a one-sided test at ``alpha`` to detect ``auc`` with ``power``."""
    if not 0.5 < auc < 1.0:
        raise StatsError(f"effect AUC must lie in (0.5, 1), got {auc}")
    z = _NORMAL.inv_cdf(1 - alpha) + _NORMAL.inv_cdf(power)
    return math.ceil(z * z / (12.0 * (auc - 0.5) ** 2))


def detectable_auc(n_pos: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest AUC a run with ``n_pos`` positives detects with ``power`` (one-sided)."""
    if n_pos < 1:
        return 1.0
    z = _NORMAL.inv_cdf(1 - alpha) + _NORMAL.inv_cdf(power)
    return 0.5 + z * auc_se_null(n_pos)
