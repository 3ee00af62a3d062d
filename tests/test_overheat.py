"""A real overheat of a simulated LV06, driven through its HTTP API: the fan is forced low
(a legitimate bench mistake; physics untouched), the firmware's own protection trips, and
what each ESP-Miner generation then stores and reports is checked through the driver, as
is that a session does not silently restore settings over the firmware's safe mode.

Sources: ESP-Miner ``main/tasks/power_management_task.c`` at v2.1.8 (safe values
990 mV / 50 MHz / fan 100 % into NVS, then a reboot) and v2.15.0 (``overheat_mode``, a
cooling loop, then frequency and voltage 100 lower, kept in NVS).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.errors import SafeMode
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.drivers.units import open_unit
from asic_reservoir.simulator import UnitConfig, start_units

pytestmark = pytest.mark.virtual_time


async def _poll(unit, predicate, timeout_s: float, interval_s: float = 2.0):
    """Driver telemetry every ``interval_s`` (simulated) until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            reading = await unit.telemetry()
        except Exception:                  # rebooting: the web server is down for a while
            reading = None
        if reading is not None and predicate(reading):
            return reading
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {timeout_s:g} s; last {reading}")
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def _hashing_lv06(firmware: str):
    """A seeded pool and one LV06 on ``firmware`` in virtual time, opened through its driver
    and polled until it hashes; yields (simulated unit, driver)."""
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, seed=3), clock=clock)
    await pool.start()
    config = UnitConfig(model="lv06", seed=21, noise_seed=21, host="127.0.0.1", pool_url=pool.url,
                        worker="lv06.hot", http_port=0, ambient_c=25.0, firmware=firmware)
    try:
        async with start_units([config], clock=clock) as (sim,):
            unit = await open_unit(sim.url)
            try:
                await _poll(unit, lambda r: (r.hashrate_ghs or 0) > 0, 120)
                yield sim, unit
            finally:
                await unit.close()
    finally:
        await pool.stop()


async def test_axeos_2_15_overheat_mode_cooling_and_reduced_settings_that_persist():
    async with _hashing_lv06("axeos-2.15") as (sim, unit):
        stock = await unit.settings()
        assert (stock["frequency_mhz"], stock["core_voltage_mv"]) == (485, 1200)
        with pytest.raises(SafeMode) as refused:
            async with unit.session():
                await unit.apply({"fan_auto": False, "fan_pct": 0})   # fan forced low
                hot = await _poll(unit, lambda r: r.overheat != "", 600)
                assert "overheat_mode 1" in hot.overheat
                info = await unit.api.system_info()
                assert info["overheat_mode"] == 1 and info["autofanspeed"] == 0
                assert info["manualFanSpeed"] == 100 and info["hashRate"] == 0
        assert "not written back" in str(refused.value)
        # a restart during the cooling loop leaves the flag set until the user clears it
        await unit.restart()
        await unit.wait_ready(timeout=60)
        again = await unit.telemetry()
        assert "overheat_mode 1" in again.overheat
        await unit.clear_overheat_mode()
        assert (await unit.telemetry()).overheat == ""
        # a second overheat, left alone: the firmware cools, then mines at reduced settings
        await unit.apply({"fan_auto": False, "fan_pct": 0})
        await _poll(unit, lambda r: r.overheat != "", 600)
        back = await _poll(unit, lambda r: r.overheat == "" and (r.hashrate_ghs or 0) > 0, 900)
        now = await unit.settings()
        assert (now["frequency_mhz"], now["core_voltage_mv"]) == (385, 1100)
        assert now["fan_auto"] is False and now["fan_pct"] == 100
        assert back.frequency_mhz == 385
        reason = await unit.overheat(stock)
        assert "recovered from an overheat at reduced settings" in reason
        await unit.restart()                               # NVS keeps the reduction
        await unit.wait_ready(timeout=60)
        kept = await unit.settings()
        assert (kept["frequency_mhz"], kept["core_voltage_mv"]) == (385, 1100)
        assert await unit.overheat(stock) == reason        # a restore would refuse


async def test_stock_lv06_stores_safe_values_reboots_and_stays_throttled():
    async with _hashing_lv06("lucky-2.1.8") as (sim, unit):
        stock = await unit.settings()
        with pytest.raises(SafeMode):
            async with unit.session():
                result = await unit.apply({"fan_auto": False, "fan_pct": 0})
                assert result.outcome("fan_auto").status == "pending_restart"
                await unit.restart()                       # the fan mode loads at restart
                safe = await _poll(unit, lambda r: "50 MHz" in r.overheat, 900)
                assert "990 mV" in safe.overheat
        info = await unit.api.system_info()
        assert "overheat_mode" not in info                 # v2.1.8 has no flag
        assert (info["frequency"], info["coreVoltage"], info["autofanspeed"]) == (50, 990, 0)
        assert sim.reading().frequency_mhz == pytest.approx(50.0)   # running, not just stored
        await unit.restart()                               # still throttled after a restart
        await unit.wait_ready(timeout=60)
        assert "50 MHz" in (await unit.telemetry()).overheat
        # the user writes settings back and restarts: the unit runs them again
        result = await unit.apply({k: stock[k] for k in ("frequency_mhz", "core_voltage_mv",
                                                         "fan_auto")})
        assert set(result.pending_restart) == {"frequency_mhz", "core_voltage_mv", "fan_auto"}
        await unit.restart()
        await unit.wait_ready(timeout=60)
        reading = await _poll(unit, lambda r: (r.hashrate_ghs or 0) > 0, 120)
        assert reading.overheat == "" and sim.reading().frequency_mhz == pytest.approx(485.0)
