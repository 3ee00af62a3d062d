"""Simulated units end to end: real pool over loopback TCP, settings, restart, logs, identity.

In-process tests run in virtual time (timeouts are simulated seconds); the CLI test runs the
units in a subprocess on the wall clock."""

from __future__ import annotations

import asyncio
import functools
import json
import socket

import numpy as np
import pytest

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import chip_of_nonce
from asic_reservoir.drivers.events import NonceEvent, ShareResultEvent, TemperatureEvent, parse_line
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.simulator import SettingsError, SimulatedUnit, UnitConfig, auto_hash_scale, start_units
from asic_reservoir.simulator.unit import HASHES_PER_CHIP_RESULT, auto_budget
from tests import support
from tests.support import run_cli

SPEED = 50.0
# generous: on a virtual-time loop these are simulated seconds, elsewhere a watchdog
wait_until = functools.partial(support.wait_until, timeout=600.0)


def config(model: str, pool_url: str = "stratum+tcp://127.0.0.1:9", **kw) -> UnitConfig:
    """A unit whose identity and sensor noise both follow ``seed``: the same run every time."""
    kw.setdefault("speed", SPEED)
    seed = kw.pop("seed", 3)
    kw.setdefault("noise_seed", seed)
    return UnitConfig(model=model, seed=seed, pool_url=pool_url, rpc_port=None, http_port=None,
                      **kw)


async def sim_time_passes(unit: SimulatedUnit, seconds: float) -> None:
    """Wait until the unit's physics has advanced ``seconds`` of simulated time."""
    start = unit.physics.time_s
    await wait_until(lambda: unit.physics.time_s >= start + seconds)   # virtual: sim seconds


async def shares_settled(unit: SimulatedUnit) -> None:
    """After a tick, wait until every share the miner submitted has its answer."""
    await sim_time_passes(unit, 10.0)
    m = unit.miner
    await wait_until(lambda: m.submitted == m.accepted + m.rejected)


@pytest.fixture
async def pool():
    clock = Clock.virtual()
    p = Pool(PoolConfig(port=0, lbry_port=0, difficulty=1.0, seed=1), clock=clock)   # fixed jobs
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def test_config_validation_and_defaults() -> None:
    cfg = UnitConfig(model="LV06")
    assert cfg.model == "lv06" and cfg.worker == "lv06.sim"
    assert (cfg.rpc_port, cfg.http_port) == (4028, 80)
    for bad in (dict(model="s19"), dict(speed=0), dict(hash_scale=-1.0), dict(http_port=70000),
                dict(pool_url="http://x"), dict(pool_url="stratum+tcp://host")):
        with pytest.raises(ValueError):
            UnitConfig(**bad)


def test_auto_hash_scale_gives_the_documented_budget_and_urls() -> None:
    for model in ("s9", "lv06", "lbbox"):
        unit = SimulatedUnit(config(model, speed=40.0))
        p = unit.profile
        assert unit.difficulty_scale == unit.hash_scale == auto_hash_scale(p)
        per_sim_s = p.nominal_rate_hs * unit.hash_scale     # the same at every speed
        assert per_sim_s == pytest.approx(auto_budget(p))
        # two hashes per chip result at the scaled ticket-mask floor
        floor_hashes = 2.0 ** 32 * p.chip_floor_difficulty / (256.0 if p.algorithm == "lbry" else 1)
        assert per_sim_s * floor_hashes / p.nominal_rate_hs == pytest.approx(HASHES_PER_CHIP_RESULT)
        assert unit.tick_s == 0.1
    unit = SimulatedUnit(config("s9"))
    unit.rpc_port, unit.http_port = 4028, 8080
    assert unit.url == "s9://127.0.0.1:4028?http=8080"
    unit = SimulatedUnit(config("lbbox"))
    unit.rpc_port, unit.http_port = 4029, 81
    assert unit.url == "lbbox://127.0.0.1:81?rpc=4029"
    unit = SimulatedUnit(config("lv06"))
    unit.http_port = 8081
    assert unit.url == "lv06://127.0.0.1:8081"
    assert SimulatedUnit(config("s9", hash_scale=1e-9)).difficulty_scale == 1e-9


@pytest.mark.virtual_time
async def test_three_units_shares_all_accepted_by_the_pool(pool: Pool) -> None:
    events = pool.subscribe()
    real_difficulty = {"s9": 256.0, "lv06": 256.0, "lbbox": 16.0}
    cfgs = [config("s9", pool.url, seed=1), config("lv06", pool.url, seed=2),
            config("lbbox", pool.lbry_url, seed=3)]
    async with start_units(cfgs) as units:
        for unit in units:
            pool.set_chip_count(unit.config.worker, unit.profile.n_chips)
            await pool.set_difficulty(real_difficulty[unit.profile.model] * unit.difficulty_scale,
                                      worker=unit.config.worker)
        await wait_until(lambda: all(u.miner.accepted >= 40 for u in units)
                         and sum(u.miner.accepted for u in units) >= 2000, timeout=1250.0)
        readings = {u.profile.model: u.reading() for u in units}
        ideal = {u.profile.model: u.profile.freq_default_mhz * 1e-3
                 * (u.profile.hashes_per_clock * u.profile.n_chips
                    - u.physics.variation.bad_cores.sum()) for u in units}
    totals = pool.totals()
    assert totals["rejected"] == 0
    assert totals["accepted"] >= 2000
    chips_seen: dict[str, set] = {}
    while not events.empty():
        ev = events.get_nowait()
        assert ev.accepted, ev.reason
        chips_seen.setdefault(ev.worker, set()).add(ev.chip)
    assert len(chips_seen["s9.sim"]) > 100            # shares come from many of the 189 chips
    assert chips_seen["lv06.sim"] == {0}
    for model, r in readings.items():
        assert r.rejected == 0 and r.accepted > 0 and r.pool_connected
        assert r.pool_difficulty == pytest.approx(real_difficulty[model])
        # telemetry is on the real hardware's scale
        assert r.hashrate_ideal_ghs == pytest.approx(ideal[model], rel=1e-9)
        assert r.hashrate_ideal_ghs == pytest.approx(
            {"s9": 14004.9, "lv06": 433.59, "lbbox": 175.0}[model], rel=0.01)


@pytest.mark.virtual_time
async def test_chip_results_feed_firmware_hashrate_and_lv06_log_lines(pool: Pool) -> None:
    unit = SimulatedUnit(config("lv06", pool.url, speed=400.0))
    lines: list[str] = []
    unit.add_log_listener(lines.append)
    await unit.start()
    try:
        await pool.set_difficulty(1e6 * unit.difficulty_scale)   # few submits, many chip results
        await wait_until(lambda: sum("asic_result" in line for line in lines) >= 150, timeout=6000.0)
        reading = unit.reading()
    finally:
        await unit.stop()
    events = [parse_line(line) for line in lines]
    assert None not in events                                 # every line in a firmware format
    nonces = [e for e in events if isinstance(e, NonceEvent)]
    temps = [e for e in events if isinstance(e, TemperatureEvent)]
    results = [e for e in events if isinstance(e, ShareResultEvent)]
    assert len(nonces) >= 150 and temps and len(results) <= unit.miner.accepted
    assert all(abs(t.chip_c - 60.0) < 8.0 for t in temps)    # PID holds the 60 degC target
    assert all(n.difficulty >= 256.0 for n in nonces)        # BM1366 ticket floor
    assert all(n.asic_nr == 0 and chip_of_nonce(n.nonce, 1) == 0 for n in nonces)
    # 60 s window of ~0.4 nonces/s: the reported rate is noisy but near the ideal
    assert 0.4 * reading.hashrate_ideal_ghs < reading.hashrate_avg_ghs < 1.8 * reading.hashrate_ideal_ghs


@pytest.mark.virtual_time
async def test_chip_result_counts_are_poisson_at_the_physics_rate_and_cost_two_hashes(
        pool: Pool) -> None:
    """Result counts come from the physics (Poisson, as a real chip's), the hashing finds
    them genuinely at ~HASHES_PER_CHIP_RESULT hashes each, and the pool accepts the shares."""
    unit = SimulatedUnit(config("lbbox", pool.lbry_url, noise_seed=5))
    per_window: list[int] = []
    await unit.start()
    try:
        await pool.set_difficulty(4096 * unit.difficulty_scale)    # 4x the chip floor
        await wait_until(lambda: unit.miner.job is not None)
        hashes0 = unit.miner.hashes_done
        expected = 0.0
        for _ in range(120):
            t0, count0 = unit.physics.time_s, unit.physics._nonces_total.sum()
            expected_rate = float(unit.physics.valid_rates_hs().sum()) / unit.physics.hashes_per_floor_nonce
            await sim_time_passes(unit, 5.0)
            per_window.append(int(unit.physics._nonces_total.sum() - count0))
            expected += expected_rate * (unit.physics.time_s - t0)
        hashes = unit.miner.hashes_done - hashes0
        await shares_settled(unit)
    finally:
        await unit.stop()
    counts = np.array(per_window)
    assert counts.sum() == pytest.approx(expected, rel=0.05)      # the physics' rate
    assert 0.7 < counts.var(ddof=1) / counts.mean() < 1.35        # Poisson dispersion
    assert hashes / counts.sum() == pytest.approx(HASHES_PER_CHIP_RESULT, rel=0.1)
    m = unit.miner
    assert 0 < m.accepted and m.rejected == 0                     # ~1 in 4 results a share
    assert m.accepted == pytest.approx(counts.sum() / 4, rel=0.2)


@pytest.mark.virtual_time
async def test_s9_frequency_and_pool_wait_for_restart(pool: Pool) -> None:
    unit = SimulatedUnit(config("s9", pool.url, speed=100.0))
    await pool.set_difficulty(1024 * unit.difficulty_scale)
    await unit.start()
    try:
        await wait_until(lambda: unit.miner.accepted > 0)
        before = unit.reading()
        result = unit.apply(frequency_mhz=700.0, pool_user="s9.other")
        assert result == {"live": [], "pending": ["frequency_mhz", "pool_user"]}
        r = unit.reading()
        assert r.frequency_mhz == 650.0 and r.pending_restart and r.pool_user == "s9.sim"
        assert unit.settings()["frequency_mhz"] == 700.0
        restart = asyncio.ensure_future(unit.restart())
        await wait_until(lambda: not unit.physics.hashing)     # a 75 s boot: chips are off
        r = unit.reading()
        assert r.booting and r.hashrate_ghs == 0.0
        await restart
        r = unit.reading()
        assert not r.booting and not r.pending_restart
        assert r.frequency_mhz == 700.0 and r.pool_user == "s9.other"
        assert r.hashrate_ideal_ghs > before.hashrate_ideal_ghs * 1.07
        await pool.wait_for_session(worker="s9.other", timeout=10.0)
        await wait_until(lambda: unit.miner.accepted > 0)
        with pytest.raises(SettingsError):
            unit.pause()
    finally:
        await unit.stop()


@pytest.mark.virtual_time
async def test_lv06_live_settings_pause_resume_and_pending_pool(pool: Pool) -> None:
    unit = SimulatedUnit(config("lv06", pool.url, speed=100.0, firmware="axeos-2.15"))
    await pool.set_difficulty(256 * unit.difficulty_scale)
    await unit.start()
    try:
        await wait_until(lambda: unit.miner.accepted > 0)
        p0 = unit.reading().power_w
        assert unit.apply(frequency_mhz=550.0, core_voltage_mv=1250.0) == {
            "live": ["frequency_mhz", "core_voltage_mv"], "pending": []}
        r = unit.reading()
        assert r.frequency_mhz == 550.0 and r.core_voltage_mv == 1250.0
        assert r.power_w > p0 * 1.1                         # C V^2 f responds at once
        unit.apply(fan_auto=False, fan_pct=30.0)                # a manual fan applies at once
        assert not unit.reading().fan_auto and unit.reading().fan_target_pct == 30.0
        assert unit.apply(pool_url="stratum+tcp://127.0.0.1:1") == {"live": [],
                                                                   "pending": ["pool_url"]}
        assert unit.reading().pending_restart and unit.miner.connected
        unit.pause()
        await shares_settled(unit)                          # replies to shares in flight
        submitted, accepted = unit.miner.submitted, unit.miner.accepted
        await sim_time_passes(unit, 50.0)                   # ~20 shares at 0.4/s if still hashing
        r = unit.reading()
        assert r.paused and (unit.miner.submitted, unit.miner.accepted) == (submitted, accepted)
        assert r.power_w < p0
        unit.resume()
        await wait_until(lambda: unit.miner.accepted > accepted)
    finally:
        await unit.stop()


def test_bad_settings_are_refused_and_change_nothing() -> None:
    s9, lv06, lb = (SimulatedUnit(config(m)) for m in ("s9", "lv06", "lbbox"))
    cases = [
        (lv06, dict(frequency_mhz=900.0), "outside"),
        (lv06, dict(frequency_mhz="fast"), "number"),
        (lv06, dict(frequency_mhz=float("nan")), "finite"),
        (lv06, dict(core_voltage_mv=1500), "outside"),
        (lv06, dict(fan_pct=120), "outside"),
        (lv06, dict(temp_target_c=5), "outside"),
        (lv06, dict(fan_auto="yes"), "boolean"),
        (lv06, dict(pool_url="nonsense://"), "scheme"),
        (lv06, dict(pool_user=" "), "empty"),
        (lv06, dict(turbo=True), "unknown setting"),
        (s9, dict(core_voltage_mv=450), "not settable"),
        (s9, dict(temp_target_c=60), "no temperature target"),
        (lb, dict(frequency_mhz=960.0), "neither the stock plan nor a manual clock"),
        (lb, dict(frequency_mhz=1100.0), "neither the stock plan nor a manual clock"),
    ]
    for unit, change, message in cases:
        before = unit.settings()
        with pytest.raises(SettingsError, match=message):
            unit.apply(**change)
        assert unit.settings() == before
    before = lv06.settings()
    with pytest.raises(SettingsError):
        lv06.apply(frequency_mhz=500.0, bogus=1)          # all or nothing
    assert lv06.settings() == before
    # unchanged values of fixed settings are accepted (firmware forms send everything back)
    s9.apply(core_voltage_mv=s9.settings()["core_voltage_mv"])
    assert lb.apply(frequency_mhz=900.0)["live"] == ["frequency_mhz"]   # a manual clock


@pytest.mark.virtual_time
async def test_lbbox_power_plan_change_pauses_hashing_briefly(pool: Pool) -> None:
    unit = SimulatedUnit(config("lbbox", pool.lbry_url, speed=20.0))   # pause = 0.5 s wall
    await pool.set_difficulty(16 * unit.difficulty_scale)
    await unit.start()
    try:
        await wait_until(lambda: unit.miner.accepted > 0)
        unit.apply(frequency_mhz=850.0)
        await wait_until(lambda: not unit.physics.hashing, timeout=100.0)   # re-tuning
        await wait_until(lambda: unit.physics.hashing, timeout=100.0)
        assert unit.reading().frequency_mhz == 850.0
    finally:
        await unit.stop()


@pytest.mark.virtual_time
async def test_identity_is_stable_across_units_and_restarts() -> None:
    a = SimulatedUnit(config("s9", seed=42))
    b = SimulatedUnit(config("s9", seed=42))
    c = SimulatedUnit(config("s9", seed=43))
    np.testing.assert_array_equal(a.physics.variation.speed, b.physics.variation.speed)
    assert a.reading().mac == b.reading().mac != c.reading().mac
    assert not np.allclose(a.physics.variation.leakage, c.physics.variation.leakage)
    speed_before = a.physics.variation.speed.copy()
    await a.start()
    try:
        await a.restart()
    finally:
        await a.stop()
    np.testing.assert_array_equal(a.physics.variation.speed, speed_before)


@pytest.mark.virtual_time
async def test_reconnect_jitter_follows_the_noise_seed() -> None:
    """A unit whose pool refuses it backs off by the same jittered delays whenever its
    ``noise_seed`` is the same, so a virtual-time run reconnects at the same moments."""
    async def asked_delays(noise_seed: int) -> list[float]:
        unit = SimulatedUnit(config("lv06", "stratum+tcp://127.0.0.1:9", noise_seed=noise_seed))
        asked: list[float] = []
        real_sleep = unit.miner._sleep

        async def recording_sleep(seconds: float) -> None:
            asked.append(seconds)
            await real_sleep(seconds)
        unit.miner._sleep = recording_sleep
        await unit.start()
        try:
            await wait_until(lambda: len(asked) >= 4)
        finally:
            await unit.stop()
        return asked[:4]

    first, again, other = [await asked_delays(s) for s in (4, 4, 5)]
    assert first == again and first != other
    assert all(0.5 * 2 ** n <= d <= 2 ** n for n, d in enumerate(first))   # 1 s base, doubling


@pytest.mark.virtual_time
async def test_unit_survives_a_pool_that_disappears() -> None:
    clock = Clock.virtual()
    unit = SimulatedUnit(config("lv06", "stratum+tcp://127.0.0.1:9"), clock=clock)
    pool = Pool(PoolConfig(port=0, difficulty=256 * unit.difficulty_scale, seed=1), clock=clock)
    await pool.start()
    unit = SimulatedUnit(config("lv06", pool.url), clock=clock)
    await unit.start()
    try:
        await wait_until(lambda: unit.miner.accepted > 0)
        await pool.stop()
        await wait_until(lambda: not unit.miner.connected)
        ticks = unit.stats.ticks
        await wait_until(lambda: unit.stats.ticks > ticks + 2)   # still ticking
        r = unit.reading()
        assert r.hashrate_ghs == 0.0 and not r.pool_connected
    finally:
        await unit.stop()


def test_stock_lv06_stores_its_clock_for_the_next_restart_and_cannot_pause() -> None:
    unit = SimulatedUnit(config("lv06"))
    assert unit.generation.name == "lucky-2.1.8"            # what a stock LV06 ships
    assert unit.apply(frequency_mhz=550.0, fan_pct=40.0) == {"live": ["fan_pct"],
                                                              "pending": ["frequency_mhz"]}
    assert unit.reading().frequency_mhz == 485.0 and unit.reading().pending_restart
    with pytest.raises(SettingsError, match="no pause"):
        unit.pause()
    with pytest.raises(ValueError, match="choose one of lucky-2.1.8, axeos-2.15"):
        UnitConfig(model="lv06", firmware="bmminer")


def test_cli_configs_loopback_only_and_lbry_default() -> None:
    import argparse

    from asic_reservoir.cli.sim import build_configs, sim_arguments

    parser = argparse.ArgumentParser()
    sim_arguments(parser)
    args = parser.parse_args(["--pool", "stratum+tcp://127.0.0.1:3333", "--seed", "10",
                              "--units", "s9,lv06,lbbox,lv06"])
    cfgs = build_configs(args)
    assert [c.host for c in cfgs] == ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    assert [c.seed for c in cfgs] == [10, 11, 12, 13]
    assert cfgs[2].pool_url == "stratum+tcp://127.0.0.1:3334"
    assert [c.worker for c in cfgs] == ["s9.sim", "lv06.sim", "lbbox.sim", "lv06.sim2"]
    assert [c.firmware for c in cfgs] == [None] * 4                     # stock firmware
    pinned = build_configs(parser.parse_args(["--pool", "stratum+tcp://127.0.0.1:3333", "--units",
                                              "s9,lv06,lv06", "--firmware", "lv06=axeos-2.15"]))
    assert [c.firmware for c in pinned] == [None, "axeos-2.15", "axeos-2.15"]
    listed = build_configs(parser.parse_args(["--pool", "stratum+tcp://127.0.0.1:3333", "--units",
                                              "lv06,lv06", "--firmware", "stock,axeos-2.15"]))
    assert [c.firmware for c in listed] == [None, "axeos-2.15"]
    for argv, message in [
        (["--firmware", "axeos-2.15"], "unknown s9 firmware 'axeos-2.15'; choose one of bmminer"),
        (["--firmware", "lv06=axeos-2.15"], "models without a unit"),
        (["--hosts", "10.0.0.5"], "not a loopback"),
        (["--hosts", "127.0.0.2,127.0.0.3"], "addresses for 1 units"),
        (["--units", "s19"], "unknown model"),
        (["--hosts", "localhost-ish"], "not an IP"),
    ]:
        bad = parser.parse_args(["--pool", "stratum+tcp://127.0.0.1:3333", "--units",
                                 "s9"] + argv)
        with pytest.raises(ValueError, match=message):
            build_configs(bad)
    ok = parser.parse_args(["--pool", "stratum+tcp://127.0.0.1:3333", "--units", "s9",
                            "--hosts", "10.0.0.5", "--allow-nonloopback"])
    assert build_configs(ok)[0].host == "10.0.0.5"


async def test_cli_runs_units_against_a_pool_and_prints_totals() -> None:
    pool = Pool(PoolConfig(port=0, lbry_port=0, difficulty=1e-9, seed=1))
    await pool.start()
    try:
        code, out, err = await run_cli("sim", "--pool", pool.url, "--lbry-pool", pool.lbry_url,
                                       "--speed", "20", "--rpc-port", "0", "--http-port", "0",
                                       "--duration", "3", "--json", timeout=60)
    finally:
        await pool.stop()
    assert code == 0, err
    first, last = (json.loads(line) for line in out.splitlines() if line.strip())
    assert [u["model"] for u in first["units"]] == ["s9", "lv06", "lbbox"]
    assert first["units"][0]["url"].startswith("s9://127.0.0.2:")
    assert all(u["difficulty_scale"] > 0 for u in first["units"])
    by_worker = {t["worker"]: t for t in last["totals"]}
    assert all(by_worker[w]["accepted"] > 0 for w in ("s9.sim", "lv06.sim", "lbbox.sim"))
    assert all(t["rejected"] == 0 for t in last["totals"])
    assert pool.totals()["rejected"] == 0


@pytest.mark.virtual_time
async def test_lv06_overheat_protection_stops_hashing_until_restart(pool: Pool) -> None:
    unit = SimulatedUnit(config("lv06", pool.url, speed=100.0, firmware="axeos-2.15"))
    lines: list[str] = []
    unit.add_log_listener(lines.append)
    await pool.set_difficulty(256 * unit.difficulty_scale)
    await unit.start()
    try:
        await wait_until(lambda: unit.miner.accepted > 0)
        unit.apply(fan_auto=False, fan_pct=0.0, frequency_mhz=575.0, core_voltage_mv=1300.0)
        await wait_until(lambda: unit.overheated, timeout=6000.0)
        r = unit.reading()
        # the powered-down die cools within seconds; the firmware's line kept the reading
        assert r.overheated and r.fans[0][1] == 100.0 and r.power_w < 5.0
        overheat = [e for line in lines if "OVERHEAT" in line
                    for e in [parse_line(line)] if isinstance(e, TemperatureEvent)]
        assert overheat and overheat[0].chip_c > 75.0 and overheat[0].vr_c is not None
        await shares_settled(unit)                          # replies to shares in flight
        submitted = unit.miner.submitted
        await sim_time_passes(unit, 30.0)
        assert unit.miner.submitted == submitted and not unit.physics.hashing
        unit.apply(fan_auto=True, frequency_mhz=485.0, core_voltage_mv=1200.0)
        await unit.restart()
        assert not unit.reading().overheated
        await wait_until(lambda: unit.miner.accepted > 0)
    finally:
        await unit.stop()


def test_cli_reports_a_busy_port_clearly(capsys) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.2", 0))
    busy.listen()
    try:
        code, _, err = support.main_here(
            capsys, "sim", "--pool", "stratum+tcp://127.0.0.1:9", "--units", "s9",
            "--hosts", "127.0.0.2", "--rpc-port", str(busy.getsockname()[1]),
            "--http-port", "0", "--duration", "1")
    finally:
        busy.close()
    assert code == 1 and err.startswith("asic-reservoir sim: cannot open a unit's port")
