"""Simulator physics: sources, operating points, directions of change, identity, energy,
integration at any tick, stability for every identity, fan laws and protection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asic_reservoir.drivers.envelope import ENVELOPES
from asic_reservoir.simulator.control import BmminerFan, BoardStop, Sensors
from asic_reservoir.simulator.equilibrium import settle as solve_settle, solve_at
from asic_reservoir.simulator.physics import AMBIENT_TAU_S, AmbientDrift, UnitPhysics, Variation
from asic_reservoir.simulator.profiles import MODELS, PROFILES, Profile, profile

# Published field readings of stock-clock S9s (protocols.md): PCB, chip (temp2), fans. The
# temperature ranges are "about" figures read with +-1 K sensors ([tmp451]): compared with 1 K
# of slack.
S9_FIELD = {"board": (48.0, 66.0), "chip": (64.0, 88.0), "rpm": (2900.0, 5900.0)}


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
    p0, fan0 = ph.input_power_w(), ph.fan_pwm[0]
    ph.set_frequency(ph.profile.freq_default_mhz * 1.15)
    settle(ph)
    assert ph.input_power_w() > p0 * 1.08
    assert ph.fan_pwm[0] > fan0 + 2.0       # both firmware loops answer with more fan


def test_pid_holds_chip_temperature_near_target() -> None:
    ph = settle(running("lv06"), seconds=2400)
    assert ph.t_die.max() == pytest.approx(ph.temp_target_c, abs=2.5)
    ph.set_temp_target(55.0)
    settle(ph, seconds=2400)
    assert ph.t_die.max() == pytest.approx(55.0, abs=2.5)


@pytest.mark.parametrize("model", ["lbbox", "lv06"])
def test_manual_low_fan_runs_hotter_or_the_firmware_stops_it(model: str) -> None:
    ph = settle(running(model))
    t0 = ph.t_die.mean()
    ph.set_fan(auto=False, pct=30.0)
    hottest = 0.0
    for _ in range(300):
        ph.step(4.0)
        hottest = max(hottest, float(ph.t_die.max()))
    if ph.trip is None:
        assert ph.fan_rpm.mean() < ph.profile.fan_max_rpm * 0.3 * 1.3
        assert ph.t_die.mean() > t0 + 3.0
    else:                                   # stopped: chips off, cooling down
        assert not ph.powered and ph.chip_power_w().sum() == 0.0
        assert ph.t_die.max() < hottest
    assert hottest < ph.profile.t_junction_max_c


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

    # the pattern across chips, not its level: bmminer holds temp2 anywhere in 80-85 degC
    same_a, same_b = chip_pattern(5, 1), chip_pattern(5, 2)
    other = chip_pattern(6, 1)
    same_a, same_b, other = (x - x.mean() for x in (same_a, same_b, other))
    assert not np.array_equal(same_a, same_b)          # noise differs
    same_dist = np.abs(same_a - same_b).mean()
    other_dist = np.abs(same_a - other).mean()
    assert same_dist < 0.5
    assert other_dist > 4 * same_dist


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_dynamics_converge_to_the_solved_operating_point(model: str) -> None:
    ph = running(model)
    ph.set_powered(True, fan_override_pct=80.0)     # fans pinned at 80 %
    settle(ph, seconds=3000)
    op = solve_at(ph, 80.0)
    assert op is not None and op.stable
    np.testing.assert_allclose(ph.t_die, op.t_die, atol=0.05)
    np.testing.assert_allclose(ph.t_sink, op.t_sink, atol=0.05)
    # energy: input power covers the chips plus conversion losses and overhead
    assert ph.input_power_w() == pytest.approx(op.input_power_w, rel=1e-3)
    assert ph.input_power_w() > ph.chip_power_w().sum() / ph.profile.psu_efficiency


def _trajectory(model: str, tick: float, seconds: float, every: float) -> np.ndarray:
    """Die temperatures every ``every`` s through a start-up and a frequency step (fans held,
    so that only the integration differs: the firmware loop's sensor noise is drawn per tick)."""
    ph = running(model, noise_seed=3)
    ph.set_powered(True, fan_override_pct=70.0)     # fans pinned (bmminer ignores a custom pwm)
    out = []
    n = int(round(every / tick))
    for i in range(int(round(seconds / every))):
        if i == int(round(seconds / every)) // 2:
            ph.set_frequency(ph.profile.freq_max_mhz)
        for _ in range(n):
            ph.step(tick)
        out.append(ph.t_die.copy())
    return np.array(out)


@pytest.mark.parametrize("model", ["s9", "lv06"])
def test_coarse_and_fine_ticks_give_the_same_physics(model: str) -> None:
    """0.05 s and 5 s ticks: the same transient within a fraction of a kelvin, the same end."""
    fine = _trajectory(model, 0.05, 400.0, 5.0)
    coarse = _trajectory(model, 5.0, 400.0, 5.0)
    rise = fine.max() - fine.min()
    assert rise > 20.0                                  # a real transient was compared
    assert np.abs(coarse - fine).max() < 0.5
    assert np.abs(coarse[-1] - fine[-1]).max() < 0.25
    # and a tick much longer than every time constant still lands on the steady state
    big = running(model, noise_seed=3)
    small = running(model, noise_seed=3)
    for _ in range(4):
        big.step(600.0)
    settle(small, seconds=2400, dt=1.0)
    assert np.abs(big.t_die - small.t_die).max() < 1.0


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


# ------------------------------------------------------------ stability for every identity

def _configured(model: str, seed: int, ambient: float, f_frac: float, v_frac: float,
                auto: bool) -> UnitPhysics:
    """A unit inside the toolkit's safe envelope (drivers.envelope), fans auto or at minimum."""
    env, p = ENVELOPES[model], PROFILES[model]
    ph = UnitPhysics(p, seed, ambient, noise_seed=0)
    lo, hi = env.frequency_mhz
    ph.set_frequency(lo + f_frac * (hi - lo))
    if env.core_voltage_mv is not None:
        vlo, vhi = env.core_voltage_mv
        ph.set_voltage(vlo + v_frac * (vhi - vlo))
    if not auto:
        ph.set_fan(auto=False, pct=p.fan_min_pwm)
    return ph


_IDENTITY_ARGS = dict(seed=st.integers(0, 2**32 - 1), ambient=st.floats(10.0, 40.0),
                      f_frac=st.floats(0.0, 1.0), v_frac=st.floats(0.0, 1.0), auto=st.booleans())


def _check_identity(model: str, seed: int, ambient: float, f_frac: float, v_frac: float,
                    auto: bool) -> None:
    ph = _configured(model, seed, ambient, f_frac, v_frac, auto)
    out = solve_settle(ph)
    assert out.point is not None or out.stopped is not None, "neither a rest point nor a stop"
    if out.stopped is None:
        assert out.point.stable, f"unstable rest point (spectral radius {out.point.spectral_radius})"
    assert out.t_die_max_c < ph.profile.t_junction_max_c, (out.stopped, out.t_die_max_c)


@settings(max_examples=1000, derandomize=True)
@given(**_IDENTITY_ARGS)
def test_every_s9_identity_rests_stably_or_is_stopped_before_a_die_passes_its_limit(**kw) -> None:
    """1,000 S9 identities x ambient 10-40 C x the safe frequency envelope x fans auto/minimum
    (a custom minimum pwm lasts until bmminer's next read, which runs its law again)."""
    _check_identity("s9", **kw)


@pytest.mark.parametrize("model", ["lv06", "lbbox"])
@settings(max_examples=300, derandomize=True)
@given(**_IDENTITY_ARGS)
def test_every_small_unit_identity_rests_stably_or_is_stopped_in_time(model: str, **kw) -> None:
    _check_identity(model, **kw)


@pytest.mark.parametrize("model", MODELS)
def test_leakage_loop_gain_of_the_worst_identity(model: str, capsys) -> None:
    """d(P_leak)/dT x R_th for the worst of 300 identities at the envelope's hot corner."""
    worst = None
    for seed in range(300):
        ph = _configured(model, seed, 40.0, 1.0, 1.0, auto=True)
        ph.set_hashing(True)
        op = solve_at(ph, 100.0)
        if op is None:
            continue
        if worst is None or op.leak_gain > worst[1].leak_gain:
            worst = (seed, op)
    seed, op = worst
    with capsys.disabled():
        print(f"\n{model}: worst identity seed {seed} at 40 C, full fan, top of the envelope: "
              f"leakage loop gain dP_leak/dT x R_th = {op.leak_gain:.2f} (as on a regulated rail), "
              f"{op.net_gain:.2f} with the string's voltage sharing; "
              f"spectral radius {op.spectral_radius:.2f}; hottest die {op.t_die.max():.1f} C")
    assert op.stable and op.net_gain < 1.0


# ------------------------------------------------------------ readings like field units

def test_stock_s9_at_25c_reads_like_field_units_for_every_seed() -> None:
    for seed in range(40):
        out = solve_settle(UnitPhysics(PROFILES["s9"], seed, 25.0, noise_seed=0))
        assert out.stopped is None and out.point.stable
        op = out.point
        lo, hi = S9_FIELD["board"]
        assert np.all((op.board_c > lo) & (op.board_c < hi)), (seed, op.board_c)
        lo, hi = S9_FIELD["chip"]
        assert np.all((op.chip_sensor_c > lo) & (op.chip_sensor_c < hi)), (seed, op.chip_sensor_c)
        lo, hi = S9_FIELD["rpm"]
        assert np.all((op.fan_rpm > lo) & (op.fan_rpm < hi)), (seed, op.fan_rpm)
        assert op.input_power_w == pytest.approx(PROFILES["s9"].rated_power_w, rel=0.05)


def test_simulated_stock_s9_keeps_hashing_inside_field_ranges() -> None:
    for seed in (0, 30, 77):
        ph = settle(running("s9", seed), seconds=1800)
        assert ph.trip is None and ph.powered
        readings = [ph.chain_readings() for _ in range(5)]
        boards = [c.board_temp_c for r in readings for c in r]
        chips = [c.chip_temp_c for r in readings for c in r]
        assert S9_FIELD["board"][0] < min(boards) and max(boards) < S9_FIELD["board"][1]
        assert S9_FIELD["chip"][0] < min(chips) and max(chips) < S9_FIELD["chip"][1]
        rpm = [r for r, _ in ph.fan_readings()]
        assert S9_FIELD["rpm"][0] < min(rpm) and max(rpm) < S9_FIELD["rpm"][1]


def test_s9_air_warms_about_12_k_from_inlet_to_outlet() -> None:
    op = solve_settle(UnitPhysics(PROFILES["s9"], 3, 25.0, noise_seed=0)).point
    ph = UnitPhysics(PROFILES["s9"], 3, 25.0, noise_seed=0)
    flow = float(np.mean(op.fan_rpm) / ph.profile.fan_max_rpm)
    rise = op.power_w.sum() / (ph.profile.airflow_heat_capacity * flow)
    assert 10.0 < rise < 14.0


def test_heat_spreads_to_neighbouring_heatsink_segments() -> None:
    ph = running("s9")
    ph.set_fan(auto=False, pct=70.0)
    m = ph.thermal_matrix(0.7)[0]
    # a watt in chip 30 warms its neighbours' dies more than chips far away (upstream)
    assert m[31, 30] > m[35, 30] > m[10, 30] > 0
    assert m[29, 30] > m[25, 30]
    flat = dataclasses.replace(ph.profile, g_lateral=0.0)
    isolated = UnitPhysics(flat, 1).thermal_matrix(0.7)[0]
    assert isolated[29, 30] == pytest.approx(0.0, abs=1e-12)      # upstream: no path without it
    assert m[30, 30] < isolated[30, 30]                          # spreading lowers the hot spot


# ------------------------------------------------------------ firmware fan laws / protection

def _s(chip: float, board: float, rpm: float = 4000.0) -> Sensors:
    return Sensors(chip_c=np.array([chip]), board_c=np.array([board]), vr_c=40.0,
                   fan_rpm=np.array([rpm, rpm]))


def test_bmminer_fan_law_follows_the_s9_branch() -> None:
    law = BmminerFan()
    assert law.update(_s(82.0, 55.0), 0.0, 2.0) == 84.0          # 2 %/K x (82 - 40)
    assert law.update(_s(82.9, 55.0), 0.0, 2.0) == 84.0          # in the 80-85 band: held
    assert law.update(_s(90.0, 55.0), 0.0, 2.0) == 100.0         # temp2 at MAX_FAN_TEMP
    law.reset(60.0)
    assert law.update(_s(60.0, 75.0), 0.0, 2.0) == 100.0         # PCB at MAX_FAN_PCB_TEMP
    law.reset(60.0)
    first = law.update(_s(86.0, 60.0), 0.0, 2.0)
    later = [law.update(_s(86.0, 60.0), 0.0, 2.0) for _ in range(3)]
    assert first < later[0] < later[1] < later[2]               # steps up while >= 85
    law.reset(60.0)
    law.update(_s(70.0, 55.0), 0.0, 2.0)
    down = [law.update(_s(70.0, 55.0), 0.0, 2.0) for _ in range(5)]
    assert down == sorted(down, reverse=True) and down[-1] < 60.0   # steps down while <= 80


def test_bmminer_stops_after_three_reads_of_a_hot_board_or_a_lost_fan() -> None:
    guard = BoardStop(90.0, 3, 2)
    hot = _s(100.0, 91.0)
    assert [guard.check(hot) for _ in range(3)][-1].startswith("board temperature")
    guard.reset()
    assert guard.check(hot) is None and guard.check(_s(100.0, 89.0)) is None
    assert guard.check(hot) is None                       # the count starts again
    guard.reset()
    stopped_fan = Sensors(chip_c=np.array([80.0]), board_c=np.array([60.0]), vr_c=40.0,
                          fan_rpm=np.array([4000.0, 100.0]))    # under one tach pulse: 0 rpm
    assert [guard.check(stopped_fan) for _ in range(3)] == [None, None, "fan lost"]


def test_s9_fans_keep_turning_at_zero_duty_and_an_idle_s9_keeps_its_fans() -> None:
    ph = settle(running("s9"), seconds=600)
    ph.set_hashing(False)                  # no work: chips cool, bmminer steps its fans down
    settle(ph, seconds=1800)
    assert ph.trip is None and ph.powered
    assert ph.fan_pwm[0] < 20.0 and ph.fan_rpm.min() > 1000.0


def test_s9_custom_fan_is_replaced_by_bmminers_law_at_its_next_read() -> None:
    ph = settle(running("s9"), seconds=600)
    held = float(ph.fan_pwm[0])
    ph.set_fan(auto=False, pct=10.0)
    assert ph.fan_pwm[0] == 10.0                        # set_PWM at start-up ...
    settle(ph, seconds=600)
    assert ph.fan_pwm[0] > 40.0 and abs(ph.fan_pwm[0] - held) < 15.0   # ... the law again
    assert ph.trip is None


def test_s9_in_a_hot_room_is_stopped_by_its_board_sensors() -> None:
    ph = running("s9", ambient_c=52.0)
    for _ in range(900):
        ph.step(2.0)
        if ph.trip:
            break
    assert ph.trip is not None and ph.trip.startswith("board temperature")
    assert not ph.powered and ph.fan_pwm[0] == 100.0


def test_esp_miner_overheat_stops_the_lv06_and_runs_the_fan_full() -> None:
    ph = settle(running("lv06"), seconds=600)
    ph.set_fan(auto=False, pct=0.0)
    for _ in range(600):
        ph.step(1.0)
        if ph.trip:
            break
    assert ph.trip is not None and ph.trip.startswith("chip temperature")
    assert ph.t_die.max() < 80.0
    ph.step(2.0)
    assert ph.fan_pwm[0] == 100.0 and not ph.powered
    ph.set_powered(True)
    assert ph.trip is None


def test_each_model_reads_its_sensors_at_its_firmwares_resolution():
    """The LV06's firmware reads whole degrees (EMC2101) and has no regulator sensor; the
    S9's readings keep their fractions (bmminer truncates where it uses them)."""
    lv06, s9 = (UnitPhysics(PROFILES[m], 3, ambient_c=25.0, noise_seed=3) for m in ("lv06", "s9"))
    for ph in (lv06, s9):
        ph.hashing = True
        ph.step(60.0)
    temps = np.concatenate([lv06.chip_temps_c() for _ in range(20)])
    assert np.array_equal(temps, np.round(temps))
    assert lv06.vr_temp_c() == 0.0 and lv06.sensors().vr_c == 0.0
    assert float(lv06.sensors().chip_c[0]).is_integer()
    s9_temps = s9.chip_temps_c()
    assert not np.array_equal(s9_temps, np.round(s9_temps)) and s9.vr_temp_c() > 25.0
