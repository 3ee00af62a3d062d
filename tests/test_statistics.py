"""Paired run-level tests: exact sign-flip p-values, t-intervals, and a calibrated verdict."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asic_reservoir.analysis.statistics import (MIN_RUNS, StatisticsError, paired,
                                                sign_flip_p_value, t_interval)


def test_sign_flip_p_value_matches_brute_force():
    rng = np.random.default_rng(3)
    for n in (1, 3, 6):
        d = rng.normal(0.1, 1.0, n)
        flips = [sum(s * v for s, v in zip(signs, d))
                 for signs in itertools.product((1, -1), repeat=n)]
        expected = np.mean([f >= d.sum() - 1e-12 for f in flips])
        assert sign_flip_p_value(d) == pytest.approx(expected)
    assert sign_flip_p_value([1, 2, 3, 4, 5]) == pytest.approx(1 / 32)   # the floor at n = 5
    big = rng.normal(1.0, 0.1, 30)                                       # Monte Carlo branch
    assert 0 < sign_flip_p_value(big) < 1e-3


def test_t_interval_is_students():
    low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)                                # t(0.975, 2 df)
    assert (low, high) == pytest.approx((2 - half, 2 + half))
    assert all(np.isnan(t_interval([1.0])))


def test_verdicts_need_five_runs_and_agreeing_statistics():
    assert paired([0.4] * 4, [0.9, 0.91, 0.92, 0.9]).verdict == "too few runs"
    c = paired([0.40, 0.42, 0.41, 0.43, 0.40], [0.60, 0.61, 0.59, 0.62, 0.60])
    assert c.verdict == "better" and c.mean == pytest.approx(0.192)
    assert c.low > 0 and c.p_value == pytest.approx(1 / 32)
    assert "95 % CI, p = 0.031, 5 runs" in c.interval()
    assert paired([0.5, 0.7, 0.6, 0.5, 0.6], [0.6, 0.6, 0.6, 0.6, 0.6]).verdict == "no evidence"
    assert paired([0.8, 0.81, 0.82, 0.8, 0.79], [0.6] * 5).verdict == "worse"
    with pytest.raises(StatisticsError, match="do not pair"):
        paired([0.5, 0.6], [0.7])
    with pytest.raises(StatisticsError):
        paired([], [])


def test_false_verdicts_under_no_effect_stay_below_five_percent():
    """The old rule (mean gain > its std) fired ~20 % at n = 2 and 4.5 % at n = 5; the
    paired verdict is never given below five runs and is at most ~2.5 % at n = 5, 8."""
    rng = np.random.default_rng(7)
    old_rule_n2 = np.mean([(lambda d: d.mean() > d.std(ddof=1))(rng.normal(0, 1, 2))
                           for _ in range(4000)])
    assert 0.17 < old_rule_n2 < 0.23
    for n in (MIN_RUNS, 8):
        hits = np.mean([paired(np.zeros(n), rng.normal(0, 1, n)).verdict == "better"
                        for _ in range(2000)])
        assert hits <= 0.035, (n, hits)
