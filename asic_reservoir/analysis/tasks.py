"""Reservoir benchmark tasks: NARMA-n with a divergence guard, memory capacity and
information processing capacity.

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

import functools
import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.polynomial import legendre

from asic_reservoir.analysis.readout import DEFAULT_ALPHAS, Split, ReadoutError, fit_on_split

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
    ``rng`` (not both) for reproducibility. With the NARMA-10 coefficients, orders above
    10 diverge almost always (~37% of 2,000-step draws at order 11, ~all at 12): use
    smaller ones for long memories (e.g. a1=0.2, a2=0.04, c=0.001 for order 30).
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
    correlated input the terms double-count. Each readout picks its alpha on validation and
    is scored once on the test rows, so there is no in-sample r^2 inflation (~N/T per term);
    what remains is chance correlation of order 1/n_test, removed by zeroing terms below
    ``threshold`` (default ``9 / n_test``: a 3-sigma chance level). MC <= number of
    independent state features. NARMA's input (i.i.d. U[0, 0.5]) qualifies, so a NARMA
    run's states can be measured too. ``valid`` marks usable rows as in ``evaluate``.
    """
    states, u = _states_and_input(states, u)
    if int(k_max) != k_max or k_max < 0:
        raise TaskError(f"k_max must be a non-negative integer, got {k_max!r}")
    targets = np.stack([_delayed(u, k) for k in range(int(k_max) + 1)], axis=1)
    per_delay, n_test = _heldout_scores(states, targets, split, valid, alphas, int(k_max),
                                        squared_correlation=True)
    threshold = 9.0 / n_test if threshold is None else threshold
    kept = np.where(per_delay >= threshold, per_delay, 0.0)
    return MemoryCapacity(total=float(kept.sum()), raw_total=float(per_delay.sum()),
                          per_delay=per_delay, threshold=float(threshold), n_test=n_test)


@dataclass(frozen=True)
class Capacities:
    """Information processing capacities (Dambre et al., Sci. Rep. 2, 514, 2012).

    ``terms`` maps a basis function, written as a sorted tuple of delays with repeats
    (``(0,)`` = P1(u(t)), ``(2, 2)`` = P2(u(t-2)), ``(0, 3)`` = P1(u(t)) P1(u(t-3))), to
    its held-out capacity 1 - NMSE (clipped at 0). ``by_degree[d]`` sums the terms of
    total degree d above ``threshold``; ``total`` sums all degrees (<= number of
    independent state features). Degree 1 is the memory capacity.
    """

    total: float
    by_degree: dict[int, float]
    terms: dict[tuple[int, ...], float] = field(repr=False)
    threshold: float
    n_test: int


def information_processing_capacity(states: np.ndarray, u: np.ndarray, split: Split, *,
                                    max_delay: int = 10, max_degree: int = 2,
                                    low: float = 0.0, high: float = 0.5,
                                    threshold: float | None = None,
                                    alphas: np.ndarray | None = None,
                                    valid: np.ndarray | None = None) -> Capacities:
    """Capacities for products of Legendre polynomials of past inputs, up to a degree.

    ``u`` must be i.i.d. uniform on [low, high] (NARMA's input is, with the defaults); it
    is mapped to [-1, 1], where Legendre polynomials of distinct delays are orthogonal, so
    the capacities add up. Every basis function of total degree <= ``max_degree`` over
    delays 0..``max_delay`` is a target of one shared multi-target ridge readout (alpha
    per target on validation, scored once on test). A memoryless, linear response to u(t)
    shows up as a single degree-1 term at delay 0; nonlinearity as degree >= 2 terms;
    memory as terms at delays > 0. The default ``threshold`` ``9 / n_test`` zeroes
    chance-level terms.
    """
    states, u = _states_and_input(states, u)
    keys, basis = legendre_basis(u, max_delay, max_degree, low, high)
    scores, n_test = _heldout_scores(states, basis, split, valid, alphas,
                                     int(max_delay), squared_correlation=False)
    threshold = 9.0 / n_test if threshold is None else threshold
    terms = {k: float(c) for k, c in zip(keys, scores)}
    by_degree = {d: float(sum(c for k, c in terms.items() if len(k) == d and c >= threshold))
                 for d in range(1, int(max_degree) + 1)}
    return Capacities(total=float(sum(by_degree.values())), by_degree=by_degree, terms=terms,
                      threshold=float(threshold), n_test=n_test)


def legendre_basis(u: np.ndarray, max_delay: int, max_degree: int, low: float = 0.0,
                   high: float = 0.5) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """The IPC basis: every product of Legendre polynomials of past inputs of total degree
    1..``max_degree`` over delays 0..``max_delay``, keyed as in :class:`Capacities`, one
    column each (rows before a delay's first input use zeros). ``u`` is mapped from
    [low, high] to [-1, 1], where the terms of i.i.d. uniform input are orthogonal."""
    u = np.asarray(u, dtype=float).ravel()
    if int(max_delay) != max_delay or max_delay < 0:
        raise TaskError(f"max_delay must be a non-negative integer, got {max_delay!r}")
    if int(max_degree) != max_degree or not 1 <= max_degree <= 5:
        raise TaskError(f"max_degree must be an integer in 1..5, got {max_degree!r}")
    if not high > low:
        raise TaskError(f"input range must have high > low, got [{low}, {high}]")
    x = (2.0 * u - low - high) / (high - low)
    if x.min() < -1 - 1e-9 or x.max() > 1 + 1e-9:
        raise TaskError(f"u leaves the declared input range [{low}, {high}]")
    delayed = [_delayed(x, k) for k in range(int(max_delay) + 1)]
    keys: list[tuple[int, ...]] = []
    columns: list[np.ndarray] = []
    for degree in range(1, int(max_degree) + 1):
        for combo in itertools.combinations_with_replacement(range(int(max_delay) + 1), degree):
            target = np.ones_like(x)
            for delay, power in Counter(combo).items():
                target = target * legendre.legval(delayed[delay], [0] * power + [1])
            keys.append(combo)
            columns.append(target)
    return keys, np.stack(columns, axis=1)


def _states_and_input(states: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    states = np.asarray(states, dtype=float)
    if states.ndim == 1:
        states = states[:, None]
    u = np.asarray(u, dtype=float).ravel()
    if len(u) != len(states):
        raise TaskError(f"states have {len(states)} rows but u has {len(u)}")
    return states, u


def _delayed(x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    out[k:] = x[:len(x) - k]
    return out


def _heldout_scores(states: np.ndarray, targets: np.ndarray, split: Split,
                    valid: np.ndarray | None, alphas: np.ndarray | None, max_delay: int,
                    squared_correlation: bool) -> tuple[np.ndarray, int]:
    """Held-out score per target column: r^2 or capacity 1 - NMSE (clipped at 0)."""
    if split.washout < max_delay:
        raise TaskError(f"washout ({split.washout}) must be >= the largest delay "
                        f"({max_delay}) so every delayed target exists")
    mask = None if valid is None else np.asarray(valid, bool)
    try:
        readout = fit_on_split(states, targets, split, valid=mask,
                               alphas=DEFAULT_ALPHAS if alphas is None else alphas)
    except ReadoutError as exc:
        raise TaskError(f"capacity readout failed: {exc}") from exc
    test = split.test_rows(len(states), mask)
    t = targets[test]
    pred = readout.predict(states[test])
    tc, pc = t - t.mean(axis=0), pred - pred.mean(axis=0)
    var_t = (tc ** 2).mean(axis=0)
    if squared_correlation:
        var_p = (pc ** 2).mean(axis=0)
        cov = (tc * pc).mean(axis=0)
        ok = (var_t > 0) & (var_p > 0)
        score = np.where(ok, cov ** 2 / np.where(ok, var_t * var_p, 1.0), 0.0)
    else:
        mse = ((pred - t) ** 2).mean(axis=0)
        score = np.where(var_t > 0, 1.0 - mse / np.where(var_t > 0, var_t, 1.0), 0.0)
        score = np.clip(score, 0.0, None)
    return score, len(test)


@dataclass(frozen=True)
class CapacityProfile:
    """What a set of states computes from its input: memory capacity (per delay and total)
    and information processing capacity by degree, both on held-out rows."""

    memory: MemoryCapacity
    ipc: Capacities


MC_DELAYS = 20
"""Delays of the memory capacity (twice NARMA-10's reach)."""
IPC_DELAYS = 10
IPC_DEGREE = 2


def capacity_profile(states: np.ndarray, u: np.ndarray, split: Split, *,
                     valid: np.ndarray | None = None, alphas: np.ndarray | None = None,
                     low: float = 0.0, high: float = 0.5) -> CapacityProfile:
    """Memory capacity up to :data:`MC_DELAYS` and IPC up to degree :data:`IPC_DEGREE` over
    :data:`IPC_DELAYS` delays (both capped at the split's washout, so every target exists);
    ``u`` must be i.i.d. uniform on [low, high], as NARMA's input is."""
    k = min(MC_DELAYS, split.washout)
    return CapacityProfile(
        memory_capacity(states, u, k, split, alphas=alphas, valid=valid),
        information_processing_capacity(states, u, split, max_delay=min(IPC_DELAYS, k),
                                        max_degree=IPC_DEGREE, low=low, high=high,
                                        alphas=alphas, valid=valid))


@dataclass(frozen=True)
class TargetProfile:
    """What a task needs, on the IPC basis (as in Hulser et al., Nanophotonics 12, 937,
    2023): ``terms[key]`` is the share of the target's variance on that basis function (its
    squared correlation with it; the shares of orthogonal terms add up to at most 1).
    ``total`` sums the shares over the basis; ``1 - total`` lies in terms outside it
    (higher degrees, longer delays)."""

    terms: dict[tuple[int, ...], float] = field(repr=False)
    total: float
    by_degree: dict[int, float]
    n_rows: int
    coefficients: dict[tuple[int, ...], float] = field(default_factory=dict, repr=False)
    """The target's regression coefficient on each term (per unit of the basis function)."""
    low: float = 0.0
    high: float = 0.5

    def part(self, u: np.ndarray, keys) -> np.ndarray:
        """The target's part on the basis terms ``keys``, on input ``u`` (its coefficients
        times those terms of ``u``): what a reservoir must hold to reproduce that part."""
        keys = set(keys)
        k_max = max((max(k) for k in keys), default=0)
        degree = max((len(k) for k in keys), default=1)
        basis_keys, basis = legendre_basis(u, k_max, degree, self.low, self.high)
        w = np.array([self.coefficients.get(k, 0.0) if k in keys else 0.0 for k in basis_keys])
        return basis @ w

    def share(self, keys) -> float:
        """The target's share of variance on the basis terms ``keys``."""
        return float(sum(self.terms.get(k, 0.0) for k in set(keys)))

    def nrmse_floor_of_part(self, keys, capacity: float) -> float:
        """The NRMSE floor when the states reproduce the target's part on ``keys`` (share s)
        with held-out capacity C (1 - NMSE of a readout of that part): R^2 <= (sqrt(1 - s)
        + sqrt(s C))^2, the rest of the target counted as fully reproducible. Measuring the
        part as a whole counts whatever the states hold of it in phase, which the per-term
        floor must assume at worst."""
        s = self.share(keys)
        r2 = (math.sqrt(max(1.0 - s, 0.0)) + math.sqrt(s * max(float(capacity), 0.0))) ** 2
        return math.sqrt(max(1.0 - r2, 0.0))

    def linear(self, k_max: int) -> np.ndarray:
        """Shares on P1(u(t-k)), k = 0..k_max (zero beyond the profiled delays)."""
        return np.array([self.terms.get((k,), 0.0) for k in range(int(k_max) + 1)])

    def nrmse_floor(self, capacities: dict[tuple[int, ...], float]) -> float:
        """The lowest NRMSE a linear readout of states with these capacities can reach.

        At unit target variance, the target's part on a set S of orthogonal terms projects
        onto the states with norm at most sum_S sqrt(share_b C_b) (C_b, the capacity, is the
        squared norm of term b's projection; triangle inequality), and the rest with norm at
        most sqrt(1 - share_S), so R^2 <= (sqrt(1 - share_S) + sum_S sqrt(share_b C_b))^2
        for every S; S grows from the terms of lowest capacity and the tightest bound is
        kept. A term without a measured capacity never enters S, so it loosens the floor.
        Unlike the sum of share x capacity, which assumes the states hold each term apart,
        this holds for states that mix terms (an exponential average holds many delays in
        one feature). Capacities measured low (a readout trained on few rows) raise the
        floor: compare it with NRMSEs of readouts trained like the capacities'."""
        ranked = sorted((max(float(c), 0.0), self.terms[k]) for k, c in capacities.items()
                        if self.terms.get(k, 0.0) > 0.0)
        best, share_s, reach = 1.0, 0.0, 0.0
        for capacity, share in ranked:
            share_s += share
            reach += math.sqrt(share * capacity)
            best = min(best, (math.sqrt(max(1.0 - share_s, 0.0)) + reach) ** 2)
        return math.sqrt(max(1.0 - best, 0.0))


def target_profile(y: np.ndarray, u: np.ndarray, *, max_delay: int = MC_DELAYS,
                   max_degree: int = IPC_DEGREE, low: float = 0.0, high: float = 0.5,
                   threshold: float | None = None) -> TargetProfile:
    """A target's shares on the IPC basis of its input (:func:`legendre_basis`), on the
    rows from ``max_delay`` on (every delayed input exists). Use a long series: a share's
    chance level is ~1/rows, and shares below ``threshold`` (default ``9 / rows``, as for
    capacities) count as 0. Measuring a reservoir's capacities on the same basis says which
    of the target's terms it has and which are missing."""
    y = np.asarray(y, dtype=float).ravel()
    u = np.asarray(u, dtype=float).ravel()
    if len(y) != len(u):
        raise TaskError(f"target has {len(y)} rows but u has {len(u)}")
    keys, basis = legendre_basis(u, max_delay, max_degree, low, high)
    rows = slice(int(max_delay), None)
    b, t = basis[rows], y[rows]
    n = len(t)
    if n < 3 or not t.std() > 0:
        raise TaskError(f"target profile needs a varying target over >= 3 rows, got {n}")
    bc, tc = b - b.mean(axis=0), t - t.mean()
    var_b = (bc ** 2).mean(axis=0)
    r2 = np.where(var_b > 0, (bc.T @ tc / n) ** 2 / np.where(var_b > 0, var_b, 1.0)
                  / (tc ** 2).mean(), 0.0)
    threshold = 9.0 / n if threshold is None else threshold
    terms = {k: float(v) if v >= threshold else 0.0 for k, v in zip(keys, r2)}
    by_degree = {d: float(sum(v for k, v in terms.items() if len(k) == d))
                 for d in range(1, int(max_degree) + 1)}
    coef = np.where(var_b > 0, (bc.T @ tc / n) / np.where(var_b > 0, var_b, 1.0), 0.0)
    return TargetProfile(terms, float(sum(by_degree.values())), by_degree, n,
                         {k: float(c) for k, c in zip(keys, coef)}, float(low), float(high))


@functools.lru_cache(maxsize=4)
def narma_profile(order: int = 10, n_steps: int = 20_000, seed: int = 0, *,
                  max_delay: int = MC_DELAYS, max_degree: int = IPC_DEGREE) -> TargetProfile:
    """:func:`target_profile` of NARMA-``order`` on one long series of its standard input
    (i.i.d. U[0, 0.5]): a property of the task, not of any reservoir."""
    series = narma(n_steps, order, seed=seed)
    return target_profile(series.y, series.u, max_delay=max_delay, max_degree=max_degree)


@dataclass(frozen=True)
class Consistency:
    """How reproducibly a reservoir answers the same input (Lymburn et al., Chaos 29,
    2019): per state feature, the correlation between two responses to one input series.
    ``1 - r`` of a feature is the share of its variance that is noise, not response."""

    mean_r: float
    median_r: float
    per_feature: np.ndarray = field(repr=False)
    n_rows: int


def consistency(first: np.ndarray, second: np.ndarray, valid: np.ndarray | None = None,
                washout: int = 0) -> Consistency:
    """Correlation per feature between two state matrices recorded with the same input
    (rows after ``washout`` that ``valid`` keeps; features constant in either are left out)."""
    a = np.asarray(first, dtype=float)
    b = np.asarray(second, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise TaskError(f"consistency needs two state matrices of one shape, got {a.shape} "
                        f"and {b.shape}")
    rows = np.arange(len(a)) >= washout
    if valid is not None:
        rows &= np.asarray(valid, bool)
    a, b = a[rows], b[rows]
    if len(a) < 3:
        raise TaskError(f"only {len(a)} usable rows for a consistency measure")
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    sa, sb = np.sqrt((a ** 2).sum(axis=0)), np.sqrt((b ** 2).sum(axis=0))
    keep = (sa > 0) & (sb > 0)
    if not keep.any():
        raise TaskError("no state feature varies in both responses")
    r = (a[:, keep] * b[:, keep]).sum(axis=0) / (sa[keep] * sb[keep])
    return Consistency(float(r.mean()), float(np.median(r)), r, int(len(a)))
