"""Simulator physics: sources, operating points, directions of change, identity, energy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from asic_reservoir.simulator.physics import AMBIENT_TAU_S, AmbientDrift, UnitPhysics, Variation
from asic_reservoir.simulator.profiles import PROFILES, Profile, profile


def settle(ph: UnitPhysics, seconds: float = 1200.0, dt: float = 4.0) -> UnitPhysics:
    for _ in range(int(seconds / dt)):
        ph.step(dt)
    return ph


def running(model: str, seed: int = 1, **kw) -> UnitPhysics:
    ph = UnitPhysics(profile(model), seed, noise_seed=kw.pop("noise_seed", 7), **kw)
    ph.set_hashing(True)
    return ph


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_every_parameter_has_a_source(model: str) -> None:
    p = PROFILES[model]
    for f in dataclasses.fields(Profile):
        if f.name == "sources":
            continue
        assert p.source(f.name).strip(), f"{model}.{f.name} has an empty source"


def test_published_operating_points() -> None:
    s9, lv06, lb = PROFILES["s9"], PROFILES["lv06"], PROFILES["lbbox"]
    assert s9.n_chips == 189 and s9.n_fans == 2
    assert 13.0e12 < s9.nominal_rate_hs < 14.5e12
    assert lv06.nominal_rate_hs == pytest.approx(485e6 * 894)
    assert lv06.chip_floor_difficulty == 256
    assert lb.nominal_rate_hs == pytest.approx(175e9)
    with pytest.raises(ValueError, match="unknown model"):
        profile("s19")


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_stock_steady_state_matches_rated_power_and_sane_temperatures(model: str) -> None:
    ph = settle(running(model))
    p = ph.profile
    assert ph.input_power_w() == pytest.approx(p.rated_power_w, rel=0.07)
    assert 40.0 < ph.t_die.mean() < 90.0
    assert ph.t_die.max() < 110.0
    assert np.all(ph.t_die > ph.t_sink) and np.all(ph.t_sink > ph.ambient_c)
    assert p.fan_min_pwm <= ph.fan_pwm[0] <= 100.0
    for chain in ph.chain_readings():
        # firmware chip sensors read above their board, below the hottest die
        assert 5.0 < chain.chip_temp_c - chain.board_temp_c < 35.0
        assert chain.chip_temp_c <= max(chain.chip_temps_c)
        assert len(chain.chip_temps_c) == p.chips_per_chain


@pytest.mark.parametrize("model", ["s9", "lv06"])
def test_more_frequency_more_power_hotter_fan_up(model: str) -> None:
    ph = settle(running(model))
    p0, fan0, sink0 = ph.input_power_w(), ph.fan_pwm[0], ph.t_sink.mean()
    ph.set_frequency(ph.profile.freq_default_mhz * 1.15)
    settle(ph)
    assert ph.input_power_w() > p0 * 1.08
    assert ph.fan_pwm[0] > fan0 + 2.0
    if ph.profile.fan_control == "linear":
        assert ph.t_sink.mean() > sink0 + 1.0


def test_pid_holds_chip_temperature_near_target() -> None:
    ph = settle(running("lv06"), seconds=2400)
    assert ph.t_die.max() == pytest.approx(ph.temp_target_c, abs=2.5)
    ph.set_temp_target(55.0)
    settle(ph, seconds=2400)
    assert ph.t_die.max() == pytest.approx(55.0, abs=2.5)


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_manual_low_fan_runs_hotter(model: str) -> None:
    ph = settle(running(model))
    t0 = ph.t_die.mean()
    ph.set_fan(auto=False, pct=ph.profile.fan_min_pwm)
    settle(ph)
    assert ph.fan_rpm.mean() < ph.profile.fan_max_rpm * ph.profile.fan_min_pwm / 100 * 1.3
    assert ph.t_die.mean() > t0 + 3.0


def test_hw_errors_rise_above_the_timing_margin() -> None:
    stock = settle(running("lv06"), seconds=600)
    stock_err = stock.chip_error_fraction().mean()
    stock.take_hw_errors()
    settle(stock, seconds=600)
    stock_count = stock.take_hw_errors()

    hot = running("lv06")
    hot.set_frequency(575.0)
    hot.set_voltage(1100.0)
    settle(hot, seconds=600)
    hot.take_hw_errors()
    settle(hot, seconds=600)
    assert hot.chip_error_fraction().mean() > 20 * stock_err
    assert hot.take_hw_errors() > 5 * max(stock_count, 1)
    # more voltage restores the margin
    hot.set_voltage(1300.0)
    settle(hot, seconds=600)
    assert hot.chip_error_fraction().mean() < 5 * stock_err


def test_identity_repeats_for_a_seed_and_differs_across_seeds() -> None:
    p = PROFILES["s9"]
    a, b, c = Variation.from_seed(p, 11), Variation.from_seed(p, 11), Variation.from_seed(p, 12)
    assert a.bad_cores.sum() > 0 and np.all(a.bad_cores <= 3)     # S9: ~0.3 per chip
    for name in ("speed", "leakage", "r_thermal", "chip_sensor_offset_c", "fan_rpm_factor",
                 "bad_cores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.allclose(getattr(a, name), getattr(c, name))
    assert a.mac == b.mac and a.mac != c.mac
    # the same identity in another model is another device
    assert not np.allclose(Variation.from_seed(PROFILES["lbbox"], 11).speed,
                           Variation.from_seed(PROFILES["lbbox"], 12).speed)


def test_readings_repeat_in_distribution_not_in_value() -> None:
    def chip_pattern(seed: int, noise_seed: int) -> np.ndarray:
        ph = settle(running("s9", seed, noise_seed=noise_seed), seconds=900, dt=3.0)
        return np.mean([np.concatenate([c.chip_temps_c for c in ph.chain_readings()])
                        for _ in range(20)], axis=0)

    same_a, same_b = chip_pattern(5, 1), chip_pattern(5, 2)
    other = chip_pattern(6, 1)
    assert not np.array_equal(same_a, same_b)          # noise differs
    same_dist = np.abs(same_a - same_b).mean()
    other_dist = np.abs(same_a - other).mean()
    assert same_dist < 0.5
    assert other_dist > 4 * same_dist


def test_steady_state_equals_ambient_plus_power_times_resistance() -> None:
    ph = running("lv06")
    ph.set_fan(auto=False, pct=80.0)
    settle(ph, seconds=3000)
    p, var = ph.profile, ph.variation
    power = float(ph.chip_power_w()[0])
    flow = ph.flow_fraction()
    g_full, g_still = 1 / p.r_sink_air_full, 1 / p.r_sink_air_still
    r_sa = var.r_thermal[0] / (g_still + (g_full - g_still) * flow ** 0.8)
    r_ds = p.r_die_sink * var.r_thermal[0]
    t_air = ph.ambient_c + 0.5 * power / (p.airflow_heat_capacity * flow)
    assert ph.t_die[0] == pytest.approx(t_air + power * (r_sa + r_ds), abs=0.05)
    # energy: input power covers the chips plus conversion losses and overhead
    assert ph.input_power_w() > power / p.psu_efficiency


def test_step_size_does_not_change_the_steady_state() -> None:
    fine = settle(running("s9", noise_seed=3), seconds=1800, dt=1.0)
    coarse = settle(running("s9", noise_seed=3), seconds=1800, dt=30.0)
    assert coarse.t_die.mean() == pytest.approx(fine.t_die.mean(), abs=1.0)
    assert coarse.input_power_w() == pytest.approx(fine.input_power_w(), rel=0.01)


def test_ambient_drifts_around_its_mean_only_when_asked() -> None:
    still = running("lv06", ambient_c=22.0)
    settle(still, seconds=600, dt=10.0)
    assert still.ambient_c == 22.0
    drift = AmbientDrift(22.0, 2.0, np.random.default_rng(4))
    samples = [drift.advance(AMBIENT_TAU_S) for _ in range(2000)]
    assert np.std(samples) == pytest.approx(2.0, rel=0.1)
    assert np.mean(samples) == pytest.approx(22.0, abs=0.3)
    moving = running("lv06", ambient_c=22.0, ambient_drift_c=2.0)
    settle(moving, seconds=3600, dt=60.0)
    assert moving.ambient_c != 22.0 and abs(moving.ambient_c - 22.0) < 10.0


def test_firmware_hashrate_window_is_unbiased_and_idle_unit_reports_zero() -> None:
    ph = settle(running("s9"), seconds=300)
    rates = []
    for _ in range(200):
        ph.step(1.0)
        rates.append(ph.chain_rates_hs().sum())
    assert np.mean(rates) == pytest.approx(ph.valid_rates_hs().sum(), rel=0.02)
    busy_power = ph.input_power_w()
    ph.set_hashing(False)
    settle(ph, seconds=60)
    assert ph.chain_rates_hs().sum() == 0.0 and ph.valid_rates_hs().sum() == 0.0
    assert ph.input_power_w() < 0.3 * busy_power
