"""DeLong AUC, exact binomial tail, Holm and power against brute force and known values."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from asic_reservoir.tpf.stats import (StatsError, auc_brute_force, auc_se_null, binom_sf, clustered_auc, delong_auc,
                                      detectable_auc, holm, midranks, positives_needed, recall_test)


def _delong_by_definition(scores, labels):
    """DeLong et al. (1988) structural components by comparing every pair."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    psi = lambda x, y: 1.0 if x > y else 0.5 if x == y else 0.0  # noqa: E731
    v10 = [sum(psi(x, y) for y in neg) / len(neg) for x in pos]
    v01 = [sum(psi(x, y) for x in pos) / len(pos) for y in neg]
    return float(np.mean(v10)), np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg)


def test_midranks_give_ties_their_mean_rank():
    assert midranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=4, max_size=40))
def test_delong_matches_the_pairwise_definition(rows):
    scores = [float(s) for s, _ in rows]
    labels = [y for _, y in rows]
    if sum(labels) < 2 or len(labels) - sum(labels) < 2:
        with pytest.raises(StatsError):
            delong_auc(np.array(scores), np.array(labels))
        return
    result = delong_auc(np.array(scores), np.array(labels))
    auc, var = _delong_by_definition(scores, labels)
    assert result.auc == pytest.approx(auc_brute_force(scores, labels)) == pytest.approx(auc)
    assert result.se ** 2 == pytest.approx(var, abs=1e-12)
    assert result.low <= result.auc <= result.high


def test_delong_known_example():
    # 3 positives, 3 negatives, one tie across classes: 8.5 of 9 pairs ordered correctly.
    scores = np.array([0.9, 0.8, 0.4, 0.4, 0.3, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    result = delong_auc(scores, labels)
    assert result.auc == pytest.approx(8.5 / 9)
    # V10 = (1, 1, 5/6), V01 = (5/6, 1, 1): each variance 1/108, SE^2 = 2/(3*108)
    assert result.se == pytest.approx(math.sqrt(2 / 324))
    assert result.p_value < 0.05


def test_delong_null_se_matches_the_rule_of_thumb():
    rng = np.random.default_rng(0)
    n_pos, n_neg = 400, 40000
    scores = rng.random(n_pos + n_neg)
    labels = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    result = delong_auc(scores, labels)
    assert result.se == pytest.approx(auc_se_null(n_pos), rel=0.1)


def test_delong_interval_covers_the_null_at_its_nominal_rate():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(60, bool), np.zeros(1500, bool)]
    covered = [delong_auc(rng.random(len(labels)), labels).covers(0.5) for _ in range(400)]
    assert 0.92 <= np.mean(covered) <= 0.98   # nominal 0.95, binomial SE 0.011


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=6, max_size=60))
def test_auc_p_value_is_the_mann_whitney_test(rows):
    from scipy import stats as scipy_stats   # a dependency of scikit-learn; reference only
    pos = [float(s) for s, y in rows if y]
    neg = [float(s) for s, y in rows if not y]
    if len(pos) < 2 or len(neg) < 2 or len(set(pos + neg)) < 2:
        return
    result = delong_auc(np.array(pos + neg), np.array([True] * len(pos) + [False] * len(neg)))
    expected = scipy_stats.mannwhitneyu(pos, neg, alternative="greater", method="asymptotic",
                                        use_continuity=False).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_all_tied_scores_rank_nothing():
    result = delong_auc(np.zeros(10), np.array([1, 0] * 5, dtype=bool))
    assert result.auc == 0.5 and result.p_value == 1.0 and result.covers(0.5)


def test_binomial_tail_known_values():
    assert binom_sf(5, 10, 0.5) == pytest.approx(638 / 1024, rel=1e-12)
    assert binom_sf(10, 10, 0.5) == pytest.approx(1 / 1024, rel=1e-12)
    assert binom_sf(1, 10, 0.5) == pytest.approx(1023 / 1024, rel=1e-12)
    assert binom_sf(0, 10, 0.3) == 1.0 and binom_sf(11, 10, 0.3) == 0.0
    assert binom_sf(3, 10, 0.0) == 0.0 and binom_sf(3, 10, 1.0) == 1.0
    # P(X >= 2) for Bin(3, 0.1) = 3 * 0.01 * 0.9 + 0.001
    assert binom_sf(2, 3, 0.1) == pytest.approx(0.028, rel=1e-12)


def decimal_binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) in 60-digit decimal arithmetic (no underflow, error ~1e-55), rounded once."""
    with decimal.localcontext(decimal.Context(prec=60, Emin=-10 ** 6, Emax=10 ** 6)):
        q = decimal.Decimal(p)                            # the float's exact value
        odds = q / (1 - q)
        term = math.comb(n, k) * q ** k * (1 - q) ** (n - k)
        total = decimal.Decimal(0)
        for j in range(k, n + 1):                         # term = C(n, j) p^j (1-p)^(n-j)
            total += term
            term = term * (n - j) / (j + 1) * odds
        return float(total)


@settings(max_examples=40)
@given(n=st.integers(1, 3000), p=st.floats(0.001, 0.999), frac=st.floats(0, 1))
def test_binomial_tail_matches_high_precision_arithmetic(n, p, frac):
    # 60-digit decimals, not scipy, are the reference: deep in the tail scipy's incomplete beta
    # is the less accurate of the two (n=551, p=0.25, k=516: P ~ 2.6e-260, scipy off by
    # 3e-9 relative, binom_sf by 2e-13), so a scipy reference made this test flaky.
    k = int(frac * n)
    expected = decimal_binom_sf(k, n, p)
    assert binom_sf(k, n, p) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_binomial_tail_deep_in_the_tail():
    # the case that once failed against scipy: 516 or more of 551 at p = 0.25
    assert binom_sf(516, 551, 0.25) == pytest.approx(decimal_binom_sf(516, 551, 0.25),
                                                     rel=1e-12)


def test_recall_test_is_against_random_abort():
    # 100 positives, abort 90%: random abort keeps ~10; keeping 20 is significant, 10 is not
    assert recall_test(20, 100, 0.9) < 0.01
    assert recall_test(10, 100, 0.9) > 0.4


def test_holm_known_example_and_monotone():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_power_figures_from_the_reference():
    assert positives_needed(0.55) == 207      # "AUC 0.55 is detectable with ~200 positives"
    assert 5000 <= positives_needed(0.51) <= 5200
    assert detectable_auc(207) == pytest.approx(0.55, abs=0.001)
    assert auc_se_null(300) == pytest.approx(1 / 60)
    with pytest.raises(StatsError):
        positives_needed(0.5)
    with pytest.raises(StatsError):
        binom_sf(1, 10, 1.5)


def test_clustered_auc_reduces_to_delong_without_clusters():
    rng = np.random.default_rng(5)
    labels = rng.random(3000) < 0.2
    scores = rng.normal(0, 1, 3000) + 0.5 * labels
    plain = delong_auc(scores, labels)
    clustered = clustered_auc(scores, labels, np.arange(3000))
    assert clustered.auc == plain.auc and clustered.p_value == plain.p_value
    assert clustered.se == pytest.approx(plain.se, rel=0.01)
    with pytest.raises(StatsError):
        clustered_auc(scores, labels, np.zeros(3000))


def test_clustered_interval_covers_when_headers_share_state():
    """Scores and labels both depend on a per-header effect (as nonces of one header share
    its early rounds): DeLong's interval, blind to that, under-covers; the clustered one
    keeps ~95 %."""
    def draw(rng, headers, per=40):
        h = np.repeat(rng.normal(0, 1, headers), per)
        labels = rng.random(headers * per) < 1 / (1 + np.exp(-(h - 1.5)))
        return rng.normal(0, 1, h.size) + h, labels, np.repeat(np.arange(headers), per)

    rng = np.random.default_rng(11)
    big_scores, big_labels, _ = draw(rng, 20000, per=5)
    truth = delong_auc(big_scores, big_labels).auc
    plain_hits = clustered_hits = 0
    reps = 200
    for _ in range(reps):
        scores, labels, headers = draw(rng, 30)
        plain_hits += delong_auc(scores, labels).covers(truth)
        clustered_hits += clustered_auc(scores, labels, headers).covers(truth)
    assert plain_hits / reps < 0.85
    assert clustered_hits / reps > 0.88
