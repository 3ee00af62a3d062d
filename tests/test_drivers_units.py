"""Unit drivers against the simulator's real servers: identify, telemetry, settings, envelope,
restore-on-exit, pool switching, log streams, scan and probe CLIs.

One lab per module: a validating pool and three simulated units on distinct loopback
addresses (127.77.5.1-3, ephemeral ports); 127.77.5.4 has nothing listening.

The lab runs in virtual time (pool, units and drivers on one loop whose clock jumps to the
next event), so every timeout and wait below is in simulated seconds and a loaded host only
makes the module slower, never different. The CLIs run in a worker thread on their own loop;
the virtual clock stands still while they work (executor jobs in flight stop it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.cli import settings as set_cli
from asic_reservoir.cli import units as cli
from asic_reservoir.cli.main import main
from asic_reservoir.drivers.errors import (AccessDenied, ConnectionRefused, EnvelopeError, OverTemperature,
                            Timeout, UnitError, UnsupportedSetting)
from asic_reservoir.drivers.events import NonceEvent
from asic_reservoir.drivers.serial import ConsoleReader
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.drivers.antminer import config_form
from asic_reservoir.drivers.units import (LBBoxUnit, LV06Unit, S9Unit, identify, open_unit, parse_unit_url)
from asic_reservoir.simulator import SimulatedUnit, UnitConfig, start_units
from asic_reservoir.simulator.firmware.generations import GENERATIONS
from asic_reservoir.simulator.firmware.antminer_web import (SET_CONF_FIELDS, SET_CONF_REPLY_S,
                                                          positional_fields)
from tests.sim_firmware_support import running_unit
from tests.support import free_port, main_here, wait_until

pytestmark = pytest.mark.virtual_time
in_lab_loop = pytest.mark.asyncio(loop_scope="module")  # async tests share the lab's loop

HOSTS = {"s9": "127.77.5.1", "lv06": "127.77.5.2", "lbbox": "127.77.5.3"}
CLOSED_HOST = "127.77.5.4"
# the lab's LV06 runs current AxeOS; every other generation gets a unit of its own
FIRMWARE = {"s9": "bmminer", "lv06": "axeos-2.15", "lbbox": "goldshell-box"}
EXTRA = {"lucky-2.1.8": ("lv06", "127.77.5.5")}
ALL_GENERATIONS = sorted(GENERATIONS)


@dataclasses.dataclass
class Lab:
    pool: Pool
    units: dict[str, SimulatedUnit]        # one unit per model (lv06: current AxeOS)
    clock: Clock
    generations: dict[str, SimulatedUnit]  # one unit per firmware generation


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lab():
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0), clock=clock)
    await pool.start()
    entries = [(m, FIRMWARE[m], h, f"{m}.lab") for m, h in HOSTS.items()]
    entries += [(m, fw, h, f"{fw}.lab") for fw, (m, h) in EXTRA.items()]
    configs = [UnitConfig(model=m, seed=i + 1, host=h, firmware=fw,
                          pool_url=pool.lbry_url if m == "lbbox" else pool.url,
                          worker=worker, rpc_port=0, http_port=0, noise_seed=100 + i,
                          serial=(worker == "lv06.lab"))
               for i, (m, fw, h, worker) in enumerate(entries)]
    try:
        async with start_units(configs, clock=clock) as units:
            for u in units:
                await pool.wait_for_session(worker=u.config.worker, timeout=10)
            # a scaled-down LV06 reports ~0.4 chip results per simulated second (Poisson):
            # its first one can take longer than 10 s; simulated time is cheap here
            await wait_until(lambda: all(u.reading().hashrate_avg_ghs > 0 for u in units),
                             timeout=120)
            yield Lab(pool, {u.config.model: u for u in units[:len(HOSTS)]}, clock,
                      {u.generation.name: u for u in units})
    finally:
        await pool.stop()


@contextlib.asynccontextmanager
async def opened(url: str):
    # generous timeout: CI cores are shared; the timeout paths have their own tests
    unit = await open_unit(url, timeout=15.0)
    try:
        yield unit
    finally:
        await unit.close()


async def settle(lab: Lab) -> None:
    """Wait until no unit is booting (a restart in an earlier test keeps its APIs down)."""
    await wait_until(lambda: not any(u.booting for u in lab.generations.values()), timeout=300)


def between(got: float, a: float, b: float, *, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """``got`` lies between two ground-truth readings taken before and after the driver's read
    (simulated time may move while the reply is on its way), widened by a tolerance."""
    lo, hi = min(a, b), max(a, b)
    return lo - abs(lo) * rel - abs_ <= got <= hi + abs(hi) * rel + abs_


# ------------------------------------------------------------------ identify

@in_lab_loop
async def test_auto_url_identifies_each_model(lab):
    await settle(lab)
    for model, sim in lab.units.items():
        auto = f"auto://{sim.host}?rpc={sim.rpc_port or 4028}&http={sim.http_port}"
        async with opened(auto) as unit:
            assert unit.model == model
            ident = await unit.identify()
            assert ident.model == model and ident.host == sim.host
        assert type(unit) is {"s9": S9Unit, "lv06": LV06Unit, "lbbox": LBBoxUnit}[model]
    s9 = lab.units["s9"]
    ident = await identify(s9.host, rpc_port=s9.rpc_port, http_port=s9.http_port, timeout=15)
    assert ident.name == "Antminer S9" and "realm antMiner" in ident.evidence
    lb = lab.units["lbbox"]
    ident = await identify(lb.host, rpc_port=lb.rpc_port, http_port=lb.http_port, timeout=15)
    assert ident.model == "lbbox" and "Goldshell" in ident.name


@in_lab_loop
async def test_identify_nothing_there_is_typed():
    with pytest.raises(UnitError) as info:
        await identify(CLOSED_HOST, rpc_port=free_port(), http_port=free_port(), timeout=0.5)
    assert "identify" in str(info.value)


def test_unit_url_parsing():
    a = parse_unit_url("s9://root:pw@10.0.0.5:4029?http=8080")
    assert (a.model, a.host, a.rpc_port, a.http_port, a.username, a.password) == \
        ("s9", "10.0.0.5", 4029, 8080, "root", "pw")
    assert parse_unit_url("lv06://h").http_port == 80
    b = parse_unit_url("lbbox://h:81?rpc=4030")
    assert (b.http_port, b.rpc_port) == (81, 4030)
    assert parse_unit_url(b.url) == b
    for bad in ("x9://h", "s9://", "auto://h:80", "lv06://h:99999", "s9://h?http=abc"):
        with pytest.raises(ValueError):
            parse_unit_url(bad)


# ----------------------------------------------------------------- telemetry

@in_lab_loop
async def test_s9_telemetry_matches_ground_truth(lab):
    await settle(lab)
    sim = lab.units["s9"]
    # after a restart in an earlier test the chips need a few ticks before the 5 s rate moves
    await wait_until(lambda: sim.reading().hashrate_ghs > 0, timeout=30)
    async with opened(sim.url) as unit:
        before = sim.reading()
        t = await unit.telemetry()
        truth = sim.reading()
    assert t.model == "s9" and "16.8.1.3" in t.firmware
    assert [c.index for c in t.chains] == [6, 7, 8]  # bmminer's slots, found by chain_acnN
    assert [c.chips for c in t.chains] == [c.chips for c in truth.chains] == [63, 63, 63]
    for got, want, was in zip(t.chains, truth.chains, before.chains):
        # firmware prints whole degrees; sensors carry noise between reads
        assert between(got.chip_temp_c, was.chip_temp_c, want.chip_temp_c, abs_=1.5)
        assert between(got.board_temp_c, was.board_temp_c, want.board_temp_c, abs_=1.5)
        assert len(got.status) == 63 and set(got.status) <= {"o", "x"}
    # both rates as the simulator counts them (in virtual time it never falls behind its budget)
    assert between(t.hashrate_avg_ghs, before.hashrate_avg_ghs, truth.hashrate_avg_ghs, rel=0.01)
    assert t.hashrate_ghs > 0
    assert between(t.hashrate_ghs, before.hashrate_ghs, truth.hashrate_ghs, rel=0.01)
    assert t.frequency_mhz == pytest.approx(truth.frequency_mhz, abs=1)
    assert len(t.fan_rpm) == 2 and all(r > 0 for r in t.fan_rpm)
    assert t.pool_url == lab.pool.url and t.pool_user == "s9.lab"
    assert t.accepted is not None
    assert int(before.uptime_s) <= t.uptime_s <= truth.uptime_s   # bmminer prints whole seconds
    assert t.power_w is None  # stock bmminer does not report power: never invented
    row = t.as_row()
    assert row["chain7_chip_temp_c"] == t.chains[1].chip_temp_c and "fan1_rpm" in row


@in_lab_loop
async def test_lv06_telemetry_matches_ground_truth(lab):
    await settle(lab)
    sim = lab.units["lv06"]
    async with opened(sim.url) as unit:
        before = sim.reading()
        t = await unit.telemetry()
        truth = sim.reading()
    assert t.model == "lv06" and t.chains[0].chips is None   # v2.15 info has no asicCount
    assert between(t.power_w, before.power_w, truth.power_w, rel=0.05)
    assert between(t.chip_temp_c, before.chip_temp_c, truth.chip_temp_c, abs_=1.5)
    # An Ultra-class board's sensors: no regulator sensor (the firmware reports 0.0, the driver
    # None), the temperature in whole degrees (EMC2101), power and current in INA260 steps.
    assert truth.vr_temp_c == 0.0 and t.raw["info"]["vrTemp"] == 0 and t.vr_temp_c is None
    assert t.chip_temp_c == round(t.chip_temp_c)
    assert t.power_w * 100 == pytest.approx(round(t.power_w * 100), abs=1e-3)  # a float32
    assert t.current_ma / 1.25 == pytest.approx(round(t.current_ma / 1.25), abs=1e-3)
    assert t.voltage_mv == pytest.approx(truth.input_voltage_mv, rel=0.01)
    assert t.current_ma > 0 and t.fan_rpm[0] > 0 and 0 <= t.fan_pct <= 100
    assert t.frequency_mhz == pytest.approx(truth.frequency_mhz, abs=1)
    assert t.pool_url == lab.pool.url and t.pool_user == "lv06.lab"


@in_lab_loop
async def test_lbbox_telemetry_matches_ground_truth(lab):
    await settle(lab)
    sim = lab.units["lbbox"]
    async with opened(sim.url) as unit:
        before = sim.reading()
        t = await unit.telemetry()
        truth = sim.reading()
    assert t.model == "lbbox" and len(t.chains) == len(truth.chains)
    assert between(t.chip_temp_c, before.chip_temp_c, truth.chip_temp_c, abs_=1.5)
    assert between(t.hashrate_avg_ghs, before.hashrate_avg_ghs, truth.hashrate_avg_ghs, rel=0.01)
    assert t.frequency_mhz == pytest.approx(truth.frequency_mhz, abs=1)
    assert t.fan_rpm and t.pool_url == lab.pool.lbry_url


@in_lab_loop
async def test_capabilities(lab):
    await settle(lab)
    caps = {}
    for model, sim in lab.units.items():
        async with opened(sim.url) as unit:
            caps[model] = await unit.capabilities()
    assert all(c.difficulty for c in caps.values())
    assert caps["s9"].frequency and caps["s9"].frequency_needs_restart and not caps["s9"].pause
    assert caps["lv06"].frequency and not caps["lv06"].frequency_needs_restart
    assert caps["lv06"].pause and caps["lv06"].voltage and caps["lv06"].fan
    assert caps["lbbox"].frequency_steps and caps["lbbox"].pause and not caps["lbbox"].fan


# ------------------------------------------------------------------ settings

@in_lab_loop
async def test_lv06_settings_round_trip_live(lab):
    await settle(lab)
    sim = lab.units["lv06"]
    async with opened(sim.url) as unit:
        before = await unit.settings()
        result = await unit.apply({"frequency_mhz": 525.0, "core_voltage_mv": 1250,
                                   "fan_auto": False, "fan_pct": 70})
        assert set(result.live) == {"frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct"}
        now = await unit.settings()
        assert (now["frequency_mhz"], now["core_voltage_mv"], now["fan_pct"], now["fan_auto"]) == \
            (525, 1250, 70, False)
        assert sim.reading().frequency_mhz == pytest.approx(525, abs=1)  # live on ESP-Miner
        await unit.apply({k: before[k] for k in ("frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct")})
        assert await unit.settings() == before


@in_lab_loop
async def test_lbbox_power_plan_round_trip(lab):
    await settle(lab)
    sim = lab.units["lbbox"]
    async with opened(sim.url) as unit:
        caps = await unit.capabilities()
        before = await unit.settings()
        assert before["frequency_mhz"] == 1000.0            # the stock plan, level 0
        assert caps.frequency_steps == tuple(float(f) for f in range(300, 1001, 25))
        assert any("level 0 1000 MHz" in line and "manual mode" in line for line in caps.learned)
        result = await unit.apply({"frequency_mhz": 850.0, "temp_target_c": 66})
        assert result.status == "applied", result.to_dict()
        assert result.outcome("frequency_mhz").effective == 850.0   # RPC devs clock
        now = await unit.settings()
        assert now["frequency_mhz"] == 850.0 and now["temp_target_c"] == 66
        with pytest.raises(UnsupportedSetting) as info:  # inside the envelope, not a clock it takes
            await unit.apply({"frequency_mhz": 862.5})
        assert "manual clocks" in str(info.value)
        await unit.apply({"frequency_mhz": before["frequency_mhz"],
                          "temp_target_c": before["temp_target_c"]})
        assert await unit.settings() == before
        setting = await unit.api.setting()
        assert (setting["select"], setting["manual"]) == (0, False)   # back on the stock plan


@in_lab_loop
async def test_lbbox_session_enters_manual_mode_and_restores_from_it(lab):
    """A manual clock set inside a session is undone on exit, and a unit found in manual
    mode gets its manual plan back (both read back from mcb/setting and the RPC clock)."""
    await settle(lab)
    sim = lab.units["lbbox"]
    async with opened(sim.url) as unit:
        async with unit.session():
            result = await unit.apply({"frequency_mhz": 700.0})
            setting = await unit.api.setting()
            assert setting["manual"] is True and setting["manualPowerplan"].startswith("700 MHz ")
            assert result.outcome("frequency_mhz").status == "applied"
        setting = await unit.api.setting()
        assert (setting["select"], setting["manual"]) == (0, False)
        assert (await unit.telemetry()).frequency_mhz == 1000.0
        await unit.apply({"frequency_mhz": 775.0})          # the unit is now found in manual mode
        async with unit.session():
            await unit.apply({"frequency_mhz": 1000.0})      # the stock plan: manual off
            assert (await unit.api.setting())["manual"] is False
        setting = await unit.api.setting()
        assert setting["manual"] is True and setting["manualPowerplan"].startswith("775 MHz ")
        reading = await unit.telemetry()
        assert reading.frequency_mhz == 775.0 and sim.settings()["frequency_mhz"] == 775.0
        await unit.apply({"frequency_mhz": 1000.0})


@in_lab_loop
async def test_lbbox_pause_is_the_sleep_plan(lab):
    await settle(lab)
    sim = lab.units["lbbox"]
    async with opened(sim.url) as unit:
        await unit.apply({"frequency_mhz": 800.0})          # a manual clock to come back to
        await unit.pause()
        setting = await unit.api.setting()
        assert (setting["select"], setting["manual"]) == (3, False) and sim.reading().paused
        assert "frequency_mhz" not in await unit.settings()  # asleep: no running plan clock
        await unit.resume()
        setting = await unit.api.setting()
        assert setting["manual"] is True and setting["manualPowerplan"].startswith("800 MHz ")
        assert not sim.reading().paused
        await unit.apply({"frequency_mhz": 1000.0})


@in_lab_loop
async def test_s9_frequency_applies_through_restart(lab):
    await settle(lab)
    sim = lab.units["s9"]
    async with opened(sim.url) as unit:
        before = await unit.settings()
        result = await unit.apply({"frequency_mhz": 600.0})
        assert result.restarting and sim.settings()["frequency_mhz"] == 600.0
        assert (await unit.settings())["frequency_mhz"] == 600.0
        reading = await unit.wait_ready(timeout=30, interval=0.05)  # RPC is down while booting
        assert reading.model == "s9" and not sim.booting
        await wait_until(lambda: sim.reading().frequency_mhz == pytest.approx(600, abs=1))
        await unit.apply({"frequency_mhz": before["frequency_mhz"]})
        await wait_until(lambda: sim.reading().frequency_mhz == pytest.approx(before["frequency_mhz"], abs=1))
        assert await unit.settings() == before


async def test_s9_slow_config_write_is_applied_after_read_back_not_a_timeout():
    """The CGI answers 25 simulated s after the post, far beyond the driver's 1 s request
    timeout: the write is verified by read-back, never a Timeout."""
    async with running_unit("s9", rpc_port=0, http_port=0) as sim:
        unit = await open_unit(sim.url, timeout=1.0)
        unit.verify_interval_s = 0.2
        try:
            sent = sim.clock.now()
            result = await unit.apply({"frequency_mhz": 600.0})
            assert sim.clock.now() - sent >= SET_CONF_REPLY_S
            assert result.status == "applied" and result.restarting
            outcome = result.outcome("frequency_mhz")
            assert (outcome.setting, outcome.effective) == (600.0, 600.0)
            assert "RPC" in outcome.evidence
            assert sim.reading().frequency_mhz == pytest.approx(600, abs=1)
        finally:
            await unit.close()


@in_lab_loop
async def test_s9_form_is_posted_in_the_scripts_positional_order(lab):
    await settle(lab)
    sim = lab.units["s9"]
    async with opened(sim.url) as unit:
        conf = await unit.miner_conf()
    form = config_form(conf, {"frequency_mhz": 600.0, "fan_auto": False, "fan_pct": 80})
    assert [k for k, _ in form][:14] == list(SET_CONF_FIELDS)
    fields = positional_fields(urlencode(form))      # what the script's case 0-13 reads
    assert (fields["_ant_freq"], fields["_ant_fan_customize_switch"],
            fields["_ant_fan_customize_value"]) == ("600", "true", "80")


@in_lab_loop
async def test_envelope_refusals_send_nothing(lab):
    await settle(lab)
    for model, sim in lab.units.items():
        truth = sim.settings()
        async with opened(sim.url) as unit:
            for bad in ({"frequency_mhz": 5000.0}, {"frequency_mhz": 10.0}, {"fan_pct": 140},
                        {"volts": 1}, {"frequency_mhz": "fast"}, {"fan_auto": "yes"},
                        {"pool_url": ""}):
                with pytest.raises(EnvelopeError) as info:
                    await unit.apply(bad)
                assert unit.name in str(info.value) and "apply" in str(info.value)
            if model != "lv06":
                with pytest.raises(EnvelopeError):
                    await unit.apply({"core_voltage_mv": 1200})  # no voltage control at all
        assert sim.settings() == truth


@in_lab_loop
async def test_pause_resume_and_unsupported(lab):
    await settle(lab)
    async with opened(lab.units["lv06"].url) as unit:
        await unit.pause()
        assert lab.units["lv06"].reading().paused
        await unit.resume()
        assert not lab.units["lv06"].reading().paused
    for model in ("s9", "lbbox"):
        async with opened(lab.units[model].url) as unit:
            if model == "s9":          # the LB-Box sleeps instead (test_lbbox_pause_is_the_sleep_plan)
                with pytest.raises(UnsupportedSetting):
                    await unit.pause()
            with pytest.raises(UnsupportedSetting):
                unit.events()
            with pytest.raises(UnsupportedSetting):
                await unit.apply({"fan_pct": 50} if model == "lbbox" else {"temp_target_c": 60})


@in_lab_loop
async def test_check_temperature(lab):
    await settle(lab)
    async with opened(lab.units["lv06"].url) as unit:
        reading = await unit.telemetry()
        unit.check_temperature(reading)  # a healthy unit passes
        hot = dataclasses.replace(reading, chip_temp_c=unit.envelope.chip_temp_max_c + 1)
        with pytest.raises(OverTemperature) as info:
            unit.check_temperature(hot)
        assert "chip" in str(info.value) and unit.name in str(info.value)
        with pytest.raises(OverTemperature):
            unit.check_temperature(dataclasses.replace(reading, vr_temp_c=200.0))
    async with opened(lab.units["s9"].url) as unit:
        reading = await unit.telemetry()
        unit.check_temperature(reading)
        chains = [dataclasses.replace(c, board_temp_c=90.0) for c in reading.chains]
        with pytest.raises(OverTemperature) as info:
            unit.check_temperature(dataclasses.replace(reading, chains=chains))
        assert "board" in str(info.value)


# ------------------------------------------------------------- restore on exit

@in_lab_loop
@pytest.mark.parametrize("model,changes", [
    ("lv06", {"frequency_mhz": 450.0, "fan_auto": False, "fan_pct": 90, "temp_target_c": 55}),
    ("lbbox", {"temp_target_c": 74}),
    ("s9", {"frequency_mhz": 625.0}),
])
async def test_session_restores_even_when_block_raises(lab, model, changes):
    await settle(lab)
    sim = lab.units[model]
    before = sim.settings()
    async with opened(sim.url) as unit:
        driver_before = await unit.settings()
        with pytest.raises(RuntimeError, match="experiment failed"):
            async with unit.session():
                await unit.apply(changes)
                assert all(sim.settings()[k] == v for k, v in changes.items())
                raise RuntimeError("experiment failed")
        assert await unit.settings() == driver_before
    assert sim.settings() == before


@in_lab_loop
async def test_session_restores_pool_after_point_at_pool(lab):
    await settle(lab)
    other = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0), clock=lab.clock)
    await other.start()
    try:
        for model in ("lbbox", "lv06", "s9"):
            sim = lab.units[model]
            before = sim.settings()
            url = other.lbry_url if model == "lbbox" else other.url
            async with opened(sim.url) as unit:
                async with unit.session():
                    result = await unit.point_at_pool(url, f"{model}.moved")
                    if result.pending_restart:  # LV06: pool settings load at restart
                        await unit.restart()
                    info = await other.wait_for_session(worker=f"{model}.moved", timeout=15)
                    assert info.authorized
            # the session returns only once the unit is back and runs its own pool again
            # (the LV06 through a second restart): the next user never meets it booting
            assert not sim.booting and sim.reading().pool_user == f"{model}.lab"
            assert sim.settings() == before
    finally:
        await other.stop()


# ------------------------------------------------------------- errors, RPC

@in_lab_loop
async def test_closed_ports_raise_typed_errors_with_unit_name():
    for url in (f"s9://127.0.0.1:{free_port()}?http={free_port()}",
                f"lv06://127.0.0.1:{free_port()}",
                f"lbbox://127.0.0.1:{free_port()}?rpc={free_port()}"):
        unit = await open_unit(url, timeout=1.0, attempts=2)
        try:
            with pytest.raises(ConnectionRefused) as info:
                await unit.telemetry()
            assert unit.name in str(info.value)
            with pytest.raises(Timeout) as waited:
                await unit.wait_ready(timeout=0.3, interval=0.1)
            assert "wait_ready" in str(waited.value) and "refused" in str(waited.value)
        finally:
            await unit.close()


@in_lab_loop
async def test_s9_rpc_text_form_and_stock_access(lab):
    await settle(lab)
    async with opened(lab.units["s9"].url) as unit:
        before = await unit.rpc.summary()
        text = await unit.rpc.command("summary", text=True)
        after = await unit.rpc.summary()
        assert text["STATUS"][0]["Code"] == after["STATUS"][0]["Code"] == 11
        # the text form parses to the same record: its uptime lies between two JSON reads
        # (simulated time runs on between the calls, by however long a loaded host takes)
        assert before["SUMMARY"][0]["Elapsed"] <= text["SUMMARY"][0]["Elapsed"] \
            <= after["SUMMARY"][0]["Elapsed"]
        assert set(text["SUMMARY"][0]) == set(after["SUMMARY"][0])
        with pytest.raises(AccessDenied):
            await unit.rpc.privileged("restart")  # stock api-allow: nobody is privileged


@in_lab_loop
async def test_lv06_statistics_and_asic_info(lab):
    await settle(lab)
    async with opened(lab.units["lv06"].url) as unit:
        asic = await unit.api.asic_info()
        stats = await unit.api.statistics()
    assert asic["ASICModel"] == "BM1366" and 485 in asic["frequencyOptions"]
    assert "hashrate" in stats["labels"]


@in_lab_loop
async def test_lbbox_rpc_is_read_only(lab):
    await settle(lab)
    async with opened(lab.units["lbbox"].url) as unit:
        with pytest.raises(AccessDenied) as info:
            await unit.rpc.privileged("addpool", "stratum+tcp://127.0.0.1:1,w,x")
        assert info.value.code == 45
        assert not await unit.rpc.can_write()
        joined = await unit.rpc.multicommand("devs", "summary")
        assert unit.rpc.join_supported and "DEVS" in joined["devs"]


# ----------------------------------------------------------------- log streams

@in_lab_loop
async def test_lv06_websocket_and_serial_console_events(lab):
    await settle(lab)
    sim = lab.units["lv06"]
    async with opened(sim.url) as unit:
        async def first_nonce():
            async for event in unit.events():
                if isinstance(event, NonceEvent):
                    return event
        ws_event = await asyncio.wait_for(first_nonce(), 20)
    assert ws_event.asic_nr == 0 and ws_event.difficulty > 0 and ws_event.nonce is not None
    assert sim.serial_path is not None
    async with ConsoleReader(sim.serial_path) as reader:
        async def first_serial():
            async for event in reader.events():
                if isinstance(event, NonceEvent):
                    return event
        serial_event = await asyncio.wait_for(first_serial(), 20)
    assert serial_event.pool_difficulty > 0


# ----------------------------------------------------------------- scan, probe

@in_lab_loop
async def test_scan_finds_three_units_and_skips_closed(lab):
    await settle(lab)
    ports = sorted({p for u in lab.units.values() for p in (u.rpc_port, u.http_port) if p})
    found = await cli.scan(cli.scan_hosts("127.77.5.0/29"), ports, concurrency=4, timeout=5.0)
    # every unit listening on a scanned port: the extra generation's unit (127.77.5.5) too
    # when the kernel gave one of its ephemeral ports the same number on its own address
    listening = {(u.host, u.profile.model) for u in lab.generations.values()
                 if {u.rpc_port, u.http_port} & set(ports)}
    assert {(h, m) for m, h in HOSTS.items()} <= listening
    assert {(i.host, i.model) for i in found} == listening
    by_model = {i.model: i for i in found}
    assert by_model["s9"].rpc_port == lab.units["s9"].rpc_port
    assert by_model["s9"].http_port == lab.units["s9"].http_port
    assert by_model["lbbox"].rpc_port == lab.units["lbbox"].rpc_port
    assert CLOSED_HOST not in {i.host for i in found}
    for ident in found:  # the URLs scan prints open the right driver
        async with opened(ident.url) as unit:
            assert unit.model == ident.model


@in_lab_loop
async def test_scan_cli_json_output(lab, capsys):
    await settle(lab)
    ports = ",".join(str(p) for u in lab.units.values() for p in (u.rpc_port, u.http_port) if p)
    parser = argparse.ArgumentParser()
    cli.scan_arguments(parser)
    args = parser.parse_args(["127.77.5.0/29", "--json", "--ports", ports, "--timeout", "5"])
    assert await asyncio.to_thread(cli.scan_main, args) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(u["model"] for u in out) == ["lbbox", "lv06", "s9"]


def test_scan_refuses_large_or_bad_ranges(capsys):
    with pytest.raises(ValueError, match="--force"):
        cli.scan_hosts("10.0.0.0/8")
    with pytest.raises(ValueError, match="--force"):
        cli.scan_hosts("127.0.0.0/15")
    assert len(cli.scan_hosts("127.77.5.0/29")) == 6
    assert cli.scan_hosts("127.77.5.9/32") == ["127.77.5.9"]
    with pytest.raises(ValueError):
        cli.scan_hosts("not-a-range")
    code, _, err = main_here(capsys, "scan", "10.0.0.0/8")
    assert code == 2 and err.startswith("asic-reservoir scan:") and "--force" in err
    parser = argparse.ArgumentParser()
    cli.scan_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["127.0.0.1/32", "--ports", "0,80"])


@in_lab_loop
@pytest.mark.parametrize("model", ["s9", "lv06", "lbbox"])
async def test_probe_cli_json_and_text(lab, model, capsys):
    await settle(lab)
    sim = lab.units[model]
    parser = argparse.ArgumentParser()
    cli.probe_arguments(parser)
    args = parser.parse_args([sim.host, "--json", "--rpc-port", str(sim.rpc_port or 4028),
                              "--http-port", str(sim.http_port), "--timeout", "15"])
    assert await asyncio.to_thread(cli.probe_main, args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["identity"]["model"] == model
    assert out["telemetry"]["model"] == model and out["telemetry"]["hashrate_avg_ghs"] > 0
    assert out["telemetry"]["chip_temp_c"] == pytest.approx(sim.reading().chip_temp_c, abs=3)
    args = parser.parse_args([sim.url, "--timeout", "15"])
    assert await asyncio.to_thread(cli.probe_main, args) == 0
    text = capsys.readouterr().out
    assert text.startswith(sim.url.split("?")[0].split("://")[0]) and "hashrate" in text


@in_lab_loop
@pytest.mark.parametrize("firmware", ALL_GENERATIONS)
async def test_probe_json_prints_what_was_learned_and_the_write_probe(lab, firmware, capsys):
    await settle(lab)
    sim = lab.generations[firmware]
    parser = argparse.ArgumentParser()
    cli.probe_arguments(parser)
    before = sim.settings()
    args = parser.parse_args([sim.url, "--json", "--try-writes", "--timeout", "15"])
    assert await asyncio.to_thread(cli.probe_main, args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["capabilities"]["learned"]
    probe = out["write_probe"]
    if sim.profile.model == "lv06":          # a harmless write of the current clock
        assert probe["tried"] and probe["outcomes"][0]["key"] == "frequency_mhz"
        live = sim.generation.applies_live("frequency_mhz")
        assert probe["status"] == ("applied" if live else "pending_restart")
        lesson = out["capabilities"]["learned"][-1]        # what the write showed is learned
        assert lesson.startswith("frequency_mhz: the current value")
        assert ("running value reported and equal" if live else "cannot show when it applies") in lesson
    else:                                    # not harmless there: not tried, and why
        assert not probe["tried"] and "restart" in probe["reason"]
    assert sim.settings() == before and not sim.reading().pending_restart


# what each generation answers where a capture asks something it does not serve
CAPTURE_UNKNOWN_ROUTE = {"lucky-2.1.8": 302, "axeos-2.15": 404}


@in_lab_loop
@pytest.mark.parametrize("firmware", ALL_GENERATIONS)
async def test_probe_capture_records_raw_replies_and_writes_nothing(lab, firmware, tmp_path, capsys):
    await settle(lab)
    sim = lab.generations[firmware]
    before = sim.settings()
    path = tmp_path / "capture.json"
    parser = argparse.ArgumentParser()
    cli.probe_arguments(parser)
    args = parser.parse_args([sim.url, "--capture", str(path), "--timeout", "15"])
    assert await asyncio.to_thread(cli.probe_main, args) == 0
    assert str(path) in capsys.readouterr().out
    doc = json.loads(path.read_text())
    unit_cls = {"s9": S9Unit, "lv06": LV06Unit, "lbbox": LBBoxUnit}[sim.profile.model]
    assert doc["model"] == sim.profile.model and doc["identity"]["model"] == sim.profile.model
    assert list(doc["http"]) == list(unit_cls.capture_paths)
    assert list(doc["rpc"]) == list(unit_cls.capture_commands)
    if sim.profile.model == "lv06":
        info = doc["http"]["/api/system/info"]
        assert info["status"] == 200 and json.loads(info["body"])["ASICModel"] == "BM1366"
        unknown = doc["http"]["/api/system/no-such-route"]
        assert unknown["status"] == CAPTURE_UNKNOWN_ROUTE[firmware]   # the redirect itself
        served = doc["http"]["/api/system/asic"]["status"] == 200
        assert served == (firmware == "axeos-2.15")
    elif sim.profile.model == "s9":
        conf = doc["http"]["/cgi-bin/get_miner_conf.cgi"]
        assert conf["status"] == 200 and "pools" in json.loads(conf["body"])
        stats = doc["rpc"]["stats"]["reply"]
        assert "}{" in stats and stats.endswith("\x00")      # raw: quirk and NUL kept
        assert '"Code":45' in doc["rpc"]["devdetails"]["reply"]   # stock access: denied, recorded
    else:
        setting = doc["http"]["/mcb/setting"]
        assert setting["status"] == 200 and "powerplans" in json.loads(setting["body"])
        assert "MHS 20s" in doc["rpc"]["devs"]["reply"]
    assert sim.settings() == before and not sim.reading().pending_restart   # read only
    assert main(["probe", sim.url, "--capture", str(path), "--try-writes"]) == 2


def test_probe_cli_error_exit(capsys):
    for url in (f"lv06://127.0.0.1:{free_port()}", f"s9://127.0.0.1:{free_port()}"):
        code, _, err = main_here(capsys, "probe", url, "--timeout", "0.5")
        assert code == 1 and err.startswith("asic-reservoir probe:") and "refused" in err
    assert main(["scan", "0.0.0.0/0"]) == 2


# ------------------------------------------------- firmware generations (every one)

FREQ_TARGET = {"s9": 600.0, "lv06": 525.0}


@in_lab_loop
@pytest.mark.parametrize("firmware", ALL_GENERATIONS)
async def test_frequency_write_verdict_per_generation(lab, firmware):
    """Applied only when the unit's telemetry runs the new clock; pending_restart where the
    firmware stores it for the next restart (and applied once it restarted)."""
    await settle(lab)
    sim = lab.generations[firmware]
    async with opened(sim.url) as unit:
        unit.verify_interval_s = 0.1
        before = await unit.settings()
        caps = await unit.capabilities()
        target = FREQ_TARGET.get(sim.profile.model) or next(
            f for f in caps.frequency_steps if f != before["frequency_mhz"])
        result = await unit.apply({"frequency_mhz": target})
        outcome = result.outcome("frequency_mhz")
        assert outcome.setting == pytest.approx(target)
        if sim.generation.applies_live("frequency_mhz") or result.restarting:
            assert outcome.status == "applied", outcome
            assert outcome.effective == pytest.approx(target, abs=1)
            assert sim.reading().frequency_mhz == pytest.approx(target, abs=1)
        else:
            assert outcome.status == "pending_restart" and outcome.effective is None
            assert "restart" in outcome.evidence
            assert sim.reading().frequency_mhz == pytest.approx(before["frequency_mhz"], abs=1)
            await unit.restart()
            await unit.wait_ready(timeout=30, interval=0.05)
            await wait_until(lambda: not sim.booting)
            again = await unit.verify({"frequency_mhz": target}, restarted=True)
            assert again[0].status == "applied"
            assert sim.reading().frequency_mhz == pytest.approx(target, abs=1)
        restored = await unit.apply({"frequency_mhz": before["frequency_mhz"]})
        if restored.pending_restart:
            await unit.restart()
            await unit.wait_ready(timeout=30, interval=0.05)
    await settle(lab)
    assert sim.reading().frequency_mhz == pytest.approx(before["frequency_mhz"], abs=1)


@in_lab_loop
@pytest.mark.parametrize("firmware", ALL_GENERATIONS)
async def test_capabilities_are_learned_from_the_unit(lab, firmware):
    await settle(lab)
    sim = lab.generations[firmware]
    async with opened(sim.url) as unit:
        caps = await unit.capabilities()
    gen = sim.generation
    assert caps.pause == gen.pause
    assert caps.frequency_needs_restart == (not gen.applies_live("frequency_mhz"))
    assert caps.learned
    if sim.profile.model == "lv06":
        assert any(line.startswith("endpoints:") for line in caps.learned)
        assert ("pause" in caps.learned[0]) == gen.pause


@in_lab_loop
async def test_early_lv06_has_no_pause_and_says_so(lab):
    await settle(lab)
    async with opened(lab.generations["lucky-2.1.8"].url) as unit:
        with pytest.raises(UnsupportedSetting):
            await unit.pause()
        reading = await unit.telemetry()
        assert reading.fan_rpm and reading.fan_rpm[0] > 0      # fanSpeedRpm on this release


# --------------------------------------------------------------------- set CLI

async def _set_cli(*argv: str) -> int:
    """``asic-reservoir set ARGV`` through the command line's ``main``, off the loop that
    serves the simulated units."""
    return await asyncio.to_thread(main, ["set", *argv])


@in_lab_loop
async def test_set_cli_verifies_and_restores_from_its_own_output(lab, capsys, tmp_path):
    await settle(lab)
    sim = lab.units["lv06"]
    before = sim.settings()
    code = await _set_cli(sim.url, "frequency=525", "fan=60", "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["result"]["status"] == "applied"
    assert out["commanded"] == {"frequency_mhz": 525.0, "fan_auto": False, "fan_pct": 60.0}
    assert out["previous"]["frequency_mhz"] == before["frequency_mhz"]
    assert out["effective"]["frequency_mhz"] == pytest.approx(525, abs=1)
    assert sim.settings()["frequency_mhz"] == 525 and not sim.settings()["fan_auto"]
    saved = tmp_path / "undo.json"
    saved.write_text(json.dumps(out))
    code = await _set_cli(sim.url, "--from", str(saved))
    text = capsys.readouterr().out
    assert code == 0 and "applied" in text
    assert {k: sim.settings()[k] for k in ("frequency_mhz", "fan_auto")} == \
        {k: before[k] for k in ("frequency_mhz", "fan_auto")}


@in_lab_loop
async def test_set_cli_dry_run_and_refusals_send_nothing(lab, capsys):
    await settle(lab)
    sim = lab.units["lv06"]
    before = sim.settings()
    code = await _set_cli(sim.url, "frequency=500", "--dry-run", "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["dry_run"] and "result" not in out
    for argv in (["frequency=5000"], ["volts=3"], ["frequency=fast"], []):
        code = await _set_cli(sim.url, *argv)
        assert code == 2 and capsys.readouterr().err.startswith("asic-reservoir set:")
    assert sim.settings() == before


@in_lab_loop
async def test_set_cli_reports_pending_restart_on_the_stock_lv06(lab, capsys):
    await settle(lab)
    sim = lab.generations["lucky-2.1.8"]
    before = sim.settings()["frequency_mhz"]
    code = await _set_cli(sim.url, "frequency=500", "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == set_cli.EXIT_PENDING and out["result"]["status"] == "pending_restart"
    assert sim.reading().frequency_mhz == before                 # still the old clock
    # writing the old value back: stored again; this firmware cannot show what runs
    assert await _set_cli(sim.url, f"frequency={before:g}") == set_cli.EXIT_PENDING
    assert sim.settings()["frequency_mhz"] == before and not sim.reading().pending_restart
    capsys.readouterr()
