"""NARMA generator against the formula and ReservoirPy's recursion; divergence guard;
memory capacity on inputs with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from asic_reservoir.analysis.baselines import EchoStateNetwork
from asic_reservoir.analysis.readout import Split, input_delays
from asic_reservoir.analysis.tasks import (NarmaDivergence, TaskError, memory_capacity, narma,
                                  narma_from_input)


pytestmark = pytest.mark.usefixtures("one_blas_thread")


def naive_formula(u: np.ndarray, order: int = 10) -> np.ndarray:
    """y(t+1) = 0.3 y(t) + 0.05 y(t) sum_{i<order} y(t-i) + 1.5 u(t-order+1) u(t) + 0.1,
    written out with explicit indices; Y[0] = y(0) = 0, values before the start are 0."""
    n = len(u)
    Y = np.zeros(n + 1)
    for t in range(n):
        window = sum(Y[t - i] for i in range(order) if t - i >= 0)
        u_lag = u[t - order + 1] if t - order + 1 >= 0 else 0.0
        Y[t + 1] = 0.3 * Y[t] + 0.05 * Y[t] * window + 1.5 * u_lag * u[t] + 0.1
    return Y[1:]          # target for step t is y(t+1)


def reservoirpy_narma(n_timesteps: int, order: int, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ReservoirPy 0.4 ``datasets.narma`` recursion with a given ``u`` of length
    n_timesteps + order (a1=0.3, a2=0.05, b=1.5, c=0.1, x0=[0]): it sums y(t-order..t-1),
    uses u(t-order) and returns (u, y[order:])."""
    y = np.zeros(n_timesteps + order)
    for t in range(order, n_timesteps + order - 1):
        y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * np.sum(y[t - order:t])
                    + 1.5 * u[t - order] * u[t] + 0.1)
    return u, y[order:]


@pytest.mark.parametrize("order", [2, 5, 10])
def test_narma_matches_naive_formula(order):
    u = np.random.default_rng(order).uniform(0, 0.5, 800)
    np.testing.assert_allclose(narma_from_input(u, order), naive_formula(u, order),
                               rtol=1e-12, atol=1e-14)


def test_narma_series_is_formula_of_its_own_input():
    s = narma(3000, seed=11)
    assert s.tries == 1 and s.order == 10 and len(s) == 3000
    assert s.u.min() >= 0 and s.u.max() <= 0.5 and s.u.std() == pytest.approx(0.5 / 12 ** 0.5, rel=0.05)
    np.testing.assert_allclose(s.y, naive_formula(s.u), rtol=1e-12)
    # same seed, same series; different seed, different series
    np.testing.assert_array_equal(narma(3000, seed=11).y, s.y)
    assert not np.allclose(narma(3000, seed=12).y, s.y)


def test_reservoirpy_convention_reproduces_its_recursion_with_one_step_shift():
    n, order = 2000, 10
    u = np.random.default_rng(3).uniform(0, 0.5, n + order)
    _, rpy = reservoirpy_narma(n, order, u)
    ours = narma_from_input(u, order, convention="reservoirpy")
    # ours[t] is the value driven by u[t] (y(t+1)); ReservoirPy's y[k] is y(order + k).
    np.testing.assert_allclose(rpy, ours[order - 1:order - 1 + n], rtol=1e-12)
    # The two conventions are different systems, not a relabelling of one another.
    default = narma_from_input(u, order)
    assert np.max(np.abs(default[order:] - ours[order:])) > 0.05


def test_divergent_input_is_detected():
    with pytest.raises(NarmaDivergence) as info:
        narma_from_input(np.full(500, 0.5))      # no fixed point: y grows without bound
    assert info.value.step > 10 and abs(info.value.value) > 1e6


def test_divergence_guard_redraws():
    # Seed 4: the first 20,000-step draw diverges (checked independently below).
    series = narma(20000, seed=4)
    assert series.tries == 2
    rng = np.random.default_rng(4)
    first = rng.uniform(0, 0.5, 20000)
    with pytest.raises(NarmaDivergence):
        narma_from_input(first)
    second = rng.uniform(0, 0.5, 20000)
    np.testing.assert_array_equal(series.u, second)
    assert np.all(np.isfinite(series.y)) and np.abs(series.y).max() < 1e6
    with pytest.raises(NarmaDivergence):
        narma(20000, seed=4, max_tries=1)


@pytest.mark.parametrize("kwargs", [dict(n_steps=0), dict(n_steps=10, order=0),
                                    dict(n_steps=10, seed=1, rng=np.random.default_rng()),
                                    dict(n_steps=10, low=0.5, high=0.5),
                                    dict(n_steps=10, convention="other")])
def test_bad_parameters_are_typed_errors(kwargs):
    with pytest.raises(TaskError):
        narma(**kwargs)


def test_memory_capacity_of_a_delay_line_is_its_length():
    u = np.random.default_rng(0).uniform(-1, 1, 3000)
    split = Split(washout=50, train=1200, validation=600)
    mc = memory_capacity(input_delays(u, 5), u, 15, split)
    np.testing.assert_allclose(mc.per_delay[:5], 1.0, atol=1e-6)
    assert mc.total == pytest.approx(5.0, abs=1e-5)      # terms 5..15 thresholded to 0
    assert mc.raw_total < 5.0 + 11 * 4 * 9 / mc.n_test
    noise = np.random.default_rng(1).standard_normal((3000, 5))
    assert memory_capacity(noise, u, 15, split).total < 0.05
    valid = np.ones(3000, bool)
    valid[2500:2600] = False
    masked = memory_capacity(input_delays(u, 5), u, 15, split, valid=valid)
    assert masked.n_test == mc.n_test - 100 and masked.total == pytest.approx(5.0, abs=1e-5)


def test_memory_capacity_of_an_esn_is_bounded_by_its_size():
    u = np.random.default_rng(5).uniform(-1, 1, 3000)
    states = EchoStateNetwork(20, spectral_radius=0.9, input_scaling=0.5, bias=0.0,
                              seed=0).states(u)
    mc = memory_capacity(states, u, 40, Split(washout=100, train=1400, validation=500))
    assert 3.0 < mc.total <= 20.0
    assert mc.per_delay[0] > 0.9 and mc.per_delay[40] < 0.05


def test_memory_capacity_needs_washout_for_delays():
    u = np.zeros(100)
    with pytest.raises(TaskError):
        memory_capacity(u[:, None], u, 20, Split(washout=5, train=40, validation=20))


def test_information_processing_capacity_finds_the_known_functions():
    from asic_reservoir.analysis.tasks import information_processing_capacity
    u = np.random.default_rng(7).uniform(0, 0.5, 3000)
    x = 4 * u - 1                                       # the [-1, 1] variable
    split = Split(washout=10, train=1500, validation=500)
    prev = np.concatenate([[0.0], x[:-1]])
    # a memoryless linear copy of the input: one degree-1 term at delay 0, nothing else
    lin = information_processing_capacity(u[:, None], u, split, max_delay=4)
    assert lin.terms[(0,)] == pytest.approx(1.0, abs=1e-9)
    assert lin.by_degree == {1: pytest.approx(1.0, abs=1e-6), 2: 0.0}
    # square and a product with the previous input: degree-2 terms appear where they should
    quad = information_processing_capacity(np.stack([x, x ** 2, x * prev], 1), u, split,
                                           max_delay=4)
    assert quad.terms[(0, 0)] == pytest.approx(1.0, abs=1e-6)
    assert quad.terms[(0, 1)] == pytest.approx(1.0, abs=1e-6)
    assert quad.terms[(1, 1)] < 0.01 and quad.terms[(2,)] < 0.01
    assert quad.total == pytest.approx(3.0, abs=0.02)
    assert len(quad.terms) == 5 + 15                    # 5 delays; 15 pairs with repeats
    with pytest.raises(TaskError, match="input range"):
        information_processing_capacity(u[:, None], u + 1, split)


def test_information_processing_capacity_of_an_esn_is_bounded():
    from asic_reservoir.analysis.tasks import information_processing_capacity
    u = np.random.default_rng(8).uniform(0, 0.5, 3000)
    states = EchoStateNetwork(15, seed=1).states(u)
    cap = information_processing_capacity(states, u, Split(100, 1400, 500), max_delay=8,
                                          max_degree=3)
    assert cap.by_degree[1] > 1.0 and cap.by_degree[2] > 0.3
    assert cap.total <= 15.5
    mc = memory_capacity(states, u, 8, Split(100, 1400, 500))
    assert cap.by_degree[1] == pytest.approx(mc.total, abs=0.3)   # 1-NMSE vs r^2, same terms


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=30)
@given(order=st.integers(1, 10), n=st.integers(1, 120), seed=st.integers(0, 2**31))
def test_narma_matches_formula_for_any_order_and_length(order, n, seed):
    # (orders above 10 diverge with these coefficients; see the next test)
    u = np.random.default_rng(seed).uniform(0, 0.5, n)
    np.testing.assert_allclose(narma_from_input(u, order), naive_formula(u, order),
                               rtol=1e-12, atol=1e-14)
    # ReservoirPy's convention (needs order warm-up steps) against its own recursion
    full = np.random.default_rng(seed + 1).uniform(0, 0.5, n + order)
    _, rpy = reservoirpy_narma(n, order, full)
    ours = narma_from_input(full, order, convention="reservoirpy")
    np.testing.assert_allclose(rpy, ours[order - 1:order - 1 + n], rtol=1e-12, atol=1e-14)


def test_orders_above_ten_need_other_coefficients():
    rng = np.random.default_rng(0)
    with pytest.raises(NarmaDivergence):
        narma(2000, 12, rng=rng, max_tries=20)              # ~99.5% of draws diverge
    s = narma(2000, 30, seed=0, a1=0.2, a2=0.04, c=0.001)   # ReservoirPy's NARMA-30 set
    assert s.tries <= 2 and np.abs(s.y).max() < 1.0
