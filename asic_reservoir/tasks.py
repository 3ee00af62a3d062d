"""Reservoir benchmark tasks: NARMA-n with a divergence guard, and memory capacity.

Alignment convention (used by every function in this package)
------------------------------------------------------------
Arrays are indexed by *step* ``t``. ``u[t]`` is the input written into the reservoir at
step t; a state row ``X[t]`` is whatever was read back during step t, so it has seen
``u[0..t]`` and nothing later. The NARMA target array is aligned to the state that can
predict it: ``y[t]`` is the formula's y(t+1),

    y(t+1) = a1 y(t) + a2 y(t) sum_{i=0..n-1} y(t-i) + b u(t-n+1) u(t) + c

so regressing ``y[t]`` on ``X[t]`` is exactly "a readout that has seen u up to t predicts
y(t+1)". Values before the start of the series are taken as zero; discard a washout.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from asic_reservoir.readout import RidgeReadout, Split, ReadoutError

log = logging.getLogger(__name__)

Convention = Literal["formula", "reservoirpy"]
DIVERGENCE_LIMIT = 1e6
"""A NARMA value beyond this (or non-finite) marks a diverged series."""


class TaskError(ValueError):
    """Bad task parameters (order, length, input range)."""


class NarmaDivergence(ArithmeticError):
    """The NARMA recursion left ``|y| <= 1e6`` for this input; draw a new input."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"NARMA diverged at step {step} (y={value:.3g})")
        self.step = step
        self.value = value


@dataclass(frozen=True)
class NarmaSeries:
    """Input ``u`` and aligned target ``y`` (``y[t]`` = formula's y(t+1), see module doc).

    ``tries`` counts input draws needed to get a bounded series (1 = first draw).
    """

    u: np.ndarray
    y: np.ndarray
    order: int
    tries: int = 1
    convention: Convention = "formula"

    def __len__(self) -> int:
        return len(self.u)


def narma_from_input(u: np.ndarray, order: int = 10, *, a1: float = 0.3, a2: float = 0.05,
                     b: float = 1.5, c: float = 0.1,
                     convention: Convention = "formula") -> np.ndarray:
    """NARMA-``order`` target for a given input (aligned: ``y[t]`` is y(t+1)).

    ``convention="formula"`` is the recursion in the module doc (sum over y(t..t-n+1),
    input product u(t-n+1) u(t)). ``convention="reservoirpy"`` reproduces ReservoirPy's
    ``datasets.narma`` recursion, which sums y(t-n..t-1), uses u(t-n) and leaves the first
    ``order`` outputs at zero — a different (one-step shifted) system; it exists so that
    setups built with that library can be reproduced. Raises :class:`NarmaDivergence`.
    """
    if int(order) != order or order < 1:
        raise TaskError(f"order must be a positive integer, got {order!r}")
    order = int(order)
    u = np.asarray(u, dtype=float)
    if u.ndim != 1:
        raise TaskError(f"u must be one-dimensional, got shape {u.shape}")
    if not np.all(np.isfinite(u)):
        raise TaskError("u contains non-finite values")
    if convention not in ("formula", "reservoirpy"):
        raise TaskError(f"unknown convention {convention!r}")
    n = len(u)
    uu = u.tolist()
    y = [0.0] * n
    window = [0.0] * (order + 1)   # ring buffer of y[t-1], y[t-2], ..., y[t-order-1]
    pos = 0                        # index in `window` of y[t-1]
    lag = order - 1 if convention == "formula" else order
    start = 0 if convention == "formula" else order
    for t in range(start, n):
        prev = window[pos]
        if convention == "formula":
            # y[t-1] .. y[t-order]  = ring minus its oldest element y[t-order-1]
            s = sum(window) - window[(pos + order) % (order + 1)]
        else:
            # y[t-2] .. y[t-order-1] = ring minus its newest element y[t-1]
            s = sum(window) - prev
        u_lag = uu[t - lag] if t >= lag else 0.0
        value = a1 * prev + a2 * prev * s + b * u_lag * uu[t] + c
        if not math.isfinite(value) or abs(value) > DIVERGENCE_LIMIT:
            raise NarmaDivergence(t, value)
        y[t] = value
        pos = (pos - 1) % (order + 1)
        window[pos] = value
    return np.asarray(y)


def narma(n_steps: int, order: int = 10, *, seed: int | None = None,
          rng: np.random.Generator | None = None, max_tries: int = 100,
          low: float = 0.0, high: float = 0.5,
          convention: Convention = "formula", **coefficients: float) -> NarmaSeries:
    """Draw ``u ~ U[low, high]`` i.i.d. and its NARMA target; redraw while it diverges.

    The recursion diverges for some inputs (~0.6% of 2,000-step and ~9% of 20,000-step
    NARMA-10 series); each divergence draws a fresh input from the same generator, up to
    ``max_tries`` draws (then :class:`NarmaDivergence` propagates). Give ``seed`` or
    ``rng`` (not both) for reproducibility.
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise TaskError(f"n_steps must be a positive integer, got {n_steps!r}")
    if seed is not None and rng is not None:
        raise TaskError("give seed or rng, not both")
    if not (high > low):
        raise TaskError(f"input range must have high > low, got [{low}, {high}]")
    if max_tries < 1:
        raise TaskError("max_tries must be >= 1")
    gen = rng if rng is not None else np.random.default_rng(seed)
    for attempt in range(1, max_tries + 1):
        u = gen.uniform(low, high, int(n_steps))
        try:
            y = narma_from_input(u, order, convention=convention, **coefficients)
        except NarmaDivergence as exc:
            if attempt == max_tries:
                raise
            log.info("NARMA-%d draw %d diverged at step %d; redrawing", order, attempt, exc.step)
            continue
        return NarmaSeries(u=u, y=y, order=int(order), tries=attempt, convention=convention)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class MemoryCapacity:
    """Jaeger's memory capacity measured on held-out data.

    ``per_delay[k]`` is the test-set squared correlation between u(t-k) and the readout
    trained for delay k (k = 0 is the current input, which the state at step t has seen).
    Terms below ``threshold`` count as zero in ``total``; ``raw_total`` sums them all.
    """

    total: float
    raw_total: float
    per_delay: np.ndarray = field(repr=False)
    threshold: float
    n_test: int


def memory_capacity(states: np.ndarray, u: np.ndarray, k_max: int, split: Split, *,
                    threshold: float | None = None, alphas: np.ndarray | None = None,
                    valid: np.ndarray | None = None) -> MemoryCapacity:
    """MC = sum_k r^2(u(t-k), yhat_k(t)), one ridge readout per delay k = 0..k_max.

    Use i.i.d. input (e.g. ``np.random.default_rng(s).uniform(-1, 1, T)``): with
    correlated input the terms double-count. Each readout picks alpha on validation and is
    scored once on the test rows, so there is no in-sample r^2 inflation (~N/T per term);
    what remains is chance correlation of order 1/n_test, removed by zeroing terms below
    ``threshold`` (default ``9 / n_test``: a 3-sigma chance level). MC <= number of
    independent state features. NARMA's input (i.i.d. U[0, 0.5]) qualifies, so a NARMA
    run's states can be measured too. ``valid`` marks usable rows as in ``evaluate``.
    """
    states = np.asarray(states, dtype=float)
    if states.ndim == 1:
        states = states[:, None]
    u = np.asarray(u, dtype=float)
    if len(u) != len(states):
        raise TaskError(f"states have {len(states)} rows but u has {len(u)}")
    if int(k_max) != k_max or k_max < 0:
        raise TaskError(f"k_max must be a non-negative integer, got {k_max!r}")
    if split.washout < k_max:
        raise TaskError(f"washout ({split.washout}) must be >= k_max ({k_max}) so every "
                        "delayed target exists")
    test = split.test_rows(len(u), None if valid is None else np.asarray(valid, bool))
    n_test = len(test)
    if threshold is None:
        threshold = 9.0 / n_test
    per_delay = np.zeros(int(k_max) + 1)
    for k in range(int(k_max) + 1):
        target = np.zeros_like(u)
        target[k:] = u[:len(u) - k]
        readout = RidgeReadout(alphas=alphas) if alphas is not None else RidgeReadout()
        try:
            readout.fit(states, target, split, valid)
        except ReadoutError as exc:
            raise TaskError(f"memory capacity readout for delay {k} failed: {exc}") from exc
        pred = readout.predict(states[test])
        per_delay[k] = _r2(target[test], pred)
    kept = np.where(per_delay >= threshold, per_delay, 0.0)
    return MemoryCapacity(total=float(kept.sum()), raw_total=float(per_delay.sum()),
                          per_delay=per_delay, threshold=float(threshold), n_test=n_test)


def _r2(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Pearson correlation (0 when either side is constant)."""
    sa, sb = np.std(a), np.std(b)
    if sa == 0 or sb == 0:
        return 0.0
    r = np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb)
    return float(r * r)
