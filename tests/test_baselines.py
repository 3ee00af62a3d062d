"""Baselines reproduce the science notes' reference table; controls fail when they must."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from asic_reservoir.analysis.baselines import (EchoStateNetwork, input_only_control, mean_predictor,
                                      run_baselines, shuffled_states_control)
from asic_reservoir.analysis.readout import REFERENCE_SPLIT, ReadoutError, Split, evaluate
from asic_reservoir.analysis.tasks import narma


pytestmark = pytest.mark.usefixtures("one_blas_thread")


N_STEPS = REFERENCE_SPLIT.washout + REFERENCE_SPLIT.train + REFERENCE_SPLIT.validation \
    + REFERENCE_SPLIT.test


@pytest.fixture(scope="module")
def reference_runs():
    with threadpool_limits(1):
        series = [narma(N_STEPS, seed=seed) for seed in range(5)]
        return run_baselines([(s.u, s.y) for s in series], REFERENCE_SPLIT, esn_sizes=(100,))


# science notes, train 4000 + validation 2000, test 4000, 5 seeds, std-normalised
@pytest.mark.parametrize("name, reference, tol", [
    ("mean", 1.00, 0.01),
    ("ridge u(t)", 0.885, 0.03),
    ("ridge 10 delays", 0.585, 0.03),
    ("ridge 20 delays", 0.398, 0.03),
    # ESN numbers depend on the (unpublished) hyperparameters; ours are fixed on a
    # validation set of an unrelated seed (see EchoStateNetwork).
    ("ESN-100", 0.213, 0.04),
])
def test_baselines_match_reference_table(reference_runs, name, reference, tol):
    s = reference_runs[name]
    assert s.n == 5
    assert abs(s.mean - reference) <= tol, f"{name}: {s.cell()} vs reference {reference}"
    assert s.std < 0.05


def test_baseline_order_and_spread(reference_runs):
    names = list(reference_runs)
    assert names == ["mean", "ridge u(t)", "ridge 10 delays", "ridge 20 delays", "ESN-100"]
    means = [reference_runs[n].mean for n in names]
    assert means == sorted(means, reverse=True)      # each baseline beats the previous one
    assert reference_runs["ridge 10 delays"].std > 0


def test_shuffled_states_control_fails_as_it_must():
    s = narma(3300, seed=8)
    split = Split(washout=100, train=1600, validation=800)
    states = EchoStateNetwork(50, seed=1).features(s.u)
    real = evaluate(states, s.y, split)
    shuffled = shuffled_states_control(states, s.y, split, seed=3)
    assert real.nrmse < 0.5
    assert 0.97 < shuffled.nrmse < 1.06
    valid = np.ones(len(s.y), bool)
    valid[::50] = False
    masked = shuffled_states_control(states, s.y, split, seed=3, valid=valid)
    assert masked.n_skipped > 0 and 0.97 < masked.nrmse < 1.06


def test_input_only_control_is_a_ridge_on_the_input_and_its_past():
    s = narma(3300, seed=9)
    split = Split(washout=100, train=1600, validation=800)
    control = input_only_control(s.u, s.y, split, k=3, alphas=[1e-9])
    assert control.feature_names == ("u(t)", "u(t-1)", "u(t-2)")
    # Independent reference: lags built by hand, least squares with an intercept on the
    # train + validation rows (a vanishing alpha makes the ridge ordinary least squares).
    t_fit, t_test = np.arange(100, 2500), np.arange(2500, 3300)
    lags = np.column_stack([np.ones(3300), s.u, np.r_[0, s.u[:-1]], np.r_[0, 0, s.u[:-2]]])
    w, *_ = np.linalg.lstsq(lags[t_fit], s.y[t_fit], rcond=None)
    err = lags[t_test] @ w - s.y[t_test]
    assert control.nrmse == pytest.approx(np.sqrt(np.mean(err ** 2)) / np.std(s.y[t_test]),
                                          rel=1e-6)
    # NARMA-10 depends on past inputs: the delays must help over u(t) alone
    assert control.nrmse < input_only_control(s.u, s.y, split, k=1).nrmse - 0.05


def test_mean_predictor_uses_train_and_validation_only():
    y = np.concatenate([np.zeros(50), np.ones(150), np.full(100, 5.0)])
    y[200:] += np.random.default_rng(0).normal(0, 1, 100)
    score = mean_predictor(y, Split(50, 100, 50))
    np.testing.assert_allclose(score.y_pred, 1.0)


def test_esn_is_causal_and_scaled():
    net = EchoStateNetwork(40, spectral_radius=0.7, seed=5)
    w, w_in, _ = net.weights()
    assert np.max(np.abs(np.linalg.eigvals(w))) == pytest.approx(0.7)
    u = np.random.default_rng(1).uniform(0, 0.5, 300)
    v = u.copy()
    v[200:] = 0.5 - v[200:]
    a, b = net.states(u), net.states(v)
    np.testing.assert_array_equal(a[:200], b[:200])     # nothing from the future
    assert not np.allclose(a[200], b[200])
    assert net.features(u).shape == (300, 41)
    leaky = EchoStateNetwork(40, leak=0.3, seed=5).states(u)
    assert not np.allclose(leaky, a)
    for bad in (dict(n=0), dict(leak=0.0), dict(spectral_radius=-1.0)):
        with pytest.raises(ReadoutError):
            EchoStateNetwork(**bad)


def test_hardware_scores_with_input_controls_given_score_as_without():
    from asic_reservoir.analysis.baselines import hardware_scores, input_controls

    split = Split(washout=50, train=400, validation=150)
    s = narma(800, seed=4)
    states = EchoStateNetwork(10, seed=4).states(s.u)
    valid = np.ones(800, bool)
    valid[300:310] = False
    taus = (1.5, 6.0)
    fresh = hardware_scores(states, s.u, s.y, split, seed=4, valid=valid, time_constants=taus)
    given = hardware_scores(states, s.u, s.y, split, seed=4, valid=valid, time_constants=taus,
                            controls=input_controls(s.u, s.y, split, valid=valid,
                                                    time_constants=taus))
    assert list(given) == list(fresh)
    assert {k: (v.nrmse, v.alpha, v.n_test) for k, v in given.items()} == \
        {k: (v.nrmse, v.alpha, v.n_test) for k, v in fresh.items()}
    assert "10 input delays" not in hardware_scores(states, s.u, s.y, split,
                                                    time_constants=None)


def test_hardware_scores_give_readouts_and_controls_per_run():
    from asic_reservoir.analysis.baselines import hardware_scores
    from asic_reservoir.analysis.readout import LeakageError
    from asic_reservoir.analysis.report import Entry

    split = Split(washout=100, train=1200, validation=600)
    runs = []
    for seed in (1, 2):
        s = narma(2600, seed=seed)
        states = EchoStateNetwork(20, seed=seed).states(s.u)     # stands in for hardware
        runs.append(hardware_scores(states, s.u, s.y, split, input_lags=2, seed=seed))
    assert list(runs[0])[:4] == ["hardware", "hardware + input", "input only",
                                 "shuffled states"]
    r = runs[0]
    assert r["hardware + input"].n_features == 22
    assert r["hardware + input"].nrmse < r["input only"].nrmse < r["shuffled states"].nrmse
    assert r["shuffled states"].nrmse > 0.97
    entry = Entry.from_runs("esn", "software", runs)
    assert list(entry.readouts) == ["hardware", "hardware + input"]
    assert list(entry.controls) == ["input only", "shuffled states", "10 input delays",
                                    "20 input delays", "filter bank + quadratic",
                                    "quadratic 10 delays"]
    assert entry.readouts["hardware"].n == 2
    assert entry.readouts["hardware"].mean == pytest.approx(
        np.mean([x["hardware"].nrmse for x in runs]))
    s = narma(2600, seed=3)
    leaky = np.hstack([EchoStateNetwork(20, seed=3).states(s.u), s.y[:, None]])
    with pytest.raises(LeakageError):
        hardware_scores(leaky, s.u, s.y, split)
    clean = EchoStateNetwork(20, seed=3).states(s.u)
    applied = np.arange(2600, dtype=np.int64) * 10**9
    read = applied + 10**9                     # each row read at the next input's instant
    with pytest.raises(LeakageError, match="after the next input"):
        hardware_scores(clean, s.u, s.y, split, feature_time_ns=read, input_time_ns=applied)


def test_a_noisy_memoryless_copy_of_the_input_adds_nothing():
    """The published encoding's states: share counts whose rate follows u(t) alone."""
    from asic_reservoir.analysis.baselines import hardware_scores
    from asic_reservoir.analysis.report import Entry, gains

    split = Split(washout=50, train=1200, validation=600)
    runs = []
    for seed in range(5):
        s = narma(2650, seed=100 + seed)
        counts = np.random.default_rng(seed).poisson(40 * (s.u[:, None] + 0.01), (2650, 4))
        runs.append(hardware_scores(counts, s.u, s.y, split, seed=seed))
    entry = Entry.from_runs("sim", "difficulty (published)", runs)
    assert entry.readouts["hardware"].mean > 0.86            # no better than ridge on u(t)
    over_input, over_memory = gains(entry)
    assert over_input.control == "input only" and not over_input.real
    assert "adds nothing measurable beyond input only" in over_input.sentence()
    assert over_memory.comparison.verdict == "worse"        # a memory-matched control wins
    # ... whereas states with memory of the input beat input only, but a 30-node ESN is
    # no match for the strongest memory-matched control (20 input delays, ~0.4)
    runs = []
    for seed in range(5):
        s = narma(2650, seed=100 + seed)
        states = EchoStateNetwork(30, seed=seed).states(s.u)
        runs.append(hardware_scores(states, s.u, s.y, split, seed=seed))
    over_input, over_memory = gains(Entry.from_runs("esn", "software", runs))
    assert over_input.real
    assert not over_memory.real


def test_gain_over_memory_controls_needs_more_than_fading_memory():
    """A 100-node ESN (NARMA-10 ~0.3 here) beats every memory-matched control; the
    controls get the hardware's input delays and are scored on its rows."""
    from asic_reservoir.analysis.baselines import (FILTER_BANK, MEMORY_CONTROLS,
                                                   filter_bank_features, hardware_scores)
    from asic_reservoir.analysis.report import Entry, gains, strongest_memory_control

    split = Split(washout=50, train=1200, validation=600)
    runs = []
    for seed in range(5):
        s = narma(2650, seed=200 + seed)
        valid = np.ones(2650, bool)
        valid[1400:1450] = False
        states = EchoStateNetwork(100, seed=seed).states(s.u)
        runs.append(hardware_scores(states, s.u, s.y, split, seed=seed, valid=valid,
                                    input_lags=3, time_constants=(0.5, 8.0, 24.0)))
    for name in MEMORY_CONTROLS:
        assert runs[0][name].n_test == runs[0]["hardware + input"].n_test
        assert runs[0][name].n_skipped == runs[0]["hardware + input"].n_skipped == 50
    assert runs[0][FILTER_BANK].n_features == 2 + 4 + 10  # u(t-1), u(t-2); u(t), 3 EMAs; products
    entry = Entry.from_runs("esn", "software", runs)
    strongest = strongest_memory_control(entry)
    assert strongest == min(MEMORY_CONTROLS, key=lambda k: entry.controls[k].mean)
    over_memory = gains(entry)[1]
    assert over_memory.control == strongest and over_memory.real, over_memory.sentence()
    assert over_memory.comparison.low > 0 and over_memory.comparison.p_value <= 1 / 32
    # The filter bank is an exponential average: its column follows u through a_i.
    u = np.zeros(20)
    u[0] = 1.0
    f = filter_bank_features(u, [2.0])
    a = np.exp(-0.5)
    assert f[:5, 1] == pytest.approx((1 - a) * a ** np.arange(5))
