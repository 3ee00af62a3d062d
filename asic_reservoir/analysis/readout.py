"""Linear readout of reservoir states: chronological splits, a scikit-learn ridge regressor
with alpha chosen on validation, NRMSE, mean ± std over runs, and a leakage check.

Rows are steps (see :mod:`asic_reservoir.analysis.tasks` for the alignment convention: row ``t``
of the state matrix has seen inputs up to ``u[t]`` and is regressed on ``y[t]``).

Protocol (why it is this way): rows are never shuffled, because states are
autocorrelated and a shuffled split leaks neighbours into the test set; alpha is chosen
on a validation block that follows the training block (leave-one-out CV is optimistic on
autocorrelated states); the scaler is fitted on the training rows only; the test block
is touched once, for the reported score.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import check_is_fitted, validate_data

from asic_reservoir.blas import single_blas_thread

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-10, 0, 11))
"""Ridge penalties tried on validation (sum-of-squares convention, standardised features)."""

Normalise = Literal["std", "range"]


class ReadoutError(ValueError):
    """Bad readout input: shapes, split too long for the data, non-finite values."""


class LeakageError(ReadoutError):
    """Features carry information they could not have had at their step."""


# --------------------------------------------------------------------------- splits

@dataclass(frozen=True)
class Split:
    """Chronological washout / train / validation / test blocks, as row counts.

    ``test=None`` means "every row after validation". Rows are taken in this order from
    the start of the series and never shuffled. Use :meth:`fractions` to size by length.
    """

    washout: int
    train: int
    validation: int
    test: int | None = None

    def __post_init__(self) -> None:
        for name in ("washout", "train", "validation"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                raise ReadoutError(f"split {name} must be a non-negative integer, got {value!r}")
        if self.train < 1 or self.validation < 1:
            raise ReadoutError("split needs at least one training and one validation row")
        if self.test is not None and (int(self.test) != self.test or self.test < 1):
            raise ReadoutError(f"split test must be a positive integer or None, got {self.test!r}")

    @classmethod
    def fractions(cls, n_rows: int, washout: int, train: float = 0.4,
                  validation: float = 0.2) -> Split:
        """Split ``n_rows`` after ``washout`` into train/validation fractions; rest is test."""
        usable = n_rows - washout
        if usable < 3 or not (0 < train and 0 < validation and train + validation < 1):
            raise ReadoutError(f"cannot split {n_rows} rows (washout {washout}) into "
                               f"train {train}, validation {validation} and a test block")
        n_train = max(1, int(round(usable * train)))
        n_val = max(1, int(round(usable * validation)))
        if n_train + n_val >= usable:
            raise ReadoutError(f"{n_rows} rows leave no test block after washout {washout}")
        return cls(washout, n_train, n_val, None)

    def bounds(self, n_rows: int) -> tuple[int, int, int, int]:
        """(train start, validation start, test start, test end) for a series of n_rows."""
        a = self.washout
        b = a + self.train
        c = b + self.validation
        d = n_rows if self.test is None else c + self.test
        if d > n_rows or c >= d:
            need = c + (self.test or 1)
            raise ReadoutError(f"split needs {need} rows (washout {self.washout} + train "
                               f"{self.train} + validation {self.validation} + test "
                               f"{self.test or '>=1'}), series has {n_rows}")
        return a, b, c, d

    def _rows(self, lo: int, hi: int, valid: np.ndarray | None) -> np.ndarray:
        idx = np.arange(lo, hi)
        return idx if valid is None else idx[valid[lo:hi]]

    def train_rows(self, n_rows: int, valid: np.ndarray | None = None) -> np.ndarray:
        a, b, _, _ = self.bounds(n_rows)
        return self._rows(a, b, valid)

    def validation_rows(self, n_rows: int, valid: np.ndarray | None = None) -> np.ndarray:
        _, b, c, _ = self.bounds(n_rows)
        return self._rows(b, c, valid)

    def fit_rows(self, n_rows: int, valid: np.ndarray | None = None) -> np.ndarray:
        """Train + validation rows (what the final readout is refitted on)."""
        a, _, c, _ = self.bounds(n_rows)
        return self._rows(a, c, valid)

    def test_rows(self, n_rows: int, valid: np.ndarray | None = None) -> np.ndarray:
        _, _, c, d = self.bounds(n_rows)
        return self._rows(c, d, valid)


REFERENCE_SPLIT = Split(washout=200, train=4000, validation=2000, test=4000)
"""The split of the reference table in the science notes (10,200 steps per run)."""


# --------------------------------------------------------------------------- metrics

def nrmse(y_true: np.ndarray, y_pred: np.ndarray, normalise: Normalise = "std") -> float:
    """Root-mean-square error over the std (default) or the range of ``y_true``.

    Std-normalised: predicting the mean scores 1.0. Range-normalised is ~0.17x that for
    NARMA-10 and not comparable with it; always say which one a number is.
    """
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ReadoutError(f"nrmse needs equal non-empty lengths, got {y_true.size} and "
                           f"{y_pred.size}")
    rmse = math.sqrt(float(np.mean((y_pred - y_true) ** 2)))
    if normalise == "std":
        scale = float(np.std(y_true))
    elif normalise == "range":
        scale = float(np.ptp(y_true))
    else:
        raise ReadoutError(f"normalise must be 'std' or 'range', got {normalise!r}")
    if scale == 0:
        raise ReadoutError("nrmse is undefined for a constant target")
    return rmse / scale


def input_delays(u: np.ndarray, k: int) -> np.ndarray:
    """Lagged input matrix: column j is u(t-j), j = 0..k-1; zeros before the start."""
    u = np.asarray(u, dtype=float).ravel()
    if int(k) != k or k < 1:
        raise ReadoutError(f"number of delays must be a positive integer, got {k!r}")
    out = np.zeros((len(u), int(k)))
    for j in range(min(int(k), len(u))):        # delays longer than the series stay zero
        out[j:, j] = u[:len(u) - j]
    return out


def delay_names(k: int) -> list[str]:
    """Column names matching :func:`input_delays`."""
    return ["u(t)"] + [f"u(t-{j})" for j in range(1, int(k))]


# --------------------------------------------------------------------------- ridge

class ChronologicalSplit(BaseCrossValidator):
    """One chronological train/validation split: the last rows validate, earlier rows train.

    ``split(X)`` yields a single ``(train_idx, val_idx)``: validation is the last
    ``validation`` rows (an int is a row count, a float in (0, 1) a fraction, rounded up),
    training is every row before them except ``gap`` rows left out between the two (for a
    washout or input delays, as in scikit-learn's ``TimeSeriesSplit``). Never shuffles, so
    every validation row comes after every training row. Usable as ``cv`` of
    :class:`RidgeReadout` and of scikit-learn searches.
    """

    def __init__(self, validation: int | float = 0.25, gap: int = 0) -> None:
        if isinstance(validation, (bool, np.bool_)) or not (
                (isinstance(validation, numbers.Integral) and validation >= 1)
                or (isinstance(validation, numbers.Real) and 0 < validation < 1)):
            raise ReadoutError(f"validation must be a row count >= 1 or a fraction in (0, 1), "
                               f"got {validation!r}")
        if isinstance(gap, (bool, np.bool_)) or not isinstance(gap, numbers.Integral) or gap < 0:
            raise ReadoutError(f"gap must be a non-negative integer, got {gap!r}")
        self.validation = validation
        self.gap = gap

    def split(self, X, y=None, groups=None):
        """Yield one ``(train_idx, val_idx)`` pair, validation rows after training rows."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        n_val = int(self.validation) if isinstance(self.validation, numbers.Integral) \
            else math.ceil(self.validation * n)
        n_train = n - self.gap - n_val
        if n_train < 1:
            raise ReadoutError(f"cannot split {n} rows into a training block, a gap of "
                               f"{self.gap} and {n_val} validation rows")
        yield np.arange(n_train), np.arange(n - n_val, n)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return 1


class RidgeReadout(RegressorMixin, BaseEstimator):
    """Ridge regression readout with alpha chosen on chronological validation rows.

    A scikit-learn regressor. ``fit(X, y)`` takes the rows to fit on (rows = steps, in
    time order); ``cv`` (default :class:`ChronologicalSplit`) yields train/validation
    folds, each checked to put validation after training. Per fold, features are
    standardised with the fold's training-row statistics and one ridge per alpha is
    fitted on the training rows; the alpha with the lowest validation NRMSE averaged over
    folds wins (ties go to the larger alpha). The weights are then refitted on every row
    of ``X`` with that alpha, keeping the last fold's scaler (the feature units alpha was
    chosen in). Penalty convention: minimise ``||y - b - Xw||^2 + alpha ||w||^2`` on
    standardised X with an unpenalised intercept b (as scikit-learn's ``Ridge``).
    ``score`` is R^2 as for every scikit-learn regressor; the project's NRMSE is
    :func:`nrmse`. To fit on a :class:`Split` of a whole series use :func:`fit_on_split`.

    ``y`` may be 2-D (steps x targets): every target gets its own alpha from one shared
    factorisation (``alpha_``, ``val_nrmse_``, ``intercept_`` become arrays, ``coef_``
    is features x targets).

    Numerics: one QR of a fold's training rows [1 | X | y] gives the ridge path for every
    alpha through an SVD of the small triangular factor; the refit updates the last fold's
    factor with the remaining rows. Exact for tiny alphas (no normal equations), about 2x
    a plain least-squares solve of the same matrix.

    Attributes after fit: ``alpha_``, ``val_nrmse_`` (at ``alpha_``), ``val_curve_``
    (validation NRMSE per alpha, mean over folds), ``coef_``, ``intercept_`` (in
    standardised space), ``mean_``, ``scale_``, ``n_train_``, ``n_validation_`` (rows of
    the last fold), ``n_features_in_``.

    Example (states and target of 2,000 steps; the last 500 are held out for the test)::

        readout = RidgeReadout(cv=ChronologicalSplit(validation=500, gap=10))
        readout.fit(states[:1500], y[:1500])
        r2 = readout.score(states[1500:], y[1500:])
        error = nrmse(y[1500:], readout.predict(states[1500:]))
    """

    def __init__(self, alphas: float | Sequence[float] = DEFAULT_ALPHAS,
                 fit_intercept: bool = True, cv: BaseCrossValidator | None = None) -> None:
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.cv = cv

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @single_blas_thread
    def fit(self, X, y) -> RidgeReadout:
        """Choose alpha on the ``cv`` folds of (X, y), then refit on all rows."""
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True,
                             ensure_min_samples=3)
        alphas = np.asarray(self.alphas, dtype=float).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
            raise ReadoutError("alphas must be a finite value >= 0 or a non-empty list of them")
        y = np.asarray(y, dtype=float)
        Y = y if y.ndim == 2 else y[:, None]
        if Y.shape[1] == 0:
            raise ReadoutError("y has no target columns")
        folds = self._folds(X, Y)
        lead = 1 if self.fit_intercept else 0
        p = X.shape[1]
        curve = np.zeros((len(alphas), Y.shape[1]))
        for train, val in folds:
            # 1. alpha on validation: weights from the fold's training rows only.
            mean, scale = self._scaler(X[train])
            xt = (X[train] - mean) / scale
            # [1 | X | Y] -> R; with the ones column first, the trailing block of R is the
            # triangular factor of the centred [X | Y] (the intercept is projected out).
            r_train = np.linalg.qr(self._augment(xt, Y[train]), mode="r")
            u_, s, vt = np.linalg.svd(r_train[lead:, lead:lead + p], full_matrices=False)
            uty = u_.T @ r_train[lead:, lead + p:]
            ym = Y[train].mean(axis=0) if self.fit_intercept else np.zeros(Y.shape[1])
            xv_v = ((X[val] - mean) / scale) @ vt.T
            for i, alpha in enumerate(alphas):
                pred = xv_v @ (_shrink(s, alpha)[:, None] * uty) + ym
                curve[i] += _val_error(Y[val], pred)
        curve /= len(folds)
        best = len(alphas) - 1 - np.argmin(curve[::-1], axis=0)
        # 2. refit on every row with the chosen alphas: update the last fold's R with the
        # rows outside its training block, in time order.
        rest = np.setdiff1d(np.arange(len(Y)), train)
        xr = (X[rest] - mean) / scale
        r_fit = np.linalg.qr(np.vstack([r_train, self._augment(xr, Y[rest])]), mode="r")
        uf, sf, vtf = np.linalg.svd(r_fit[lead:, lead:lead + p], full_matrices=False)
        ufz = uf.T @ r_fit[lead:, lead + p:]
        coef = np.empty((p, Y.shape[1]))
        for b in np.unique(best):
            cols = best == b
            coef[:, cols] = vtf.T @ (_shrink(sf, alphas[b])[:, None] * ufz[:, cols])
        if self.fit_intercept:
            x_mean = (xt.sum(axis=0) + xr.sum(axis=0)) / len(Y)
            y_mean = (Y[train].sum(axis=0) + Y[rest].sum(axis=0)) / len(Y)
            intercept = y_mean - x_mean @ coef
        else:
            intercept = np.zeros(Y.shape[1])
        val_best = curve[best, np.arange(Y.shape[1])]
        if y.ndim == 1:
            self.coef_, self.intercept_ = coef[:, 0], float(intercept[0])
            self.alpha_, self.val_nrmse_ = float(alphas[best[0]]), float(val_best[0])
            self.val_curve_ = curve[:, 0]
        else:
            self.coef_, self.intercept_ = coef, intercept
            self.alpha_, self.val_nrmse_, self.val_curve_ = alphas[best], val_best, curve
        self.mean_, self.scale_ = mean, scale
        self.n_train_ = len(train)
        self.n_validation_ = len(val)
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def _folds(self, X: np.ndarray, Y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The splitter's folds, refused unless every validation row follows training."""
        cv = ChronologicalSplit() if self.cv is None else self.cv
        if not hasattr(cv, "split"):
            raise ReadoutError(f"cv must be a splitter with split(X, y), got {cv!r}")
        folds = [(np.asarray(t, dtype=int), np.asarray(v, dtype=int))
                 for t, v in cv.split(X, Y)]
        if not folds:
            raise ReadoutError(f"{cv!r} yielded no train/validation split")
        for train, val in folds:
            if len(train) < 2 or len(val) < 1:
                raise ReadoutError(f"a fold has {len(train)} training and {len(val)} "
                                   "validation rows; the readout needs >= 2 and >= 1")
            if train.max() >= val.min() or train.min() < 0 or val.max() >= len(Y):
                raise ReadoutError(f"{cv!r} is not chronological: validation rows must come "
                                   "after every training row (no shuffled or k-fold splits)")
        return folds

    def _augment(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        cols = [np.ones((len(x), 1))] if self.fit_intercept else []
        return np.hstack([*cols, x, y])

    def _scaler(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = rows.mean(axis=0) if self.fit_intercept else np.zeros(rows.shape[1])
        scale = rows.std(axis=0)
        scale[scale == 0] = 1.0          # constant column: centred to zero, carries nothing
        return mean, scale


def fit_on_split(X: np.ndarray, y: np.ndarray, split: Split, *,
                 alphas: float | Sequence[float] = DEFAULT_ALPHAS,
                 valid: np.ndarray | None = None) -> RidgeReadout:
    """Fit a :class:`RidgeReadout` on ``split``'s train + validation blocks of a series.

    ``X`` and ``y`` are full length (rows = steps, washout and test included); only the
    train and validation rows are passed to ``fit``, with a :class:`ChronologicalSplit`
    that puts the validation block last. ``valid`` (bool per row) drops marked rows (e.g.
    steps a unit missed) from every block without moving the block boundaries.
    """
    X, y, valid = _check_xy(X, y, valid, multi=True)
    n = len(y)
    train = split.train_rows(n, valid)
    val = split.validation_rows(n, valid)
    if len(train) < 2 or len(val) < 1:
        marked = "" if valid is None else \
            f" ({int((~valid[split.fit_rows(n)]).sum())} of those steps marked invalid)"
        raise ReadoutError(f"too few valid rows: {len(train)} train (of {split.train}), "
                           f"{len(val)} validation (of {split.validation}){marked}")
    rows = np.concatenate([train, val])
    _check_finite(X, y, rows)
    readout = RidgeReadout(alphas, cv=ChronologicalSplit(validation=len(val)))
    return readout.fit(X[rows], y[rows])


def _shrink(s: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge filter factors s / (s^2 + alpha); zero for null directions when alpha = 0."""
    denom = s * s + alpha
    return np.divide(s, denom, out=np.zeros_like(s), where=denom > 1e-300)


def _val_error(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-column NRMSE; a constant validation target still ranks alphas by its RMSE."""
    sd = y_true.std(axis=0)
    rmse = np.sqrt(np.mean((y_pred - y_true) ** 2, axis=0))
    return np.where(sd > 0, rmse / np.where(sd > 0, sd, 1.0), rmse)


def _check_xy(X: np.ndarray, y: np.ndarray, valid: np.ndarray | None, multi: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or not (y.ndim == 1 or (multi and y.ndim == 2 and y.shape[1] > 0)):
        raise ReadoutError(f"X must be 2-D (steps x features) and y "
                           f"{'1-D or 2-D' if multi else '1-D'}, got {X.shape} and {y.shape}")
    if len(X) != len(y):
        raise ReadoutError(f"X has {len(X)} rows but y has {len(y)}")
    if X.shape[1] == 0:
        raise ReadoutError("X has no feature columns")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (len(y),):
            raise ReadoutError(f"valid mask has shape {valid.shape}, expected ({len(y)},)")
    return X, y, valid


def _check_finite(X: np.ndarray, y: np.ndarray, rows: np.ndarray) -> None:
    bad_y = ~np.isfinite(y[rows])
    if bad_y.any():
        raise ReadoutError(f"target has {int(bad_y.sum())} non-finite values in the rows "
                           "used; mark those steps invalid")
    bad_x = ~np.isfinite(X[rows])
    if bad_x.any():
        cols = np.flatnonzero(bad_x.any(axis=0))
        raise ReadoutError(f"features have {int(bad_x.sum())} non-finite values (columns "
                           f"{cols[:10].tolist()}) in the rows used; mark those steps invalid")


# --------------------------------------------------------------------------- evaluate

@dataclass(frozen=True)
class Score:
    """One readout scored once on the test block.

    ``nrmse`` is std-normalised; ``nrmse_range`` is range-normalised (print only when
    asked, labelled). ``y_test``/``y_pred`` are kept for plots.
    """

    nrmse: float
    nrmse_range: float
    alpha: float
    val_nrmse: float
    n_train: int
    n_validation: int
    n_test: int
    n_features: int
    n_skipped: int = 0
    feature_names: tuple[str, ...] = ()
    test_index: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    y_test: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    y_pred: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def evaluate(features: np.ndarray, target: np.ndarray, split: Split, *,
             alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
             feature_names: Sequence[str] | None = None,
             valid: np.ndarray | None = None) -> Score:
    """Fit a :class:`RidgeReadout` on train/validation and score it once on test.

    ``valid`` marks usable rows; rows marked False are skipped everywhere and counted in
    ``Score.n_skipped`` (over washout..test end).
    """
    X, y, valid = _check_xy(features, target, valid)
    if feature_names is not None and len(feature_names) != X.shape[1]:
        raise ReadoutError(f"{len(feature_names)} feature names for {X.shape[1]} columns")
    readout = fit_on_split(X, y, split, alphas=alphas, valid=valid)
    test = split.test_rows(len(y), valid)
    if len(test) < 2:
        raise ReadoutError(f"only {len(test)} valid test rows")
    _check_finite(X, y, test)
    pred = readout.predict(X[test])
    a, _, _, d = split.bounds(len(y))
    skipped = 0 if valid is None else int((~valid[a:d]).sum())
    return Score(nrmse=nrmse(y[test], pred), nrmse_range=nrmse(y[test], pred, "range"),
                 alpha=readout.alpha_, val_nrmse=readout.val_nrmse_,
                 n_train=readout.n_train_, n_validation=readout.n_validation_,
                 n_test=len(test), n_features=X.shape[1], n_skipped=skipped,
                 feature_names=tuple(feature_names or ()), test_index=test,
                 y_test=y[test].copy(), y_pred=pred)


# --------------------------------------------------------------------------- summaries

@dataclass(frozen=True)
class Summary:
    """Mean ± sample std (ddof=1) over ``n`` independent runs; std is NaN when n = 1.

    ``range_normalised`` optionally carries the same runs' range-normalised NRMSE.
    """

    mean: float
    std: float
    n: int
    values: tuple[float, ...] = ()
    range_normalised: Summary | None = None

    def cell(self, digits: int = 3) -> str:
        """``"0.585 ± 0.013 (5)"``; ``"0.866 (1)"`` when there is no spread."""
        if self.n == 0:
            return "n/a"
        if math.isnan(self.std):
            return f"{self.mean:.{digits}f} ({self.n})"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} ({self.n})"

    def to_json(self) -> dict:
        out = {"nrmse_mean": _json_float(self.mean), "nrmse_std": _json_float(self.std),
               "runs": self.n, "values": [_json_float(v) for v in self.values]}
        if self.range_normalised is not None:
            out["nrmse_range_mean"] = _json_float(self.range_normalised.mean)
            out["nrmse_range_std"] = _json_float(self.range_normalised.std)
        return out


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sample std of per-run values (NaN std for a single run, n=0 for none)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return Summary(float("nan"), float("nan"), 0, ())
    if not np.all(np.isfinite(arr)):
        raise ReadoutError("cannot summarise non-finite values")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return Summary(float(arr.mean()), std, int(arr.size), tuple(float(v) for v in arr))


def summarize_scores(scores: Sequence[Score]) -> Summary:
    """Summary of std-normalised NRMSE over runs, carrying the range-normalised one too."""
    base = summarize([s.nrmse for s in scores])
    rng = summarize([s.nrmse_range for s in scores])
    return Summary(base.mean, base.std, base.n, base.values, range_normalised=rng)


# --------------------------------------------------------------------------- leakage

@dataclass(frozen=True)
class LeakageReport:
    """Outcome of :func:`check_no_leakage`; ``ok`` is False when anything was flagged."""

    ok: bool
    messages: tuple[str, ...]
    future_input_r: dict[int, float]
    input_only_r: dict[int, float]
    margin: float
    copies: tuple[tuple[str, int, float], ...]
    time_violations: int

    def raise_if_leaky(self) -> None:
        if not self.ok:
            raise LeakageError("; ".join(self.messages))


def check_no_leakage(features: np.ndarray, target: np.ndarray, u: np.ndarray, split: Split, *,
                     feature_names: Sequence[str] | None = None, horizons: Sequence[int] = (1, 2),
                     input_lags: int = 20, z: float = 4.0, copy_r: float = 0.98,
                     copy_lags: int = 10, valid: np.ndarray | None = None,
                     feature_time_ns: np.ndarray | None = None,
                     input_time_ns: np.ndarray | None = None) -> LeakageReport:
    """Check that row t of ``features`` used nothing after step t and no target values.

    Three independent checks, each sound on its own:

    1. Future input (statistical, needs i.i.d. input as NARMA and memory capacity use):
       a row that saw only u[0..t] cannot predict u[t+h]. For each horizon h a ridge from
       the features to u[t+h] is fitted on train/validation and its held-out correlation r
       compared with the same readout on ``input_lags`` input delays (what the input itself
       allows, ~0 for i.i.d. input). Flagged when r exceeds that by ``z * sqrt(2/n_test)``.
       Catches off-by-one row alignment and features built from later targets.
    2. Target copies: a single feature whose |correlation| with y shifted by -copy_lags..
       copy_lags steps is >= ``copy_r`` (alone it would score NRMSE <= ~0.2, better than a
       100-node ESN's whole readout) is treated as computed from the target.
    3. Timestamps (when given): ``feature_time_ns[t]``, the time of the latest raw datum
       used for row t, must precede ``input_time_ns[t+1]``, when u[t+1] was applied.
    """
    X, y, valid = _check_xy(features, target, valid)
    u = np.asarray(u, dtype=float).ravel()
    if len(u) != len(y):
        raise ReadoutError(f"u has {len(u)} rows, features/target have {len(y)}")
    n = len(y)
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise ReadoutError(f"{len(names)} feature names for {X.shape[1]} columns")
    base_valid = np.ones(n, bool) if valid is None else valid
    messages: list[str] = []
    flagged = False

    # 1. future input
    future_r: dict[int, float] = {}
    input_r: dict[int, float] = {}
    n_test = len(split.test_rows(n, base_valid))
    if n_test < 3:
        raise ReadoutError(f"only {n_test} valid test rows: too few for the leakage check")
    margin = z * math.sqrt(2.0 / n_test)
    if np.std(u) == 0:
        messages.append("input is constant: future-input check not possible")
    else:
        lagged = input_delays(u, input_lags)
        for h in horizons:
            if h < 1:
                raise ReadoutError(f"horizons must be >= 1, got {h}")
            fut = np.zeros(n)
            fut[:n - h] = u[h:]
            ok_rows = base_valid.copy()
            ok_rows[n - h:] = False
            future_r[h] = _heldout_r(X, fut, split, ok_rows)
            input_r[h] = _heldout_r(lagged, fut, split, ok_rows)
            if future_r[h] > max(input_r[h], 0.0) + margin:
                flagged = True
                messages.append(f"features predict the future input u(t+{h}) with held-out "
                                f"r={future_r[h]:.3f} (input delays alone: {input_r[h]:.3f}, "
                                f"margin {margin:.3f}): rows saw data from after their step")

    # 2. target copies
    copies: list[tuple[str, int, float]] = []
    rows = split.fit_rows(n, base_valid)
    xs = _standardise(X[rows])
    for lag in range(-copy_lags, copy_lags + 1):
        src = rows - lag
        keep = (src >= 0) & (src < n)
        ys = _standardise(y[src[keep]][:, None])[:, 0]
        if not np.any(ys):
            continue
        r = xs[keep].T @ ys / keep.sum()
        for j in np.flatnonzero(np.abs(r) >= copy_r):
            copies.append((names[j], lag, float(r[j])))
    flagged = flagged or bool(copies)
    for name, lag, r in copies:
        what = "y(t)" if lag == 0 else f"y(t{-lag:+d})"
        messages.append(f"feature {name!r} is a copy of the target {what} (r={r:.4f})")

    # 3. timestamps
    violations = 0
    if (feature_time_ns is None) != (input_time_ns is None):
        raise ReadoutError("give both feature_time_ns and input_time_ns, or neither")
    if feature_time_ns is not None:
        ft = np.asarray(feature_time_ns, dtype=np.int64)
        it = np.asarray(input_time_ns, dtype=np.int64)
        if ft.shape != (n,) or it.shape != (n,):
            raise ReadoutError("feature_time_ns and input_time_ns need one entry per row")
        late = (ft[:-1] >= it[1:]) & base_valid[:-1]
        violations = int(late.sum())
        if violations:
            flagged = True
            first = int(np.flatnonzero(late)[0])
            messages.append(f"{violations} rows use data recorded after the next input was "
                            f"applied (first: row {first})")
    return LeakageReport(ok=not flagged, messages=tuple(messages), future_input_r=future_r,
                         input_only_r=input_r, margin=margin, copies=tuple(copies),
                         time_violations=violations)


def _heldout_r(X: np.ndarray, target: np.ndarray, split: Split, valid: np.ndarray) -> float:
    readout = fit_on_split(X, target, split, valid=valid)
    test = split.test_rows(len(target), valid)
    pred = readout.predict(X[test])
    t = target[test]
    if np.std(pred) == 0 or np.std(t) == 0:
        return 0.0
    return float(np.corrcoef(pred, t)[0, 1])


def _standardise(a: np.ndarray) -> np.ndarray:
    sd = a.std(axis=0)
    sd[sd == 0] = np.inf
    return (a - a.mean(axis=0)) / sd
