"""Readout protocol: chronological split, alpha chosen on validation only, NRMSE,
summaries, leakage checks that catch what they claim to catch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from asic_reservoir.analysis.baselines import EchoStateNetwork
from sklearn.exceptions import NotFittedError

from asic_reservoir.analysis.readout import (ChronologicalSplit, LeakageError, ReadoutError,
                                             RidgeReadout, Split, check_no_leakage,
                                             delay_names, evaluate, fit_on_split,
                                             input_delays, nrmse, summarize, summarize_scores)
from tests.support import READOUT_SPLIT as SPLIT

pytestmark = pytest.mark.usefixtures("one_blas_thread")


def test_split_blocks_are_chronological_and_disjoint():
    n = 2350
    tr, va, te = SPLIT.train_rows(n), SPLIT.validation_rows(n), SPLIT.test_rows(n)
    assert (tr[0], tr[-1], va[0], va[-1], te[0], te[-1]) == (50, 1049, 1050, 1549, 1550, 2349)
    np.testing.assert_array_equal(SPLIT.fit_rows(n), np.concatenate([tr, va]))
    rest = Split(10, 20, 10)                    # test=None: everything after validation
    assert len(rest.test_rows(100)) == 60
    valid = np.ones(n, bool)
    valid[[60, 1060, 1600]] = False
    assert 60 not in SPLIT.train_rows(n, valid) and len(SPLIT.test_rows(n, valid)) == 799
    with pytest.raises(ReadoutError, match="needs 2350 rows"):
        SPLIT.test_rows(2000)
    f = Split.fractions(1100, washout=100)
    assert (f.train, f.validation, f.test) == (400, 200, None)
    for bad in (dict(washout=-1, train=5, validation=5), dict(washout=0, train=0, validation=5),
                dict(washout=0, train=5, validation=5, test=0)):
        with pytest.raises(ReadoutError):
            Split(**bad)


def test_nrmse_definitions():
    y = np.random.default_rng(0).normal(3.0, 2.0, 1000)
    assert nrmse(y, np.full_like(y, y.mean())) == pytest.approx(1.0)
    pred = y + 0.1
    assert nrmse(y, pred) == pytest.approx(0.1 / y.std())
    assert nrmse(y, pred, "range") == pytest.approx(0.1 / (y.max() - y.min()))
    with pytest.raises(ReadoutError):
        nrmse(np.ones(5), np.ones(5))
    with pytest.raises(ReadoutError):
        nrmse(y, y[:-1])
    with pytest.raises(ReadoutError):
        nrmse(y, y, "max")


def test_input_delays():
    u = np.arange(1.0, 6.0)
    d = input_delays(u, 3)
    np.testing.assert_array_equal(d, [[1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2], [5, 4, 3]])
    assert delay_names(3) == ["u(t)", "u(t-1)", "u(t-2)"]
    with pytest.raises(ReadoutError):
        input_delays(u, 0)


def test_ridge_matches_sklearn_on_train_plus_validation(series, esn_features):
    ro = fit_on_split(esn_features, series.y, SPLIT)
    n = len(series.y)
    train, rows = SPLIT.train_rows(n), SPLIT.fit_rows(n)
    mu, sd = esn_features[train].mean(0), esn_features[train].std(0)   # train-only scaler
    xs = (esn_features - mu) / sd
    ref = Ridge(alpha=ro.alpha_).fit(xs[rows], series.y[rows])
    np.testing.assert_allclose(ro.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    assert ro.intercept_ == pytest.approx(ref.intercept_)
    np.testing.assert_allclose(ro.predict(esn_features[:10]), ref.predict(xs[:10]),
                               rtol=1e-6, atol=1e-8)
    # every alpha on the validation curve is the sklearn fit on the train rows
    for i in (0, 5, 10):
        fit = Ridge(alpha=ro.alphas[i]).fit(xs[train], series.y[train])
        val = SPLIT.validation_rows(n)
        assert ro.val_curve_[i] == pytest.approx(nrmse(series.y[val], fit.predict(xs[val])),
                                                 rel=1e-6)


def test_ridge_without_intercept_and_wider_than_long():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((400, 50))
    y = X[:, 0] * 2.0 + rng.normal(0, 0.1, 400)
    ro = RidgeReadout([1e-3], fit_intercept=False, cv=ChronologicalSplit(20)).fit(X[:50], y[:50])
    train, rows = np.arange(30), np.arange(50)
    xs = X / X[train].std(0)
    ref = Ridge(alpha=1e-3, fit_intercept=False).fit(xs[rows], y[rows])
    np.testing.assert_allclose(ro.coef_, ref.coef_, rtol=1e-5, atol=1e-7)
    assert ro.intercept_ == 0.0
    assert ro.n_train_ == 30 and ro.n_validation_ == 20                    # 30 rows, 50 cols
    with pytest.raises(NotFittedError):
        RidgeReadout().predict(X)


def test_alpha_is_chosen_on_validation_and_test_is_never_read():
    rng = np.random.default_rng(4)
    n = 2350
    X = rng.standard_normal((n, 40))
    w = rng.standard_normal(40) * (rng.random(40) < 0.3)
    y = X @ w + rng.normal(0, 3.0, n)             # noisy: a mid-grid alpha wins
    alphas = np.logspace(-2, 4, 13)
    base = fit_on_split(X, y, SPLIT, alphas=alphas)
    test = SPLIT.test_rows(n)
    y2, X2 = y.copy(), X.copy()
    y2[test] = rng.normal(0, 100, len(test))      # wreck the test block completely
    X2[test] = np.nan
    other = fit_on_split(X2, y2, SPLIT, alphas=alphas)
    assert other.alpha_ == base.alpha_
    np.testing.assert_array_equal(other.coef_, base.coef_)
    # ... whereas the validation block does drive the choice.
    y3 = y.copy()
    val = SPLIT.validation_rows(n)
    y3[val] = rng.normal(0, 3.0, len(val))        # validation unrelated to X: most shrinkage wins
    assert fit_on_split(X, y3, SPLIT, alphas=alphas).alpha_ == alphas[-1] != base.alpha_
    assert 0 < np.argmin(base.val_curve_) < len(alphas) - 1


def test_evaluate_scores_once_on_test_and_skips_marked_rows(series, esn_features):
    score = evaluate(esn_features, series.y, SPLIT)
    assert score.n_test == 800 and score.n_train == 1000 and score.n_validation == 500
    assert 0.1 < score.nrmse < 0.8
    assert score.nrmse == pytest.approx(nrmse(score.y_test, score.y_pred))
    assert score.nrmse_range < score.nrmse / 3
    bad = esn_features.copy()
    bad[[100, 1200, 2000], 3] = np.nan
    with pytest.raises(ReadoutError, match="non-finite"):
        evaluate(bad, series.y, SPLIT)
    valid = np.isfinite(bad).all(axis=1)
    skipped = evaluate(bad, series.y, SPLIT, valid=valid)
    assert skipped.n_skipped == 3 and skipped.n_test == 799
    assert skipped.nrmse == pytest.approx(score.nrmse, abs=0.02)
    with pytest.raises(ReadoutError):
        evaluate(esn_features, series.y[:-1], SPLIT)
    mostly_marked = np.zeros(len(series.y), bool)
    mostly_marked[1200:] = True
    with pytest.raises(ReadoutError, match=r"0 train \(of 1000\), 350 validation \(of 500\) "
                                           r"\(1150 of those steps marked invalid\)"):
        evaluate(esn_features, series.y, SPLIT, valid=mostly_marked)


def test_summaries():
    s = summarize([0.5, 0.6, 0.7])
    assert (s.mean, s.n) == (pytest.approx(0.6), 3)
    assert s.std == pytest.approx(0.1)                   # sample std, ddof=1
    assert s.cell() == "0.600 ± 0.100 (3)"
    one = summarize([0.8661])
    assert one.cell() == "0.866 (1)" and one.to_json()["nrmse_std"] is None
    assert summarize([]).n == 0
    with pytest.raises(ReadoutError):
        summarize([1.0, float("nan")])


def test_summarize_scores_carries_range_normalised(series, esn_features):
    scores = [evaluate(esn_features, series.y, SPLIT), evaluate(esn_features[:, :10], series.y, SPLIT)]
    s = summarize_scores(scores)
    assert s.n == 2 and s.range_normalised is not None
    assert s.range_normalised.mean == pytest.approx(np.mean([x.nrmse_range for x in scores]))


# --------------------------------------------------------------------------- leakage

def test_clean_features_pass_the_leakage_check(series, esn_features):
    report = check_no_leakage(esn_features, series.y, series.u, SPLIT)
    assert report.ok, report.messages
    assert set(report.future_input_r) == {1, 2}


def test_feature_built_from_the_target_is_caught(series, esn_features):
    leaky = np.hstack([esn_features, 2.0 * series.y[:, None] + 1.0])
    names = [f"s{j}" for j in range(esn_features.shape[1])] + ["hashrate_change"]
    report = check_no_leakage(leaky, series.y, series.u, SPLIT, feature_names=names)
    assert not report.ok
    assert ("hashrate_change", 0) in [(n, lag) for n, lag, _ in report.copies]
    with pytest.raises(LeakageError, match="hashrate_change"):
        report.raise_if_leaky()
    # a copy of the *previous* target is a leak too
    prev = np.concatenate([[0.0], series.y[:-1]])
    assert not check_no_leakage(np.hstack([esn_features, prev[:, None]]), series.y,
                                series.u, SPLIT).ok


def test_rows_that_saw_the_next_input_are_caught(series):
    states = EchoStateNetwork(30, seed=2).features(series.u)
    shifted = np.vstack([states[1:], states[-1:]])   # off-by-one: row t holds step t+1
    report = check_no_leakage(shifted, series.y, series.u, SPLIT)
    assert not report.ok
    assert report.future_input_r[1] > 0.9
    assert any("u(t+1)" in m for m in report.messages)


def test_timestamps_after_the_next_input_are_caught(series, esn_features):
    n = len(series.u)
    input_ns = np.arange(n, dtype=np.int64) * 1_000_000
    ok_times = input_ns + 999_999                        # data ends just before next input
    assert check_no_leakage(esn_features, series.y, series.u, SPLIT,
                            feature_time_ns=ok_times, input_time_ns=input_ns).ok
    late = ok_times.copy()
    late[[500, 900]] += 5                                # two rows read into the next step
    report = check_no_leakage(esn_features, series.y, series.u, SPLIT,
                              feature_time_ns=late, input_time_ns=input_ns)
    assert not report.ok and report.time_violations == 2


def test_leakage_check_refuses_an_empty_test_block(series, esn_features):
    valid = np.ones(len(series.y), bool)
    valid[SPLIT.test_rows(len(valid))[1:]] = False
    with pytest.raises(ReadoutError, match="1 valid test rows"):
        check_no_leakage(esn_features, series.y, series.u, SPLIT, valid=valid)


def test_multi_target_fit_equals_separate_fits(series, esn_features):
    Y = np.stack([series.y, np.roll(series.u, 3), series.u ** 2], axis=1)
    multi = fit_on_split(esn_features, Y, SPLIT)
    for j in range(3):
        one = fit_on_split(esn_features, Y[:, j], SPLIT)
        assert multi.alpha_[j] == one.alpha_
        np.testing.assert_allclose(multi.coef_[:, j], one.coef_, rtol=1e-7, atol=1e-10)
        assert multi.intercept_[j] == pytest.approx(one.intercept_)
        assert multi.val_nrmse_[j] == pytest.approx(one.val_nrmse_)
    assert multi.predict(esn_features[:5]).shape == (5, 3)
    with pytest.raises(ReadoutError):
        evaluate(esn_features, Y, SPLIT)                 # scoring is per target


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40)
@given(scale=st.floats(1e-3, 1e3), shift=st.floats(-1e3, 1e3), seed=st.integers(0, 2**31))
def test_nrmse_is_invariant_to_affine_units(scale, shift, seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(200)
    p = y + rng.normal(0, 0.3, 200)
    for norm in ("std", "range"):
        assert nrmse(scale * y + shift, scale * p + shift, norm) == pytest.approx(
            nrmse(y, p, norm), rel=1e-6)


@settings(max_examples=25)
@given(seed=st.integers(0, 2**31), log_scales=st.lists(st.floats(-4, 4), min_size=6, max_size=6))
def test_readout_predictions_do_not_depend_on_feature_units(seed, log_scales):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((300, 6))
    y = X @ rng.standard_normal(6) + rng.normal(0, 0.5, 300)
    split = Split(0, 150, 60)
    scaled = X * 10.0 ** np.array(log_scales) + rng.normal(0, 100, 6)   # units and offsets
    a = fit_on_split(X, y, split)
    b = fit_on_split(scaled, y, split)
    assert a.alpha_ == b.alpha_
    np.testing.assert_allclose(a.predict(X), b.predict(scaled), rtol=1e-6, atol=1e-6)


@settings(max_examples=30)
@given(n=st.integers(1, 60), k=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_input_delays_shift_the_input(n, k, seed):
    u = np.random.default_rng(seed).random(n)
    d = input_delays(u, k)
    assert d.shape == (n, k)
    for j in range(k):
        np.testing.assert_array_equal(d[j:, j], u[:max(n - j, 0)])
        assert not d[:j, j].any()
