"""The LV06's ESP32 console on a real pty, read with pyserial."""
from __future__ import annotations

import asyncio
import os

import serial

from asic_reservoir.simulator.firmware.serial_console import SerialConsole
from tests.sim_firmware_support import running_unit

LINE = "I (1234) asic_result: ID: 0x18, ASIC nr: 0, Core: 12/3, ver: 20000000 Nonce 1A2B3C4D diff 1234.5 of 1000."


async def _readline(port: serial.Serial, timeout: float = 10.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    buf = b""
    while b"\r\n" not in buf:
        chunk = port.read(port.in_waiting or 1)
        buf += chunk
        if not chunk:
            if loop.time() > deadline:
                raise AssertionError(f"no console line, got {buf!r}")
            await asyncio.sleep(0.02)
    return buf[:buf.index(b"\r\n") + 2]       # first complete line


async def test_console_lines_arrive_on_the_pty_with_crlf():
    async with running_unit("lv06") as unit:
        console = SerialConsole(unit)
        path = await console.start()
        try:
            assert path == console.path and os.path.exists(path)
            port = serial.Serial(path, 115200, timeout=0)
            try:
                await _readline(port)       # opening mid-stream may cut the first line, as on a UART
                line = await _readline(port)
                assert line.endswith(b"\r\n") and b"\r\n" not in line[:-2]
                assert line[:1] in b"IWEDV\x1b" and b") " in line
                port.write(b"help\r\n")                   # input is swallowed, nothing breaks
            finally:
                port.close()
        finally:
            await console.stop()


async def test_console_drops_whole_lines_when_nobody_reads():
    async with running_unit("lv06") as unit:
        console = SerialConsole(unit)
        await console.start()
        try:
            for _ in range(20000):                        # far beyond the pty buffer
                console._on_log(LINE)
            assert console.dropped_lines > 0
            port = serial.Serial(console.path, 115200, timeout=0)
            try:
                data = b""
                for _ in range(200):                      # drain what was kept
                    await asyncio.sleep(0.01)
                    chunk = port.read(65536)
                    data += chunk
                lines = data.split(b"\r\n")
                complete = lines[1:-1]                    # first: possibly cut by the open
                assert len(complete) > 5
                assert all(line == LINE.encode() or line.startswith(b"I (") for line in complete)
            finally:
                port.close()
        finally:
            await console.stop()
        console._on_log(LINE)                             # after stop: ignored, no error
