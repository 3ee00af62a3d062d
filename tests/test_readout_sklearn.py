"""The readout as a scikit-learn estimator: the library's own estimator checks, the
chronological splitter, and use inside a Pipeline and a GridSearchCV."""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import SkipTest

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from asic_reservoir.analysis.readout import (ChronologicalSplit, ReadoutError, RidgeReadout,
                                             evaluate, fit_on_split, nrmse)
from tests.support import READOUT_SPLIT as SPLIT

# Checks that scikit-learn itself skips in this environment, and why that is acceptable.
# Every other check must pass; an unexpected skip fails the test below.
ENVIRONMENT_SKIPS = {
    "check_array_api_input": "needs SCIPY_ARRAY_API=1 before SciPy is imported; "
                             "test_array_api_check_in_a_fresh_interpreter runs it that way",
    "check_regressor_data_not_an_array": "its NotAnArray half runs (and passes) before the "
                                         "pandas half skips: the project does not depend on pandas",
}


pytestmark = pytest.mark.usefixtures("one_blas_thread")


@parametrize_with_checks([RidgeReadout()])
def test_sklearn_estimator_checks(estimator, check):
    try:
        check(estimator)
    except SkipTest as exc:
        name = check.func.__name__
        assert name in ENVIRONMENT_SKIPS, f"unexpected skip of {name}: {exc}"
        pytest.skip(f"{name}: {ENVIRONMENT_SKIPS[name]}")


def test_array_api_check_in_a_fresh_interpreter():
    """Array-API dispatch on NumPy input leaves the readout's results unchanged."""
    code = ("from sklearn.utils.estimator_checks import check_array_api_input\n"
            "from asic_reservoir.analysis.readout import RidgeReadout\n"
            "check_array_api_input('RidgeReadout', RidgeReadout(), 'numpy', "
            "expect_only_array_outputs=False)\nprint('passed')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "SCIPY_ARRAY_API": "1"}, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "passed", done.stderr[-2000:]


def test_chronological_split_puts_validation_last_after_a_gap():
    X = np.zeros((100, 2))
    [(train, val)] = list(ChronologicalSplit(validation=30, gap=5).split(X))
    np.testing.assert_array_equal(train, np.arange(65))
    np.testing.assert_array_equal(val, np.arange(70, 100))
    [(train, val)] = list(ChronologicalSplit(validation=0.25).split(X[:10]))
    assert (len(train), val.tolist()) == (7, [7, 8, 9])          # fraction rounds up
    assert ChronologicalSplit().get_n_splits() == 1
    with pytest.raises(ReadoutError, match="cannot split 10 rows"):
        list(ChronologicalSplit(validation=8, gap=2).split(X[:10]))
    for bad in (dict(validation=0), dict(validation=1.5), dict(validation=True),
                dict(gap=-1), dict(gap=0.5)):
        with pytest.raises(ReadoutError):
            ChronologicalSplit(**bad)


@settings(max_examples=60)
@given(n=st.integers(3, 400), validation=st.one_of(st.integers(1, 400), st.floats(0.01, 0.99)),
       gap=st.integers(0, 50))
def test_chronological_split_never_leaks(n, validation, gap):
    cv = ChronologicalSplit(validation, gap)
    n_val = validation if isinstance(validation, int) else int(np.ceil(validation * n))
    if n - gap - n_val < 1:
        with pytest.raises(ReadoutError, match="cannot split"):
            list(cv.split(np.zeros((n, 1))))
        return
    [(train, val)] = list(cv.split(np.zeros((n, 1))))
    assert train[0] == 0 and val[-1] == n - 1 and len(val) == n_val
    assert val[0] - train[-1] == gap + 1                         # exactly `gap` rows left out
    np.testing.assert_array_equal(np.diff(train), 1)
    np.testing.assert_array_equal(np.diff(val), 1)


def test_non_chronological_splitters_are_refused(series, esn_features):
    X, y = esn_features[:600], series.y[:600]
    for cv in (KFold(3), ShuffleSplit(2, random_state=0)):
        with pytest.raises(ReadoutError, match="not chronological"):
            RidgeReadout(cv=cv).fit(X, y)
    with pytest.raises(ReadoutError, match="splitter"):
        RidgeReadout(cv=3).fit(X, y)


def test_several_folds_average_the_validation_curve(series, esn_features):
    """With TimeSeriesSplit the curve is the mean of each fold's; the refit uses all rows
    in the last fold's feature units."""
    X, y = esn_features[50:1550], series.y[50:1550]
    cv = TimeSeriesSplit(n_splits=3, test_size=200, gap=10)
    ro = RidgeReadout(cv=cv).fit(X, y)
    curves = []
    for train, val in cv.split(X):
        end = val[-1] + 1
        one = RidgeReadout(cv=ChronologicalSplit(len(val), gap=10)).fit(X[:end], y[:end])
        assert one.n_train_ == len(train)
        curves.append(one.val_curve_)
    np.testing.assert_allclose(ro.val_curve_, np.mean(curves, axis=0), rtol=1e-12)
    alphas = np.asarray(ro.alphas)
    assert ro.alpha_ == alphas[len(alphas) - 1 - np.argmin(ro.val_curve_[::-1])]
    last_train = list(cv.split(X))[-1][0]
    xs = (X - X[last_train].mean(0)) / X[last_train].std(0)
    ref = Ridge(alpha=ro.alpha_).fit(xs, y)                       # every row, gap included
    np.testing.assert_allclose(ro.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    assert ro.intercept_ == pytest.approx(ref.intercept_)


def test_score_is_r2_and_nrmse_stays_the_projects_number(series, esn_features):
    ro = fit_on_split(esn_features, series.y, SPLIT)
    test = SPLIT.test_rows(len(series.y))
    pred = ro.predict(esn_features[test])
    r2 = ro.score(esn_features[test], series.y[test])
    assert r2 == pytest.approx(1.0 - nrmse(series.y[test], pred) ** 2)
    assert evaluate(esn_features, series.y, SPLIT).nrmse == pytest.approx(np.sqrt(1.0 - r2))
    params = ro.get_params()
    assert set(params) == {"alphas", "fit_intercept", "cv"} and params["cv"].validation == 500
    fresh = clone(ro).set_params(alphas=1e-3)
    assert not hasattr(fresh, "coef_") and fresh.fit(esn_features[:800], series.y[:800]).alpha_ == 1e-3


def test_readout_in_a_pipeline(series, esn_features):
    rows = SPLIT.fit_rows(len(series.y))
    X, y = esn_features[rows], series.y[rows]
    pipe = make_pipeline(PCA(10, random_state=0), RidgeReadout(cv=ChronologicalSplit(500)))
    pipe.fit(X, y)
    pca = PCA(10, random_state=0).fit(X)
    ro = RidgeReadout(cv=ChronologicalSplit(500)).fit(pca.transform(X), y)
    test = SPLIT.test_rows(len(series.y))
    np.testing.assert_allclose(pipe.predict(esn_features[test]),
                               ro.predict(pca.transform(esn_features[test])), rtol=1e-9)
    assert pipe[-1].alpha_ == ro.alpha_


def test_grid_search_with_the_chronological_splitter(series, esn_features):
    """GridSearchCV scores each candidate on the splitter's validation rows only, after a
    gap, and refits the best on every row it was given (the test block is never passed)."""
    rows = SPLIT.fit_rows(len(series.y))
    X, y = esn_features[rows], series.y[rows]
    cv = ChronologicalSplit(validation=400, gap=20)
    pipe = make_pipeline(PCA(random_state=0), RidgeReadout(cv=ChronologicalSplit(300)))
    grid = {"pca__n_components": [2, 8, 31]}
    search = GridSearchCV(pipe, grid, cv=cv).fit(X, y)
    [(train, val)] = list(cv.split(X))
    assert train[-1] + 20 < val[0] and val[-1] == len(X) - 1
    manual = []
    for n in grid["pca__n_components"]:
        fitted = clone(pipe).set_params(pca__n_components=n).fit(X[train], y[train])
        manual.append(fitted.score(X[val], y[val]))
    np.testing.assert_allclose(search.cv_results_["split0_test_score"], manual, rtol=1e-9)
    best = grid["pca__n_components"][int(np.argmax(manual))]
    assert search.best_params_ == {"pca__n_components": best}
    assert manual[0] < manual[-1]                   # 2 components lose NARMA's memory
    refit = clone(pipe).set_params(pca__n_components=best).fit(X, y)
    test = SPLIT.test_rows(len(series.y))
    np.testing.assert_allclose(search.predict(esn_features[test]),
                               refit.predict(esn_features[test]), rtol=1e-9)
