"""``asic-reservoir pool`` as a real process: a test miner connects over TCP, submits genuine
and forged shares, and the JSON totals printed at the end account for every one."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

from stratum_client import StratumTestClient

DIFF = 2.0 ** -20


async def start_cli(*extra: str) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asic_reservoir", "pool", "--host", "127.0.0.1", "--port", "0",
        "--difficulty", repr(DIFF), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    ports: dict[str, int] = {}
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        assert line, "pool exited before listening"
        if line.startswith("pool listening:"):
            for port in re.findall(r"stratum\+tcp://127\.0\.0\.1:(\d+)", line):
                ports.setdefault("sha256d" if not ports else "lbry", int(port))
            return proc, ports


async def test_cli_runs_for_duration_and_prints_json_totals():
    proc, ports = await start_cli("--lbry-port", "0", "--duration", "6", "--json", "--branches", "2")
    try:
        async with StratumTestClient("127.0.0.1", ports["sha256d"]) as c:
            await c.handshake(worker="cpu.1")
            assert len(c.job.job.branches) == 2
            for _ in range(3):
                assert (await c.submit(c.solve()))["result"] is True
            assert (await c.submit(c.solve(want_low=True)))["error"][0] == 23
        async with StratumTestClient("127.0.0.1", ports["lbry"], algorithm="lbry") as c:
            await c.handshake(worker="lb.1")
            assert (await c.submit(c.solve()))["result"] is True
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    totals = json.loads(out)
    assert totals["accepted"] == 4 and totals["rejected"] == 1
    assert totals["rejected_by_reason"] == {"low difficulty share": 1}
    assert totals["sessions_total"] == 2 and totals["shares_per_s"] > 0


async def test_cli_stops_on_sigint_and_prints_text_totals():
    proc, ports = await start_cli()
    try:
        async with StratumTestClient("127.0.0.1", ports["sha256d"], flavor="esp-miner") as c:
            await c.handshake(worker="esp.1")
            assert (await c.submit(c.solve(roll=0x00002000)))["result"] is True
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert re.search(r"^accepted\s+1$", text, re.MULTILINE) and re.search(r"^rejected\s+0$", text, re.MULTILINE)


async def test_cli_rejects_bad_arguments_with_a_clear_message():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asic_reservoir", "pool", "--port", "0", "--difficulty", "-1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"difficulty" in err and out == b""
