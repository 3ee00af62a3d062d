"""Clocks: scaled wall time and the virtual loop that jumps to the next event."""

from __future__ import annotations

import asyncio
import time

import pytest

from asic_reservoir.drivers.clock import Clock, VirtualTimeLoop, run_virtual


def test_clock_validation() -> None:
    with pytest.raises(ValueError):
        Clock(0.0)
    with pytest.raises(ValueError):
        Clock(10.0, is_virtual=True)
    assert Clock.virtual().is_virtual and Clock.virtual().origin_ns == 0


def test_virtual_clock_outside_a_virtual_loop_is_a_clear_error() -> None:
    async def main() -> None:
        Clock.virtual().now()

    with pytest.raises(RuntimeError, match="VirtualTimeLoop"):
        asyncio.run(main())


@pytest.mark.virtual_time
async def test_marked_tests_run_on_the_virtual_loop() -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    clock = Clock.virtual()
    t0 = clock.now()
    await clock.sleep(3600.0)
    assert clock.now() - t0 == pytest.approx(3600.0, abs=1e-9)
    assert loop.jumps >= 1


@pytest.mark.virtual_time
async def test_loopback_replies_land_before_time_moves() -> None:
    """A request written at t gets its reply at t: the loop never jumps with data in flight."""
    clock = Clock.virtual()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # a far timer is pending the whole time: a premature jump would land on it
    far = asyncio.ensure_future(asyncio.sleep(1e6))
    try:
        for k in range(1, 201):
            await clock.sleep_until(0.1 * k)
            sent = clock.now()
            writer.write(f"{k}\n".encode())
            assert await reader.readline() == f"{k}\n".encode()
            assert clock.now() == sent
        assert clock.now() == pytest.approx(20.0, abs=1e-9)
    finally:
        far.cancel()
        writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.virtual_time
async def test_time_stands_still_while_an_executor_job_runs() -> None:
    loop = asyncio.get_running_loop()
    clock = Clock.virtual()
    sleeper = asyncio.ensure_future(clock.sleep(500.0))
    t0 = clock.now()
    job = loop.run_in_executor(None, time.sleep, 0.05)     # real seconds, nothing else to do
    await asyncio.sleep(0)
    assert loop.in_flight == 1
    await job
    assert loop.in_flight == 0
    assert clock.now() == t0                  # the 500 s timer did not fire meanwhile
    assert not sleeper.done()
    await sleeper
    assert clock.now() == pytest.approx(t0 + 500.0)


def test_run_virtual_starts_at_zero_and_gives_a_fixed_calendar() -> None:
    async def main() -> tuple[float, float]:
        clock = Clock.virtual()
        await clock.sleep(10.0)
        return clock.now(), clock.unix_time()

    first, second = run_virtual(main()), run_virtual(main())
    assert first == second
    assert first[0] == pytest.approx(10.0)
