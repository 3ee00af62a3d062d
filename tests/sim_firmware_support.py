"""Helpers for the firmware-emulation tests: raw RPC over TCP and started units."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import AsyncIterator

HOST = "127.0.0.1"


async def rpc_raw(port: int, payload: bytes, host: str = HOST, timeout: float = 5.0) -> bytes:
    """Send one request, read until the server closes (as every cgminer client must)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def repair(raw: bytes) -> dict:
    """What a robust client does to a bmminer reply: drop the NUL, add the missing comma."""
    text = raw.rstrip(b"\x00").decode()
    return json.loads(text.replace("}{", "},{"))


async def rpc_json(port: int, command: str, parameter=None, host: str = HOST) -> dict:
    req = {"command": command}
    if parameter is not None:
        req["parameter"] = parameter
    return repair(await rpc_raw(port, json.dumps(req).encode(), host))


@contextlib.asynccontextmanager
async def running_unit(model: str, seed: int = 7, speed: float = 20.0) -> AsyncIterator:
    """A started simulated unit with its own servers disabled (tests attach their own)."""
    try:
        from simulator import SimulatedUnit, UnitConfig
    except ImportError:             # TEMPORARY until simulator/unit.py lands
        unit = _StandInUnit(model, seed)
        yield unit
        return
    from asic_reservoir.clock import Clock

    cfg = UnitConfig(model=model, seed=seed, host=HOST, pool_url="stratum+tcp://127.0.0.1:9",
                     worker=f"{model}.sim", password="x", speed=speed, rpc_port=None,
                     http_port=None)
    unit = SimulatedUnit(cfg, clock=Clock(speed))
    await unit.start()
    try:
        yield unit
    finally:
        await unit.stop()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


class _StandInUnit:
    """TEMPORARY stand-in following the unit contract, until SimulatedUnit lands."""

    def __init__(self, model: str, seed: int) -> None:
        from simulator.physics import UnitPhysics
        from simulator.profiles import profile
        self.p = profile(model)
        self.physics = UnitPhysics(self.p, seed)
        self.physics.set_hashing(True)
        for _ in range(30):
            self.physics.step(1.0)
        self._settings = dict(frequency_mhz=self.p.freq_default_mhz,
                              core_voltage_mv=self.p.voltage_default_mv, fan_auto=True,
                              fan_pct=100.0, temp_target_c=self.p.temp_target_c,
                              pool_url="stratum+tcp://127.0.0.1:9", pool_user=f"{model}.sim",
                              pool_password="x")
        self.listeners = []
        self.restarts = 0
        self.paused = False

    def settings(self):
        return dict(self._settings)

    def apply(self, **kw):
        from simulator.physics import SettingsError
        for k, v in kw.items():
            if k not in self._settings:
                raise SettingsError(f"unknown setting {k}")
            if k == "frequency_mhz" and not self.p.freq_min_mhz <= v <= self.p.freq_max_mhz:
                raise SettingsError("frequency out of range")
        self._settings.update(kw)

    async def restart(self):
        self.restarts += 1

    def pause(self):
        self.paused = True

    def resume(self):
        self.paused = False

    def add_log_listener(self, cb):
        self.listeners.append(cb)

    def remove_log_listener(self, cb):
        self.listeners.remove(cb)

    def emit(self, line):
        for cb in list(self.listeners):
            cb(line)

    def reading(self):
        from simulator.physics import UnitReading
        ph = self.physics
        chains = ph.chain_readings()
        return UnitReading(
            model=self.p.model, name=self.p.name, seed=1, firmware=self.p.firmware,
            chip_model=self.p.chip_model, uptime_s=30.0, time_s=30.0,
            hashrate_ghs=sum(c.rate_ghs for c in chains), hashrate_avg_ghs=ph.average_rate_hs() / 1e9,
            hashrate_ideal_ghs=sum(c.rate_ideal_ghs for c in chains), power_w=ph.input_power_w(),
            input_voltage_mv=self.p.input_voltage_mv, current_ma=1000.0, core_voltage_mv=ph.voltage_mv,
            core_voltage_actual_mv=ph.core_voltage_actual_mv(), frequency_mhz=float(ph.freq_mhz.mean()),
            chains=chains, chip_temp_c=max(c.chip_temp_c for c in chains),
            board_temp_c=max(c.board_temp_c for c in chains), vr_temp_c=ph.vr_temp_c(), ambient_c=25.0,
            fans=ph.fan_readings(), fan_auto=True, fan_target_pct=50.0, temp_target_c=self.p.temp_target_c,
            accepted=12, rejected=1, stale=0, hw_errors=3, best_share=4.29e9, difficulty_accepted=6144.0,
            pool_url=self._settings["pool_url"], pool_user=self._settings["pool_user"],
            pool_difficulty=512.0, pool_connected=True, last_share_time=None, paused=self.paused,
            booting=False, pending_restart=False, hash_scale=1e-6, mac="AA:BB:CC:DD:EE:FF", serial="X1")
