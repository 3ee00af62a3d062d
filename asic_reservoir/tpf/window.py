"""Window-level probability filter on recorded runs, with a leakage check.

The nonce-level study asks whether SHA-256 state predicts a share; this one asks the
weaker question a recorded run can answer: does telemetry *before* a time window predict
whether the window will contain a share? Hash rate, temperature and pool difficulty move
the share rate, so a real effect is possible here -- and so is the classic mistake of
computing a feature from the very window whose label it predicts. :func:`check_leakage`
refuses any feature row whose source data reaches into its label window, and
:func:`window_features` only ever reads samples strictly before the window start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.tpf.stats import AucResult, delong_auc


class LeakageError(ValueError):
    """A feature was computed from data inside (or after the start of) its label window."""


class WindowError(ValueError):
    """Bad window-filter input (unsorted times, shapes that disagree, too few windows)."""


@dataclass(frozen=True)
class Telemetry:
    """Telemetry samples: ``times`` (seconds, ascending) and ``values`` ``(n, len(names))``."""

    times: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        t = np.asarray(self.times, dtype=float)
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 2 or v.shape != (len(t), len(self.names)):
            raise WindowError(f"telemetry values must have shape ({len(t)}, {len(self.names)})")
        if len(t) > 1 and np.any(np.diff(t) < 0):
            raise WindowError("telemetry times must be ascending")
        object.__setattr__(self, "times", t)
        object.__setattr__(self, "values", v)


@dataclass(frozen=True)
class WindowFeatures:
    """Feature rows, one per window, with the latest timestamp each row was computed from."""

    values: np.ndarray          # (n_windows, n_features)
    source_end: np.ndarray      # (n_windows,) latest data time used by the row
    names: tuple[str, ...]


def window_labels(share_times: Sequence[float], edges: Sequence[float]) -> np.ndarray:
    """True for each window ``[edges[i], edges[i+1])`` that contains a share."""
    edges = _edges(edges)
    shares = np.sort(np.asarray(share_times, dtype=float))
    counts = np.searchsorted(shares, edges[1:], "left") - np.searchsorted(shares, edges[:-1], "left")
    return counts > 0


def _edges(edges: Sequence[float]) -> np.ndarray:
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise WindowError("window edges must be at least two strictly increasing times")
    return e


def window_features(telemetry: Telemetry, share_times: Sequence[float], edges: Sequence[float],
                    lookback: float, gap: float = 0.0) -> WindowFeatures:
    """Features for each window from data in ``[start - lookback, start - gap)``.

    Per telemetry field: mean and last value in the lookback; plus the share count in
    the lookback (past shares are legitimate history). Windows without a telemetry sample
    in their lookback get NaN (dropped by :func:`evaluate_windows`).
    """
    if not lookback > 0 or gap < 0 or gap >= lookback:
        raise WindowError(f"need lookback > gap >= 0, got lookback={lookback}, gap={gap}")
    starts = _edges(edges)[:-1]
    lo, hi = starts - lookback, starts - gap
    t = telemetry.times
    first = np.searchsorted(t, lo, "left")
    stop = np.searchsorted(t, hi, "left")            # samples strictly before hi
    f = len(telemetry.names)
    values = np.full((len(starts), 2 * f + 1), np.nan)
    source_end = np.full(len(starts), -np.inf)
    for i, (a, b) in enumerate(zip(first, stop)):
        if b > a:
            chunk = telemetry.values[a:b]
            values[i, :f] = chunk.mean(axis=0)
            values[i, f:2 * f] = chunk[-1]
            source_end[i] = t[b - 1]
    shares = np.sort(np.asarray(share_times, dtype=float))
    s_first = np.searchsorted(shares, lo, "left")
    s_stop = np.searchsorted(shares, hi, "left")
    values[:, 2 * f] = s_stop - s_first
    if len(shares):
        last_share = shares[np.maximum(s_stop - 1, 0)]
        source_end = np.where(s_stop > s_first, np.maximum(source_end, last_share), source_end)
    names = (tuple(f"mean_{n}" for n in telemetry.names) + tuple(f"last_{n}" for n in telemetry.names)
             + ("past_shares",))
    return WindowFeatures(values, source_end, names)


def check_leakage(features: WindowFeatures, edges: Sequence[float]) -> None:
    """Raise :class:`LeakageError` if any row used data at or after its window's start."""
    starts = _edges(edges)[:-1]
    if len(features.source_end) != len(starts):
        raise WindowError("one feature row per window is required")
    leaky = np.flatnonzero(features.source_end >= starts)
    if len(leaky):
        i = int(leaky[0])
        raise LeakageError(
            f"{len(leaky)} of {len(starts)} feature rows use data from their own label window "
            f"(first: window {i} starts at {starts[i]:.6g}, feature data up to "
            f"{features.source_end[i]:.6g}); features must end before the window starts")


@dataclass(frozen=True)
class WindowResult:
    """Held-out (chronologically later) windows scored by a logistic predictor."""

    auc: AucResult
    n_train: int
    n_test: int
    test_positive_rate: float
    dropped: int
    names: tuple[str, ...]


def evaluate_windows(features: WindowFeatures, labels: np.ndarray, edges: Sequence[float],
                     train_fraction: float = 0.6, seed: int = 0) -> WindowResult:
    """Leakage check, chronological split, logistic regression, DeLong AUC on the test part."""

    check_leakage(features, edges)
    labels = np.asarray(labels, dtype=bool)
    ok = np.all(np.isfinite(features.values), axis=1)
    x, y = features.values[ok], labels[ok]
    n_train = int(math.floor(train_fraction * len(y)))
    if n_train < 4 or len(y) - n_train < 4:
        raise WindowError(f"too few usable windows ({len(y)}) for a train/test split")
    if len(np.unique(y[:n_train])) < 2:
        raise WindowError("training windows need both labels (all or no windows have shares)")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    model.fit(x[:n_train], y[:n_train])
    scores = model.predict_proba(x[n_train:])[:, 1]
    y_test = y[n_train:]
    return WindowResult(delong_auc(scores, y_test), n_train, len(y_test), float(y_test.mean()),
                        int((~ok).sum()), features.names)


def load_run(path: str, unit: str, run: int = 0, fields: Sequence[str] | None = None
             ) -> tuple[Telemetry, np.ndarray, np.ndarray]:
    """Telemetry, accepted share times and step edges (seconds from the run's first step).

    Windows are the recorded steps. ``fields`` picks telemetry fields; by default every
    field that is numeric in every reading.
    """

    with RunReader(path) as reader:
        steps = reader.steps(run)
        if not steps:
            raise WindowError(f"{path}: run {run} has no steps")
        origin = steps[0][4]
        edges = [(s[4] - origin) / 1e9 for s in steps] + [(steps[-1][5] - origin) / 1e9]
        readings = [(ns, data) for _, _, ns, data in reader.telemetry(run, unit)]
        shares = np.array([(row[2] - origin) / 1e9 for row in reader.shares(run, unit) if row[7]])
    if fields is None:
        numeric = [set(k for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
                   for _, d in readings]
        fields = sorted(set.intersection(*numeric)) if numeric else []
    if not fields:
        raise WindowError(f"{path}: no numeric telemetry fields for unit {unit!r}")
    times = np.array([(ns - origin) / 1e9 for ns, _ in readings])
    values = np.array([[_number(d.get(f)) for f in fields] for _, d in readings]).reshape(-1, len(fields))
    order = np.argsort(times, kind="stable")
    return Telemetry(times[order], values[order], tuple(fields)), shares, _edges(edges)


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def window_study(path: str, unit: str, run: int = 0, lookback: float | None = None,
                 gap: float = 0.0) -> dict:
    """Load a run, build leak-free window features, evaluate, and say what it means.

    ``lookback`` defaults to three median window lengths.
    """
    telemetry, shares, edges = load_run(path, unit, run)
    if lookback is None:
        lookback = 3.0 * float(np.median(np.diff(edges)))
    feats = window_features(telemetry, shares, edges, lookback, gap)
    labels = window_labels(shares, edges)
    result = evaluate_windows(feats, labels, edges)
    a = result.auc
    if a.p_value < 0.05 and a.low > 0.5:
        meaning = ("telemetry before a window predicts whether it holds a share: it tracks the "
                   "share *rate* (hash rate, difficulty), which is not a prediction of any hash")
    else:
        meaning = "telemetry before a window does not predict whether it holds a share"
    return {"run_file": path, "unit": unit, "run": run, "windows": len(edges) - 1,
            "lookback_s": lookback, "gap_s": gap, "features": list(result.names),
            "n_train": result.n_train, "n_test": result.n_test, "dropped": result.dropped,
            "test_positive_rate": result.test_positive_rate, "auc": a.auc,
            "auc_ci95": [a.low, a.high], "p_value": a.p_value, "verdict": meaning}
