"""A minimal asyncio Stratum v1 client for tests: handshakes as ESP-Miner or bmminer/cgminer
would, tracks jobs with the difficulty that applies to each, and solves real shares by
brute force (pick a tiny difficulty such as 2**-20 so a share takes a few thousand hashes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass
from typing import Any

from asic_reservoir.drivers.stratum.work import (
    BIP320_MASK,
    Job,
    difficulty_to_target,
    hash_to_int,
    roll_version,
    roll_version_xor,
)

FLAVORS = ("esp-miner", "bmminer")


@dataclass
class ClientJob:
    job: Job
    difficulty: float        # difficulty in force when the notify arrived


@dataclass
class Share:
    """A solved share: submit parameters plus what the client computed."""

    job_id: str
    extranonce2: str
    ntime: int
    nonce: int
    version: int              # header version hashed
    version_bits: int | None  # 6th param, None for a 5-param submit
    digest: bytes

    def params(self, worker: str) -> list:
        p = [worker, self.job_id, self.extranonce2, f"{self.ntime:08x}", f"{self.nonce:08x}"]
        if self.version_bits is not None:
            p.append(f"{self.version_bits:08x}")
        return p


class StratumTestClient:
    """Speaks Stratum v1 over a real TCP socket. ``flavor`` picks the handshake style."""

    def __init__(self, host: str, port: int, algorithm: str = "sha256d", flavor: str = "bmminer",
                 lbry_factor: float = 256.0) -> None:
        if flavor not in FLAVORS:
            raise ValueError(flavor)
        self.host, self.port = host, port
        self.algorithm, self.flavor = algorithm, flavor
        self.factor = lbry_factor if algorithm == "lbry" else 1.0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self._task: asyncio.Task | None = None
        self.difficulty: float | None = None
        self.jobs: dict[str, ClientJob] = {}
        self.job: ClientJob | None = None
        self.job_event = asyncio.Event()
        self.notifications: list[dict] = []
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.version_mask = 0
        self.closed = asyncio.Event()
        self.worker = ""

    async def connect(self) -> StratumTestClient:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self._task = asyncio.create_task(self._read())
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> StratumTestClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                if msg.get("method"):
                    self._notification(msg)
                fut = self._pending.pop(msg.get("id"), None) if "result" in msg else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    def _notification(self, msg: dict) -> None:
        self.notifications.append(msg)
        method, params = msg["method"], msg.get("params")
        if method == "mining.set_difficulty":
            self.difficulty = float(params[0])
        elif method == "mining.notify":
            job = Job.from_notify(params, self.algorithm)
            self.jobs[job.job_id] = self.job = ClientJob(job, self.difficulty)
            self.job_event.set()
        elif method == "mining.set_extranonce":
            self.extranonce1 = bytes.fromhex(params[0])
            self.extranonce2_size = int(params[1])
        elif method == "mining.set_version_mask":
            self.version_mask = int(params[0], 16)
        elif method == "mining.ping" and msg.get("id") is not None:
            self.writer.write(json.dumps({"id": msg["id"], "result": "pong", "error": None}).encode() + b"\n")

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def call(self, method: str, params: list, timeout: float = 5.0) -> dict:
        """Send a request and return the whole response object."""
        msg_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self.send_raw(json.dumps({"id": msg_id, "method": method, "params": params}).encode() + b"\n")
        return await asyncio.wait_for(fut, timeout)

    async def handshake(self, worker: str = "test.worker", password: str = "x",
                        suggest: float | None = None, user_agent: str | None = None) -> None:
        """ESP-Miner: configure(mask ffffffff), subscribe, authorize, suggest_difficulty.
        bmminer/cgminer: subscribe, authorize (+ configure with the BIP320 mask first)."""
        self.worker = worker
        self.job_event.clear()
        if self.flavor == "esp-miner":
            reply = await self.call("mining.configure", [["version-rolling"], {
                "version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 16}])
            agent = user_agent or "bitaxe/BM1366/v2.4.0"
        else:
            reply = await self.call("mining.configure", [["version-rolling"], {
                "version-rolling.mask": f"{BIP320_MASK:08x}", "version-rolling.min-bit-count": 2}])
            agent = user_agent or "bmminer/2.0.0"
        result = reply["result"]
        if result.get("version-rolling"):
            self.version_mask = int(result["version-rolling.mask"], 16)
        reply = await self.call("mining.subscribe", [agent])
        _, en1, size = reply["result"]
        self.extranonce1, self.extranonce2_size = bytes.fromhex(en1), size
        reply = await self.call("mining.authorize", [worker, password])
        if reply["result"] is not True:
            raise PermissionError(reply)
        if suggest is not None:
            await self.call("mining.suggest_difficulty", [suggest])
        await asyncio.wait_for(self.job_event.wait(), 5.0)

    async def next_job(self, timeout: float = 5.0) -> ClientJob:
        self.job_event.clear()
        await asyncio.wait_for(self.job_event.wait(), timeout)
        return self.job

    def solve(self, cjob: ClientJob | None = None, extranonce2: bytes | None = None,
              roll: int = 0, five_params: bool = False, absolute: bool = False,
              difficulty: float | None = None, want_low: bool = False,
              max_hashes: int = 2_000_000) -> Share:
        """Search nonces for a share at the job's difficulty (or ``difficulty``).

        ``roll`` are version bits to flip inside the mask; the submitted form follows the
        flavor (ESP-Miner: XOR with the job version; bmminer: OR form, or the whole rolled
        version with ``absolute``). ``want_low`` finds a hash that *misses* the target.
        """
        cjob = cjob or self.job
        job = cjob.job
        target = difficulty_to_target(difficulty or cjob.difficulty, self.factor)
        en2 = extranonce2 if extranonce2 is not None else os.urandom(self.extranonce2_size)
        version, bits = job.version, None
        if not five_params:
            rolled_bits = roll & self.version_mask
            if self.flavor == "esp-miner":
                version = roll_version_xor(job.version, rolled_bits)
                bits = rolled_bits
            else:
                version = roll_version(job.version, rolled_bits, self.version_mask)
                bits = version if absolute else rolled_bits
        prefix = job.header_prefix(self.extranonce1, en2, job.ntime, version)
        pow_ = job.pow
        start = int.from_bytes(os.urandom(4), "little")
        for i in range(max_hashes):
            nonce = (start + i) & 0xFFFFFFFF
            digest = pow_(prefix + nonce.to_bytes(4, "little"))
            if (hash_to_int(digest) <= target) != want_low:
                return Share(job.job_id, en2.hex(), job.ntime, nonce, version, bits, digest)
        raise RuntimeError("no share found; difficulty too high for a test")

    async def submit(self, share: Share, worker: str | None = None) -> dict:
        return await self.call("mining.submit", share.params(worker or self.worker))
