"""Baselines and controls every reservoir score is printed beside.

Baselines answer "how hard is this task without the hardware?": predict the mean, ridge
on u(t), ridge on k input delays, a software echo state network. Controls answer "did the
hardware do the work?": the same readout on the input delays the hardware readout got, the
hardware states shuffled in time (must score ~1.0), and the memory-matched controls — input
delays, exponential averages of u at the unit's physical time constants with quadratic
terms, quadratic delays — since any fading memory beats a memoryless control. Controls are
scored on exactly the hardware's rows. All use the readout protocol of
:mod:`asic_reservoir.analysis.readout` and the alignment of :mod:`asic_reservoir.analysis.tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from asic_reservoir.blas import single_blas_thread
from asic_reservoir.analysis.readout import (DEFAULT_ALPHAS, ReadoutError, Score, Split, Summary,
                                    check_no_leakage, delay_names, evaluate, input_delays,
                                    nrmse, summarize_scores)
from asic_reservoir.simulator.profiles import PROFILES, Profile

HARDWARE = "hardware"
HARDWARE_INPUT = "hardware + input"
INPUT_ONLY = "input only"
SHUFFLED = "shuffled states"
CONSTANT_INPUT = "constant input"
MEMORY_DELAYS = (10, 20)
QUADRATIC_DELAYS = 10
FILTER_BANK = "filter bank + quadratic"
MEMORY_CONTROLS = (*(f"{k} input delays" for k in MEMORY_DELAYS), FILTER_BANK,
                   f"quadratic {QUADRATIC_DELAYS} delays")
"""Controls with memory of the input but no hardware: a gain is claimed only against the
strongest of them (lowest mean NRMSE), since any fading-memory filter beats ``input only``."""
CONTROLS = (INPUT_ONLY, SHUFFLED, CONSTANT_INPUT, *MEMORY_CONTROLS)
"""Names of the control rows (the experiment layer runs the constant-input one)."""


def mean_predictor(y: np.ndarray, split: Split, valid: np.ndarray | None = None) -> Score:
    """Predict the train+validation mean on every test row (NRMSE ~1.0 by construction)."""
    y = np.asarray(y, dtype=float)
    valid = None if valid is None else np.asarray(valid, bool)
    fit = split.fit_rows(len(y), valid)
    test = split.test_rows(len(y), valid)
    pred = np.full(len(test), float(y[fit].mean()))
    return Score(nrmse=nrmse(y[test], pred), nrmse_range=nrmse(y[test], pred, "range"),
                 alpha=float("nan"), val_nrmse=float("nan"), n_train=len(fit) - split.validation,
                 n_validation=split.validation, n_test=len(test), n_features=0,
                 test_index=test, y_test=y[test].copy(), y_pred=pred)


def ridge_on_delays(u: np.ndarray, y: np.ndarray, split: Split, k: int, *,
                    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                    valid: np.ndarray | None = None) -> Score:
    """Ridge on u(t), u(t-1), ..., u(t-k+1): a linear, finite-memory readout of the input."""
    return evaluate(input_delays(u, k), y, split, alphas=alphas, feature_names=delay_names(k),
                    valid=valid)


def ridge_on_input(u: np.ndarray, y: np.ndarray, split: Split, *,
                   alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                   valid: np.ndarray | None = None) -> Score:
    """Ridge on u(t) alone: the memoryless readout (NARMA-10: ~0.87 here, ~0.885 in the notes)."""
    return ridge_on_delays(u, y, split, 1, alphas=alphas, valid=valid)


@dataclass(frozen=True)
class EchoStateNetwork:
    """Leaky tanh echo state network, the software reservoir baseline.

    x(t) = (1 - leak) x(t-1) + leak tanh(W x(t-1) + W_in u(t) + b), with W a dense
    Gaussian matrix scaled to ``spectral_radius``, W_in ~ U[-input_scaling, input_scaling],
    b ~ U[-bias, bias]. The readout gets the states and the input u(t) (``features``).
    Defaults (radius 0.8, input scaling 0.05, bias 0.5, no leak) were the best
    *validation* NRMSE of a 3x3x2x2 grid (radius 0.8/0.95/1.0, input 0.05/0.2/1.0, bias
    0/0.5, leak 1/0.5) for N=100 on a NARMA-10 series of seed 1000, which no test or
    benchmark uses; they are fixed, not tuned per run. A bias matters because u >= 0.
    """

    n: int = 100
    spectral_radius: float = 0.8
    input_scaling: float = 0.05
    leak: float = 1.0
    bias: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 1:
            raise ReadoutError(f"ESN size must be a positive integer, got {self.n!r}")
        if not 0 < self.leak <= 1:
            raise ReadoutError(f"leak must be in (0, 1], got {self.leak}")
        if self.spectral_radius <= 0 or self.input_scaling <= 0 or self.bias < 0:
            raise ReadoutError("spectral_radius and input_scaling must be > 0, bias >= 0")

    def weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(W, W_in, b) drawn from ``seed``."""
        rng = np.random.default_rng(self.seed)
        w = rng.standard_normal((self.n, self.n))
        radius = float(np.max(np.abs(np.linalg.eigvals(w))))
        w *= self.spectral_radius / radius
        w_in = rng.uniform(-self.input_scaling, self.input_scaling, self.n)
        b = rng.uniform(-self.bias, self.bias, self.n) if self.bias else np.zeros(self.n)
        return w, w_in, b

    @single_blas_thread
    def states(self, u: np.ndarray) -> np.ndarray:
        """State matrix (steps x n); row t has seen u[0..t], starting from x = 0."""
        u = np.asarray(u, dtype=float).ravel()
        w, w_in, b = self.weights()
        x = np.zeros(self.n)
        out = np.empty((len(u), self.n))
        drive = np.outer(u, w_in) + b
        leak = self.leak
        for t in range(len(u)):
            pre = np.tanh(w @ x + drive[t])
            x = pre if leak == 1.0 else (1 - leak) * x + leak * pre
            out[t] = x
        return out

    def features(self, u: np.ndarray) -> np.ndarray:
        """States with u(t) appended (input fed to the readout too)."""
        u = np.asarray(u, dtype=float).ravel()
        return np.hstack([self.states(u), u[:, None]])


def esn_baseline(u: np.ndarray, y: np.ndarray, split: Split, n: int = 100, seed: int = 0, *,
                 alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                 valid: np.ndarray | None = None, **esn: float) -> Score:
    """Score an ESN of ``n`` nodes (input also fed to the readout) on (u, y)."""
    net = EchoStateNetwork(n=n, seed=seed, **esn)
    names = [f"esn{n}_{i}" for i in range(n)] + ["u(t)"]
    return evaluate(net.features(u), y, split, alphas=alphas, feature_names=names, valid=valid)


def shuffled_states_control(states: np.ndarray, y: np.ndarray, split: Split, seed: int = 0, *,
                            alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                            valid: np.ndarray | None = None) -> Score:
    """Same readout on the states with their rows permuted in time: must score ~1.0.

    A result that survives this control came from the readout, not the states.
    """
    states = np.asarray(states, dtype=float)
    if states.ndim == 1:
        states = states[:, None]
    perm = np.random.default_rng(seed).permutation(len(states))
    # A permuted row is usable when both its state's original step and its own step are.
    keep = None if valid is None else np.asarray(valid, bool)[perm] & np.asarray(valid, bool)
    return evaluate(states[perm], y, split, alphas=alphas, valid=keep)


def input_only_control(u: np.ndarray, y: np.ndarray, split: Split, k: int = 1, *,
                       alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                       valid: np.ndarray | None = None) -> Score:
    """Same readout on the ``k`` input delays the hardware readout was also given.

    Compare "hardware + input" with this (same input columns, no hardware): the
    difference is what the hardware adds.
    """
    return evaluate(input_delays(u, k), y, split, alphas=alphas, feature_names=delay_names(k),
                    valid=valid)


def unit_time_constants(profile: Profile) -> dict[str, float]:
    """A unit's physical time constants in seconds, from its simulator profile.

    Die (die heat capacity x die-to-heatsink resistance), heatsink (heatsink capacity x
    heatsink-to-air resistance at full fan, its fastest), regulator, fan spin-up, and the
    firmware's hashrate averaging window (a reported rate is a running mean over it).
    """
    return {"die": profile.c_die * profile.r_die_sink,
            "heatsink": profile.c_sink * profile.r_sink_air_full,
            "regulator": profile.vr_tau_s, "fan": profile.fan_tau_s,
            "hashrate window": profile.hashrate_window_s}


GENERIC_TIME_CONSTANTS_STEPS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""Filter-bank time constants (in steps) for a unit whose physics is not profiled."""


def time_constants_in_steps(model: str, step_seconds: float) -> tuple[float, ...]:
    """The filter bank's time constants for ``model`` at ``step_seconds`` per step."""
    prof = PROFILES.get(str(model).lower())
    if prof is None or not step_seconds > 0:
        return GENERIC_TIME_CONSTANTS_STEPS
    return tuple(sorted(t / step_seconds for t in unit_time_constants(prof).values()))


def exponential_averages(u: np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """Columns e_i(t) = a_i e_i(t-1) + (1 - a_i) u(t), a_i = exp(-1/tau_i), e_i(-1) = 0.

    What a first-order physical node with time constant tau_i (in steps) would hold if
    it followed the input linearly: the memory a thermal mass gives for free.
    """
    u = np.asarray(u, dtype=float).ravel()
    taus = np.asarray(list(taus), dtype=float)
    if taus.size == 0 or np.any(~(taus > 0)):
        raise ReadoutError(f"time constants must be > 0 steps, got {taus.tolist()}")
    a = np.exp(-1.0 / taus)
    out = np.empty((len(u), len(taus)))
    e = np.zeros(len(taus))
    for t, v in enumerate(u):
        e = a * e + (1 - a) * v
        out[t] = e
    return out


def quadratic_expansion(x: np.ndarray) -> np.ndarray:
    """The columns of ``x`` followed by every product x_i x_j, i <= j."""
    x = np.asarray(x, dtype=float)
    i, j = np.triu_indices(x.shape[1])
    return np.hstack([x, x[:, i] * x[:, j]])


def filter_bank_features(u: np.ndarray, taus: Sequence[float], input_lags: int = 1
                         ) -> np.ndarray:
    """u's ``input_lags`` delays and exponential averages at ``taus``, with quadratic terms
    of u(t) and the averages."""
    lagged = input_delays(u, input_lags)
    base = np.hstack([lagged[:, :1], exponential_averages(u, taus)])
    return np.hstack([lagged[:, 1:], quadratic_expansion(base)])


def memory_controls(u: np.ndarray, y: np.ndarray, split: Split, *, input_lags: int = 1,
                    time_constants: Sequence[float] = GENERIC_TIME_CONSTANTS_STEPS,
                    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                    valid: np.ndarray | None = None) -> dict[str, Score]:
    """The memory-matched controls of :data:`MEMORY_CONTROLS` on the given rows.

    Each gets at least the ``input_lags`` input delays the hardware readout was given, so
    no delay embedding is the hardware's alone.
    """
    out = {}
    for k in MEMORY_DELAYS:
        out[f"{k} input delays"] = evaluate(input_delays(u, max(k, input_lags)), y, split,
                                            alphas=alphas, valid=valid)
    out[FILTER_BANK] = evaluate(filter_bank_features(u, time_constants, input_lags), y, split,
                                alphas=alphas, valid=valid)
    quad = quadratic_expansion(input_delays(u, QUADRATIC_DELAYS))
    if input_lags > QUADRATIC_DELAYS:
        quad = np.hstack([quad, input_delays(u, input_lags)[:, QUADRATIC_DELAYS:]])
    out[f"quadratic {QUADRATIC_DELAYS} delays"] = evaluate(quad, y, split, alphas=alphas,
                                                           valid=valid)
    return out


BASELINE_DELAYS = MEMORY_DELAYS


def run_baselines(series: Sequence[tuple[np.ndarray, np.ndarray]],
                  split: Split | Sequence[Split], *,
                  valid: Sequence[np.ndarray | None] | None = None,
                  delays: Sequence[int] = BASELINE_DELAYS,
                  esn_sizes: Sequence[int] = (100,),
                  alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS) -> dict[str, Summary]:
    """Baselines over independent runs: one ``(u, y)`` per run, ESN seeded by run index.

    ``split`` (one for all runs or one per run) and ``valid`` (one mask or None per run)
    give the rows each run is scored on: pass the hardware's, so a baseline and the
    hardware it is printed beside are scored on exactly the same rows.
    Returns name -> :class:`Summary` (mean ± std over runs), names ``mean``,
    ``ridge u(t)``, ``ridge {k} delays``, ``ESN-{n}``, in that order.
    """
    if not series:
        raise ReadoutError("run_baselines needs at least one (u, y) run")
    splits = [split] * len(series) if isinstance(split, Split) else list(split)
    masks = list(valid) if valid is not None else [None] * len(series)
    if len(splits) != len(series) or len(masks) != len(series):
        raise ReadoutError(f"{len(series)} runs need as many splits and valid masks, got "
                           f"{len(splits)} and {len(masks)}")
    scores: dict[str, list[Score]] = {"mean": [], "ridge u(t)": []}
    for k in delays:
        scores[f"ridge {k} delays"] = []
    for n in esn_sizes:
        scores[f"ESN-{n}"] = []
    for run, ((u, y), sp, ok) in enumerate(zip(series, splits, masks)):
        scores["mean"].append(mean_predictor(y, sp, ok))
        scores["ridge u(t)"].append(ridge_on_input(u, y, sp, alphas=alphas, valid=ok))
        for k in delays:
            scores[f"ridge {k} delays"].append(ridge_on_delays(u, y, sp, k, alphas=alphas,
                                                               valid=ok))
        for n in esn_sizes:
            scores[f"ESN-{n}"].append(esn_baseline(u, y, sp, n, seed=run, alphas=alphas,
                                                   valid=ok))
    return {name: summarize_scores(s) for name, s in scores.items()}


def hardware_scores(states: np.ndarray, u: np.ndarray, y: np.ndarray, split: Split, *,
                    input_lags: int = 1, seed: int = 0, valid: np.ndarray | None = None,
                    feature_names: Sequence[str] | None = None,
                    alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                    check_leakage: bool = True, feature_time_ns: np.ndarray | None = None,
                    input_time_ns: np.ndarray | None = None,
                    time_constants: Sequence[float] | None = GENERIC_TIME_CONSTANTS_STEPS,
                    controls: Mapping[str, Score] | None = None) -> dict[str, Score]:
    """The standard readouts and controls of one run's hardware states.

    Returns ``{"hardware": states only, "hardware + input": states + input_lags input
    delays, "input only": the same input delays alone, "shuffled states": states permuted
    in time}`` and the :func:`memory_controls` (filter bank at ``time_constants`` steps;
    ``time_constants=None`` leaves the memory controls out), every one scored on exactly
    the hardware's rows (``valid`` and ``split``). With ``check_leakage`` the states first go through
    :func:`~asic_reservoir.analysis.readout.check_no_leakage` (raises ``LeakageError``), including
    its timestamp check when ``feature_time_ns`` (latest raw datum per row) and
    ``input_time_ns`` (when each u[t] was applied) are given. ``controls``: the
    :func:`input_controls` of these arguments, when already computed for another unit.
    """
    states = np.asarray(states, dtype=float)
    if states.ndim == 1:
        states = states[:, None]
    names = list(feature_names) if feature_names is not None else \
        [f"x{j}" for j in range(states.shape[1])]
    if check_leakage:
        check_no_leakage(states, y, u, split, feature_names=names, valid=valid,
                         feature_time_ns=feature_time_ns,
                         input_time_ns=input_time_ns).raise_if_leaky()
    lagged = input_delays(u, input_lags)
    hardware = evaluate(states, y, split, alphas=alphas, feature_names=names, valid=valid)
    with_input = evaluate(np.hstack([states, lagged]), y, split, alphas=alphas,
                          feature_names=names + delay_names(input_lags), valid=valid)
    if controls is None:
        controls = input_controls(u, y, split, input_lags=input_lags,
                                  time_constants=time_constants, alphas=alphas, valid=valid)
    return {
        HARDWARE: hardware, HARDWARE_INPUT: with_input, INPUT_ONLY: controls[INPUT_ONLY],
        SHUFFLED: shuffled_states_control(states, y, split, seed, alphas=alphas, valid=valid),
        **{name: score for name, score in controls.items() if name != INPUT_ONLY},
    }


def input_controls(u: np.ndarray, y: np.ndarray, split: Split, *, input_lags: int = 1,
                   time_constants: Sequence[float] | None = GENERIC_TIME_CONSTANTS_STEPS,
                   alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                   valid: np.ndarray | None = None) -> dict[str, Score]:
    """The controls of :func:`hardware_scores` that read only the input: ``input only`` and
    the :func:`memory_controls` (none when ``time_constants`` is None). They depend on the
    input series and the rows alone, so units driven by one series on the same rows share
    them (an analysis fits them once, not once per unit)."""
    out = {INPUT_ONLY: input_only_control(u, y, split, input_lags, alphas=alphas, valid=valid)}
    if time_constants is not None:
        out.update(memory_controls(u, y, split, input_lags=input_lags,
                                   time_constants=time_constants, alphas=alphas, valid=valid))
    return out
