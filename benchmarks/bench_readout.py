"""Readout fit time vs plain numpy least squares, and the NARMA-10 baseline table vs the science notes.

Fit time: RidgeReadout.fit (11 alphas on validation + refit) on a 10,000 x 1,000 state
matrix beside np.linalg.lstsq on the same matrix in the same run. Quality: mean ± std over
5 seeds (train 4000 + validation 2000, test 4000, std-normalised NRMSE) for every baseline
in the reference table, each printed beside the table's value; divergence rates of the
recursion beside the notes' figures. BLAS is limited to one
thread: on shared busy cores threaded OpenBLAS is many times slower and erratic.
"""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from asic_reservoir.analysis.baselines import run_baselines
from asic_reservoir.analysis.readout import REFERENCE_SPLIT, ChronologicalSplit, RidgeReadout
from asic_reservoir.analysis.tasks import NarmaDivergence, narma, narma_from_input
from benchmarks import Figure, quick

# Reference table of the science notes (std-normalised NRMSE, 5 seeds); None = not given.
REFERENCE = {"mean": (1.00, None), "ridge u(t)": (0.885, None),
             "ridge 10 delays": (0.585, 0.013), "ridge 20 delays": (0.398, 0.010),
             "ESN-50": (0.355, None), "ESN-100": (0.213, None), "ESN-200": (0.143, None),
             "ESN-400": (0.100, None)}


def _fit_time(rows: int, cols: int) -> list[Figure]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, cols))
    y = X @ rng.standard_normal(cols) + rng.standard_normal(rows)
    n_train, n_val = int(rows * 0.6), int(rows * 0.2)
    start = time.perf_counter()
    np.linalg.lstsq(X, y, rcond=None)
    t_lstsq = time.perf_counter() - start
    readout = RidgeReadout(cv=ChronologicalSplit(validation=n_val))
    start = time.perf_counter()
    readout.fit(X[:n_train + n_val], y[:n_train + n_val])
    t_fit = time.perf_counter() - start
    return [Figure(f"ridge fit {rows}x{cols}, 11 alphas + refit", t_fit, "s",
                   "np.linalg.lstsq same matrix", t_lstsq, "train 60% / val 20%")]


def _table(seeds: int, esn_sizes: tuple[int, ...]) -> list[Figure]:
    n = REFERENCE_SPLIT.washout + REFERENCE_SPLIT.train + REFERENCE_SPLIT.validation \
        + REFERENCE_SPLIT.test
    series = [narma(n, seed=s) for s in range(seeds)]
    tries = sum(s.tries for s in series)
    table = run_baselines([(s.u, s.y) for s in series], REFERENCE_SPLIT, esn_sizes=esn_sizes)
    figures = []
    for name, summary in table.items():
        ref, ref_std = REFERENCE[name]
        std = "n/a" if np.isnan(summary.std) else f"{summary.std:.3f}"
        note = f"± {std} over {summary.n} seeds"
        if ref_std is not None:
            note += f"; reference ± {ref_std}"
        figures.append(Figure(f"NARMA-10 {name}", summary.mean, "NRMSE",
                              "science notes", ref, note))
    figures.append(Figure("NARMA-10 input draws per series", tries / seeds, "draws",
                          note="divergence guard redraws"))
    return figures


def _divergence(steps: int, draws: int, reference_pct: float) -> Figure:
    rng = np.random.default_rng(12345)
    diverged = 0
    for _ in range(draws):
        try:
            narma_from_input(rng.uniform(0, 0.5, steps))
        except NarmaDivergence:
            diverged += 1
    p = diverged / draws
    se = (p * (1 - p) / draws) ** 0.5
    return Figure(f"NARMA-10 divergence, {steps}-step series", 100 * p, "%", "science notes",
                  reference_pct, f"{diverged}/{draws} draws, ± {100 * se:.2f} % (binomial SE)")


def run() -> list[Figure]:
    with threadpool_limits(1):
        if quick():
            return (_fit_time(2000, 200) + _table(2, (50, 100))
                    + [_divergence(2000, 200, 0.6), _divergence(20_000, 20, 9.0)])
        return (_fit_time(10_000, 1_000) + _table(5, (50, 100, 200, 400))
                + [_divergence(2000, 3000, 0.6), _divergence(20_000, 400, 9.0)])
