"""Window-level filter: features strictly before the window, leakage refused, run-file loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from asic_reservoir.experiment.runs import RunMeta, RunWriter, ShareRow, StepRecord, TelemetryRow, UnitMeta
from asic_reservoir.tpf.window import (LeakageError, Telemetry, WindowError, WindowFeatures,
                                       check_leakage, evaluate_windows, load_run, window_features,
                                       window_labels)
from tests.support import main_here


def _rate_driven(seed: int, n_windows: int = 1500):
    """Hash rate wanders; shares arrive as a Poisson process at a rate following it."""
    rng = np.random.default_rng(seed)
    edges = np.arange(n_windows + 1, dtype=float)
    times = np.arange(0.25, n_windows, 0.5)
    rate = 1.0 + 0.9 * np.sin(times / 40.0) + 0.05 * rng.standard_normal(len(times))
    temp = 60 + rng.standard_normal(len(times))          # irrelevant field
    shares = []
    for t0, r in zip(times, rate):
        k = rng.poisson(max(r, 0.0) * 0.5)
        shares.extend(t0 + 0.5 * rng.random(k))
    tel = Telemetry(times, np.column_stack([rate, temp]), ("hashrate", "temp"))
    return tel, np.sort(shares), edges


def test_labels_mark_windows_with_a_share():
    assert window_labels([0.5, 2.0, 2.99], [0, 1, 2, 3, 4]).tolist() == [True, False, True, False]


def test_telemetry_that_drives_the_share_rate_is_detected_without_leakage():
    tel, shares, edges = _rate_driven(0)
    feats = window_features(tel, shares, edges, lookback=3.0)
    check_leakage(feats, edges)      # nothing reaches into a label window
    result = evaluate_windows(feats, window_labels(shares, edges), edges)
    assert result.auc.low > 0.5
    assert result.dropped == 1       # window 0 starts before the first telemetry sample
    assert result.n_train + result.n_test + result.dropped == len(edges) - 1


def test_pure_noise_telemetry_is_not_detected():
    tel, shares, edges = _rate_driven(1)
    rng = np.random.default_rng(2)
    noise = Telemetry(tel.times, rng.standard_normal(tel.values.shape), tel.names)
    shuffled = np.sort(rng.uniform(0, edges[-1], len(shares)))   # shares unrelated to anything
    result = evaluate_windows(window_features(noise, shuffled, edges, 3.0),
                              window_labels(shuffled, edges), edges)
    assert result.auc.covers(0.5)


def test_leaky_feature_is_refused():
    tel, shares, edges = _rate_driven(3, n_windows=300)
    labels = window_labels(shares, edges)
    # A "feature" counting shares in the label window itself: a perfect, illegitimate predictor.
    in_window = np.histogram(shares, edges)[0].astype(float).reshape(-1, 1)
    leaky = WindowFeatures(in_window, source_end=edges[1:] - 1e-9, names=("shares_in_window",))
    with pytest.raises(LeakageError, match="own label window"):
        check_leakage(leaky, edges)
    with pytest.raises(LeakageError):
        evaluate_windows(leaky, labels, edges)
    # One sample exactly at a window start is already inside that window.
    honest = window_features(tel, shares, edges, lookback=2.0)
    touching = WindowFeatures(honest.values, np.where(np.arange(300) == 7, edges[7], honest.source_end),
                              honest.names)
    with pytest.raises(LeakageError, match="1 of 300"):
        check_leakage(touching, edges)


@settings(max_examples=40)
@given(times=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60),
       shares=st.lists(st.floats(0, 50, allow_nan=False), max_size=60),
       lookback=st.floats(0.1, 10), gap_frac=st.floats(0, 0.9))
def test_features_never_read_the_label_window(times, shares, lookback, gap_frac):
    t = np.sort(np.array(times))
    tel = Telemetry(t, t.reshape(-1, 1) * 2.0, ("x",))
    edges = np.arange(0.0, 51.0, 1.7)
    feats = window_features(tel, shares, edges, lookback, gap=lookback * gap_frac)
    check_leakage(feats, edges)
    starts = edges[:-1]
    # the "last" value is 2 * (time of the last sample used), which lies before the start
    used = np.isfinite(feats.values[:, 1])
    assert np.all(feats.values[used, 1] / 2.0 < starts[used] - lookback * gap_frac + 1e-12)


@pytest.mark.parametrize("bad", [
    lambda: Telemetry(np.array([2.0, 1.0]), np.zeros((2, 1)), ("x",)),
    lambda: Telemetry(np.array([1.0, 2.0]), np.zeros((2, 2)), ("x",)),
    lambda: window_features(Telemetry(np.array([1.0]), np.zeros((1, 1)), ("x",)), [], [0, 1], 1.0, 1.0),
    lambda: window_labels([], [0.0, 0.0]),
])
def test_bad_window_input(bad):
    with pytest.raises(WindowError):
        bad()


def _write_run(tmp_path, n_windows: int = 200):
    tel, shares, edges = _rate_driven(5, n_windows=n_windows)
    meta = RunMeta(task="tpf-window", seed=5, steps=n_windows, runs=1, slots=1,
                   units=[UnitMeta(name="lv06", url="lv06://127.0.0.1:1", model="lv06")],
                   channel={}, mask=[1.0])
    origin = 10**12
    ns = lambda s: origin + int(round(s * 1e9))  # noqa: E731
    path = tmp_path / "run.db"
    with RunWriter.create(path, meta) as writer:
        for i in range(n_windows):
            lo, hi = edges[i], edges[i + 1]
            in_step = (tel.times >= lo) & (tel.times < hi)
            writer.write_step(StepRecord(
                run=0, step=i, u=0.0, t_start_ns=ns(lo), t_end_ns=ns(hi),
                shares=[ShareRow("lv06", 0, ns(s), "j", 1, None, 2.0, 1.0, True)
                        for s in shares[(shares >= lo) & (shares < hi)]]
                + [ShareRow("lv06", 0, ns(lo + 0.01), "j", 2, None, 0.5, 1.0, False)],
                telemetry=[TelemetryRow("lv06", 0, ns(t), {"hashrate": float(r), "temp": float(c),
                                                           "note": None})
                           for t, (r, c) in zip(tel.times[in_step], tel.values[in_step])]))
    return path, tel, shares, edges


def test_loader_reads_a_run_file(tmp_path):
    path, tel, shares, edges = _write_run(tmp_path)
    loaded, loaded_shares, loaded_edges = load_run(str(path), "lv06")
    assert loaded.names == ("hashrate", "temp")            # 'note' is never numeric
    np.testing.assert_allclose(loaded.times, tel.times, atol=1e-9)
    np.testing.assert_allclose(loaded.values, tel.values)
    np.testing.assert_allclose(loaded_shares, shares, atol=1e-9)   # rejected shares left out
    np.testing.assert_allclose(loaded_edges, edges, atol=1e-9)
    result = evaluate_windows(window_features(loaded, loaded_shares, loaded_edges, 3.0),
                              window_labels(loaded_shares, loaded_edges), loaded_edges)
    assert result.n_test > 50
    with pytest.raises(WindowError):
        load_run(str(path), "lv06", run=3)


def _cli(capsys, *argv):
    return main_here(capsys, "tpf", *argv)


def test_cli_window_mode(tmp_path, capsys):
    path, _, _, _ = _write_run(tmp_path, n_windows=400)
    code, out, _ = _cli(capsys, "--run-file", str(path), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["unit"] == "lv06" and report["lookback_s"] == pytest.approx(3.0)
    assert report["auc_ci95"][0] > 0.5 and "share *rate*" in report["verdict"]
    code, out, _ = _cli(capsys, "--run-file", str(path), "--unit", "lv06", "--gap", "0.5")
    assert code == 0 and out.startswith("window filter on") and "verdict:" in out
    code, _, err = _cli(capsys, "--run-file", str(tmp_path / "missing.db"))
    assert code == 2 and "missing.db" in err
    code, _, err = _cli(capsys, "--run-file", str(path), "--unit", "s9")
    assert code == 2 and "s9" in err


@pytest.mark.virtual_time
async def test_window_filter_on_a_recorded_simulator_run(tmp_path):
    """End to end: pool + simulated LV06 + experiment loop -> run file -> window study."""
    from asic_reservoir.drivers.clock import Clock
    from asic_reservoir.experiment.record import run_experiment
    from asic_reservoir.tpf.window import window_study
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    from asic_reservoir.simulator import UnitConfig, start_units

    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=None, seed=21), clock=clock)
    await pool.start()
    path = tmp_path / "run.db"
    try:
        config = UnitConfig(model="lv06", seed=21, host="127.0.0.1", pool_url=pool.url,
                            worker="tpf.lv06", noise_seed=21, rpc_port=0, http_port=0,
                            firmware="axeos-2.15")      # reports poolDifficulty
        async with start_units([config], clock=clock) as units:
            await run_experiment([units[0].url], "difficulty", path, steps=60, step_seconds=2.0,
                                 pool=pool, clock=clock, progress=False, names=["lv06"],
                                 difficulty_scales=[units[0].difficulty_scale])
    finally:
        await pool.stop()
    report = window_study(str(path), "lv06")
    assert report["windows"] == 60
    assert report["n_train"] + report["n_test"] + report["dropped"] == 60
    assert {"mean_pool_difficulty", "last_hashrate_ghs", "past_shares"} <= set(report["features"])
    assert 0 <= report["auc_ci95"][0] <= report["auc"] <= report["auc_ci95"][1] <= 1
    # The unit's own accepted-share counter, read inside each window, counts that window's
    # shares: a leaky feature the check must refuse.
    telemetry, shares, edges = load_run(str(path), "lv06")
    col = telemetry.names.index("accepted")
    first_inside = np.minimum(np.searchsorted(telemetry.times, edges[:-1]), len(telemetry.times) - 1)
    leaky = WindowFeatures(telemetry.values[first_inside, col:col + 1], telemetry.times[first_inside],
                           ("accepted_in_window",))
    with pytest.raises(LeakageError):
        check_leakage(leaky, edges)
