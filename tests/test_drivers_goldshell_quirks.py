"""The Goldshell client against the simulated LB-Box web backend with its burst quirk on:
more than ~15 requests/s crash the backend for a while. The client's token bucket is what
keeps it alive. (Racing-login 401s are tested deterministically in test_drivers_web.py.)
In virtual time: the bucket and the backend's crash window read the event loop's clock."""

from __future__ import annotations

import asyncio

import pytest

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.errors import UnitError
from asic_reservoir.drivers.goldshell import GoldshellClient
from asic_reservoir.simulator import SimulatedUnit, UnitConfig
from asic_reservoir.simulator.firmware.goldshell_web import GoldshellWebServer


async def _quirky_box(**server_options):
    unit = SimulatedUnit(UnitConfig(model="lbbox", seed=5, host="127.0.0.1",
                                    pool_url="stratum+tcp://127.0.0.1:9",
                                    rpc_port=None, http_port=None, noise_seed=5),
                          clock=Clock.virtual())
    await unit.start()
    server = GoldshellWebServer(unit, quirks=True, **server_options)
    port = await server.start("127.0.0.1", 0)
    return unit, server, port


@pytest.mark.virtual_time
async def test_rate_limited_client_never_crashes_the_backend():
    unit, server, port = await _quirky_box(token_race_p=0.0)
    try:
        async with GoldshellClient("127.0.0.1", port) as client:  # default 5 requests/s
            results = await asyncio.gather(*(client.setting() for _ in range(12)))
        assert all("powerplans" in r for r in results)
        assert server.crashes == 0
    finally:
        await server.stop()
        await unit.stop()


@pytest.mark.virtual_time
async def test_unlimited_burst_crashes_the_backend_and_errors_are_typed():
    unit, server, port = await _quirky_box(token_race_p=0.0)
    try:
        async with GoldshellClient("127.0.0.1", port, rate=1000.0, burst=1000, attempts=1,
                                   timeout=2.0) as client:
            results = await asyncio.gather(*(client.status() for _ in range(40)),
                                           return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert server.crashes >= 1 and failures
        assert all(isinstance(f, UnitError) for f in failures)  # typed, nothing else escapes
    finally:
        await server.stop()
        await unit.stop()
