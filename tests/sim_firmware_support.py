"""Helpers for the firmware-emulation tests: raw RPC over TCP and started units."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from tests.support import wait_until

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


# Pool share difficulty on the real-hardware scale, per model (multiplied by the unit's
# difficulty_scale so share statistics match a real unit): S9 at a typical pool value,
# LV06 at ESP-Miner's suggested 1000, LB-Box small so that a few LBRY shares arrive.
REAL_DIFFICULTY = {"s9": 1024.0, "lv06": 1000.0, "lbbox": 8.0}


@contextlib.asynccontextmanager
async def unit_on_pool(model: str, seed: int = 7, speed: float = 50.0, host: str = HOST,
                       rpc_port: int | None = None, http_port: int | None = None,
                       serial: bool = False, firmware: str | None = None) -> AsyncIterator:
    """(unit, pool): a started SimulatedUnit mining on a real loopback pool.

    Ports default to None (no servers of its own: the tests attach theirs); pass 0 or
    real ports to have the unit start its firmware servers itself. ``seed`` fixes the unit's
    identity, its sensor noise and the pool's jobs: on a virtual-time loop every run is the same.
    """
    from asic_reservoir.drivers.clock import Clock
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    from asic_reservoir.simulator import SimulatedUnit, UnitConfig

    clock = Clock.for_running_loop(speed)   # virtual on a VirtualTimeLoop (speed unused)
    lbry = model == "lbbox"
    async with Pool(PoolConfig(host=HOST, port=None if lbry else 0, lbry_port=0 if lbry else None,
                               refresh_s=None, seed=seed), clock=clock) as pool:
        url = pool.lbry_url if lbry else pool.url
        cfg = UnitConfig(model=model, seed=seed, host=host, pool_url=url, worker=f"{model}.sim",
                         password="x", speed=clock.speed, rpc_port=rpc_port, http_port=http_port,
                         serial=serial, firmware=firmware, noise_seed=seed)
        unit = SimulatedUnit(cfg, clock=clock)
        await pool.set_difficulty(REAL_DIFFICULTY[model] * unit.difficulty_scale)
        await unit.start()
        try:
            await wait_until(lambda: unit.reading().hashrate_ghs > 0, timeout=20)
            yield unit, pool
        finally:
            await unit.stop()


@contextlib.asynccontextmanager
async def running_unit(model: str, **kwargs: Any) -> AsyncIterator:
    """:func:`unit_on_pool`'s unit alone."""
    async with unit_on_pool(model, **kwargs) as (unit, _):
        yield unit
