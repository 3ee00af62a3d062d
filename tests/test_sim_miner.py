"""Simulated units' Stratum client and hashing engine, over real loopback TCP sockets.

A small recording pool defined here checks every share independently with
``asic_reservoir.drivers.stratum.work`` (header rebuilt from the job, extranonces and submitted fields).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import (BIP320_MASK, LBRY_DIFFICULTY_FACTOR, Job, chip_of_nonce,
                                 hash_to_int, nonce_slice, pow_hash, roll_version_xor,
                                 share_difficulty, version_bits_allowed)
from asic_reservoir.simulator.hashing import HashingEngine
from asic_reservoir.simulator.miner import FoundShare, MinerError, StratumMiner, parse_pool_url
from tests.support import wait_until

HOST = "127.0.0.1"


def make_job(job_id: str, algorithm: str = "sha256d", clean: bool = True,
             version: int = 0x20000000) -> Job:
    return Job(job_id, os.urandom(32), os.urandom(42), os.urandom(30),
               tuple(os.urandom(32) for _ in range(2)), version=version, nbits=0x1D00FFFF,
               ntime=0x65000000, clean_jobs=clean,
               claimtrie=os.urandom(32) if algorithm == "lbry" else None, algorithm=algorithm)


class RecordingPool:
    """Minimal Stratum pool: records every line, validates every share with work.py."""

    def __init__(self, algorithm: str = "sha256d", difficulty: float = 1e-6,
                 mask: int = BIP320_MASK, auto_job: bool = True, delay_subscribe: float = 0.0,
                 authorize: bool = True, port: int = 0) -> None:
        self.algorithm = algorithm
        self.factor = LBRY_DIFFICULTY_FACTOR if algorithm == "lbry" else 1.0
        self.difficulty = difficulty
        self.mask = mask
        self.auto_job = auto_job
        self.delay_subscribe = delay_subscribe
        self.authorize = authorize
        self.port = port
        self.lines: list[tuple[int, str]] = []           # (session number, raw line)
        self.connect_times: list[float] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.jobs: dict[str, tuple[Job, float]] = {}       # job id -> (job, difficulty)
        self.session_masks: list[int] = []
        self.accepted: list[dict] = []
        self.rejected: list[tuple[dict, str]] = []
        self.extranonce1 = [bytes.fromhex("0badc0de")]
        self.extranonce2_size = 4
        self._server: asyncio.base_events.Server | None = None
        self._job_no = 0
        self.authorized = asyncio.Event()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        self._server.close()
        for writer in self.writers:
            writer.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"stratum+tcp://{HOST}:{self.port}"

    def messages(self, session: int | None = None) -> list[dict]:
        return [json.loads(line) for s, line in self.lines if session in (None, s)]

    async def send(self, obj, session: int = -1) -> None:
        writer = self.writers[session]
        writer.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n")
        await writer.drain()

    async def push_job(self, clean: bool = True, session: int = -1,
                       version: int = 0x20000000) -> Job:
        self._job_no += 1
        job = make_job(f"j{self._job_no}", self.algorithm, clean, version)
        self.jobs[job.job_id] = (job, self.difficulty)
        await self.send({"id": None, "method": "mining.notify", "params": job.notify_params()},
                        session)
        return job

    async def set_difficulty(self, value: float, session: int = -1) -> None:
        self.difficulty = value
        await self.send({"id": None, "method": "mining.set_difficulty", "params": [value]},
                        session)

    async def _serve(self, reader, writer) -> None:
        session = len(self.writers)
        self.connect_times.append(asyncio.get_running_loop().time())
        self.writers.append(writer)
        self.session_masks.append(0)
        try:
            while line := await reader.readline():
                self.lines.append((session, line.decode().rstrip("\n")))
                await self._answer(session, json.loads(line))
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _answer(self, session: int, msg: dict) -> None:
        method, params, msg_id = msg.get("method"), msg.get("params"), msg.get("id")
        reply = None
        if method == "mining.configure":
            self.session_masks[session] = self.mask
            reply = {"version-rolling": True, "version-rolling.mask": f"{self.mask:08x}"}
        elif method == "mining.subscribe":
            await asyncio.sleep(self.delay_subscribe)
            reply = [[["mining.set_difficulty", "s1"], ["mining.notify", "s1"]],
                     self.extranonce1[-1].hex(), self.extranonce2_size]
        elif method == "mining.authorize":
            reply = self.authorize
        elif method == "mining.submit":
            ok, reason = self.validate(session, params)
            (self.accepted.append(params) if ok else self.rejected.append((params, reason)))
            error = None if ok else [21 if reason == "stale" else 23, reason, None]
            await self.send({"id": msg_id, "result": ok, "error": error}, session)
            return
        elif method is None:
            return
        await self.send({"id": msg_id, "result": reply, "error": None}, session)
        if method == "mining.authorize" and self.authorize:
            self.authorized.set()
            if self.auto_job:
                await self.set_difficulty(self.difficulty, session)
                await self.push_job(session=session)

    def validate(self, session: int, params: list) -> tuple[bool, str]:
        if params[1] not in self.jobs:
            return False, "stale"
        job, difficulty = self.jobs[params[1]]
        extranonce2 = bytes.fromhex(params[2])
        if len(extranonce2) != self.extranonce2_size:
            return False, "bad extranonce2 size"
        version = job.version
        if len(params) == 6:
            bits = int(params[5], 16)
            if not version_bits_allowed(bits, self.session_masks[session], job.version):
                return False, "version bits outside mask"
            version = roll_version_xor(job.version, bits)
        header = job.header(self.extranonce1[-1], extranonce2, int(params[3], 16),
                            int(params[4], 16), version)
        if share_difficulty(pow_hash(header, self.algorithm), self.factor) < difficulty:
            return False, "low difficulty"
        return True, ""


async def mine_until(miner: StratumMiner, n_submitted: int, budget: int = 2000,
                     timeout: float = 8.0) -> list[FoundShare]:
    """Drive mine() like a tick loop until ``n_submitted`` shares went out."""
    found: list[FoundShare] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while sum(s.submitted for s in found) < n_submitted:
        assert asyncio.get_running_loop().time() < deadline, "not enough shares in time"
        found += miner.mine([budget] * miner.n_chips)
        await asyncio.sleep(0)
    return found


def new_miner(pool: RecordingPool, flavor: str, n_chips: int = 4, **kw) -> StratumMiner:
    algorithm = "lbry" if flavor == "goldshell" else "sha256d"
    kw.setdefault("clock", Clock(speed=20.0))    # backoff runs in experiment seconds
    return StratumMiner(flavor=flavor, algorithm=algorithm, url=pool.url, worker="w.1",
                        password="x", n_chips=n_chips, **kw)


# --------------------------------------------------------------------------- wire format

async def test_esp_miner_handshake_and_xor_version_shares():
    pool = RecordingPool(difficulty=2e-6)
    await pool.start()
    miner = new_miner(pool, "esp-miner", n_chips=1, extranonce_subscribe=True)
    await miner.start()
    try:
        await wait_until(lambda: miner.connected and miner.job is not None)
        first = [line for _, line in pool.lines[:3]]
        assert first == [
            '{"id": 1, "method": "mining.configure", "params": [["version-rolling"], '
            '{"version-rolling.mask": "ffffffff"}]}',
            '{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1366/v2.4.1"]}',
            '{"id": 3, "method": "mining.authorize", "params": ["w.1", "x"]}',
        ]
        await wait_until(lambda: len(pool.lines) >= 5)
        assert [(m["method"], m["params"]) for m in pool.messages()[3:5]] == [
            ("mining.suggest_difficulty", [1000]), ("mining.extranonce.subscribe", [])]
        assert miner.version_mask == BIP320_MASK
        found = await mine_until(miner, 40, budget=3000)
        await wait_until(lambda: miner.accepted + miner.rejected >= 40)
        submits = [m["params"] for m in pool.messages() if m["method"] == "mining.submit"]
        assert all(len(p) == 6 for p in submits)
        bits = {int(p[5], 16) for p in submits}
        assert len(bits) > 1 and all(b & ~BIP320_MASK == 0 for b in bits)
        assert pool.rejected == [] and miner.rejected == 0
        assert miner.accepted == len(pool.accepted) >= 40
        assert all(s.version & ~BIP320_MASK == 0x20000000 for s in found)
    finally:
        await miner.stop()
        await pool.stop()


@pytest.mark.virtual_time   # the 0.1 s look falls inside the 0.2 s delay however loaded the host
async def test_bmminer_subscribes_waits_then_authorizes_and_submits_five_params():
    pool = RecordingPool(difficulty=2e-6, delay_subscribe=0.2)
    await pool.start()
    miner = new_miner(pool, "bmminer", n_chips=189)
    await miner.start()
    try:
        await wait_until(lambda: len(pool.lines) >= 1)
        await asyncio.sleep(0.1)                 # subscribe reply still delayed
        assert len(pool.lines) == 1
        await wait_until(lambda: miner.connected and miner.job is not None)
        assert pool.lines[0][1] == ('{"id": 0, "method": "mining.subscribe", '
                                    '"params": ["bmminer/2.0.0"]}')
        assert pool.lines[1][1] == '{"id": 1, "method": "mining.authorize", "params": ["w.1", "x"]}'
        found = await mine_until(miner, 30, budget=40)
        await wait_until(lambda: miner.accepted >= 30)
        submit = next(line for _, line in pool.lines if "mining.submit" in line)
        assert submit.startswith('{"params": ["w.1", "j1", "') and '"method": "mining.submit"}' in submit
        assert {m["method"] for m in pool.messages()[2:]} == {"mining.submit"}
        assert all(len(m["params"]) == 5 for m in pool.messages()[2:])
        assert pool.rejected == [] and miner.rejected == 0
        for share in found:                      # the chip can be read back from the nonce
            assert chip_of_nonce(share.nonce, 189) == share.chip
        assert len({s.chip for s in found}) > 10
    finally:
        await miner.stop()
        await pool.stop()


async def test_goldshell_lbry_compact_messages_and_valid_shares():
    pool = RecordingPool(algorithm="lbry", difficulty=2e-4)
    await pool.start()
    miner = new_miner(pool, "goldshell", n_chips=2)
    await miner.start()
    try:
        await wait_until(lambda: miner.connected and miner.job is not None)
        assert miner.job.algorithm == "lbry" and miner.job.claimtrie is not None
        assert pool.lines[0][1] == ('{"method":"mining.subscribe","id":0,'
                                    '"params":["cgminer/4.9.2"]}')
        await mine_until(miner, 15, budget=500)
        await wait_until(lambda: miner.accepted >= 15)
        assert pool.rejected == [] and miner.rejected == 0
        submit = next(line for _, line in pool.lines if "mining.submit" in line)
        assert submit.startswith('{"method":"mining.submit","id":')
    finally:
        await miner.stop()
        await pool.stop()


# --------------------------------------------------------------------------- behaviour

async def test_difficulty_applies_from_next_job_and_clean_jobs_switch():
    pool = RecordingPool(difficulty=1e-6)
    await pool.start()
    miner = new_miner(pool, "bmminer", n_chips=2)
    await miner.start()
    try:
        await wait_until(lambda: miner.job is not None and miner.connected)
        await pool.set_difficulty(4e-6)
        await wait_until(lambda: miner.next_difficulty == 4e-6)
        assert miner.difficulty == 1e-6
        before = await mine_until(miner, 5)
        assert {s.pool_difficulty for s in before if s.submitted} == {1e-6}
        job = await pool.push_job(clean=True)
        await wait_until(lambda: miner.job is not None and miner.job.job_id == job.job_id)
        assert miner.difficulty == 4e-6
        after = await mine_until(miner, 5)
        assert all(s.job_id == job.job_id and s.pool_difficulty == 4e-6 for s in after)
        assert all(s.difficulty >= 4e-6 for s in after if s.submitted)
        await wait_until(lambda: miner.accepted >= 10)
        assert pool.rejected == []
    finally:
        await miner.stop()
        await pool.stop()


async def test_chip_floor_reports_results_below_pool_difficulty():
    pool = RecordingPool(difficulty=5e-6)
    await pool.start()
    seen: list[FoundShare] = []
    miner = new_miner(pool, "esp-miner", n_chips=1, chip_floor_difficulty=5e-7,
                      on_share=seen.append)
    await miner.start()
    try:
        await wait_until(lambda: miner.job is not None and miner.connected)
        found = await mine_until(miner, 10, budget=5000)
        assert seen == found
        assert all(s.difficulty >= 5e-7 for s in found)
        assert any(not s.submitted for s in found)
        assert all(s.submitted == (s.difficulty >= 5e-6) for s in found)
        assert miner.best_share == max(s.difficulty for s in found)
        await wait_until(lambda: miner.accepted >= 10)
        assert pool.rejected == [] and miner.difficulty_accepted == pytest.approx(
            5e-6 * miner.accepted)
    finally:
        await miner.stop()
        await pool.stop()


async def test_client_reconnect_moves_to_other_port_and_esp_miner_stays():
    first, second = RecordingPool(), RecordingPool()
    await first.start()
    await second.start()
    bm = new_miner(first, "bmminer")
    esp = new_miner(first, "esp-miner")
    await bm.start()
    await esp.start()
    try:
        await wait_until(lambda: bm.connected and esp.connected)
        bm_session = next(i for i, _ in enumerate(first.writers)
                          if any(m.get("params") == ["bmminer/2.0.0"] for m in first.messages(i)))
        # cgminer only follows a reconnect within the same "domain" (host from its first dot)
        await first.send({"id": None, "method": "client.reconnect",
                          "params": ["127.0.0.2", second.port, 0]}, bm_session)
        await first.send({"id": None, "method": "mining.ping", "params": []}, bm_session)
        await wait_until(lambda: any(m.get("result") == "pong" for m in first.messages(bm_session)))
        assert bm.connected and bm.connections == 1 and bm.pool_url == first.url
        for session in range(2):
            await first.send({"id": None, "method": "client.reconnect",
                              "params": [HOST, second.port, 0]}, session)
        await wait_until(lambda: bm.pool_url == second.url and bm.connected)
        await wait_until(lambda: esp.connections == 2 and esp.connected)
        assert esp.pool_url == first.url
        assert len(second.writers) == 1 and len(first.writers) == 3
    finally:
        await bm.stop()
        await esp.stop()
        await first.stop()
        await second.stop()


@pytest.mark.virtual_time
async def test_client_reconnect_wait_parameter_delays_the_reconnection():
    pool = RecordingPool()
    await pool.start()
    miner = new_miner(pool, "esp-miner", clock=Clock.virtual())
    await miner.start()
    try:
        await wait_until(lambda: miner.connected)
        await pool.send({"id": None, "method": "client.reconnect", "params": ["", 0, 16]})
        await wait_until(lambda: not miner.connected)
        left = asyncio.get_running_loop().time()
        await wait_until(lambda: miner.connected, timeout=60.0)
        assert asyncio.get_running_loop().time() - left >= 16.0     # the wait it was told
        assert miner.connections == 2 and miner.pool_url == pool.url
    finally:
        await miner.stop()
        await pool.stop()


@pytest.mark.virtual_time
async def test_pool_restart_reconnects_with_backoff_and_drops_shares_meanwhile():
    pool = RecordingPool(difficulty=1e-6)
    port = await pool.start()
    miner = new_miner(pool, "esp-miner", backoff_base_s=2.0, backoff_cap_s=8.0,
                      clock=Clock.virtual())
    await miner.start()
    try:
        await wait_until(lambda: miner.connected and miner.job is not None)
        await pool.stop()
        await wait_until(lambda: not miner.connected)
        found = []
        while not any(s for s in found if not s.submitted):
            found += miner.mine([3000] * miner.n_chips)   # chips keep hashing the old job
        assert miner.dropped >= 1 and not any(s.submitted for s in found)
        await asyncio.sleep(10.0)                         # a few refused attempts
        pool = RecordingPool(difficulty=1e-6, port=port)
        await pool.start()
        await wait_until(lambda: miner.connected and miner.job is not None, timeout=30.0)
        await mine_until(miner, 3)
        await wait_until(lambda: len(pool.accepted) >= 3)
        assert pool.rejected == []
    finally:
        await miner.stop()
        await pool.stop()


async def test_garbage_from_pool_is_survived():
    pool = RecordingPool(difficulty=1e-6)
    await pool.start()
    miner = new_miner(pool, "bmminer")
    await miner.start()
    try:
        await wait_until(lambda: miner.connected and miner.job is not None)
        job = miner.job
        for junk in (b"not json at all\n", b"[1, 2, 3]\n", b"\xff\xfe\x00garbage\n",
                     b'{"id": null, "method": "mining.notify", "params": ["x", "zz"]}\n',
                     b'{"id": null, "method": "mining.set_difficulty", "params": ["high"]}\n',
                     b'{"id": null, "method": "mining.set_difficulty", "params": [-1]}\n',
                     b'{"id": null, "method": "mining.set_extranonce", "params": []}\n',
                     b'{"id": 99, "result": true, "error": null}\n',
                     b'{"id": null, "method": "mining.unknown_thing", "params": [1]}\n',
                     b"\n"):
            await pool.send(junk)
        await pool.send({"id": 7, "method": "mining.ping", "params": []})
        await wait_until(lambda: any(m.get("result") == "pong" for m in pool.messages()))
        assert miner.connected and miner.job is job and miner.garbage_lines == 7
        assert miner.next_difficulty == 1e-6
        await mine_until(miner, 3)
        await wait_until(lambda: miner.accepted >= 3)
        assert pool.rejected == [] and miner.connections == 1
    finally:
        await miner.stop()
        await pool.stop()


@pytest.mark.virtual_time
async def test_refused_authorization_backs_off_exponentially_up_to_the_cap():
    growing, capped = RecordingPool(authorize=False), RecordingPool(authorize=False)
    await growing.start()
    await capped.start()
    # virtual time: base 2 s, doubling; the capped one stays at 1-2 s
    miners = [new_miner(growing, "bmminer", backoff_base_s=2.0, backoff_cap_s=64.0,
                        clock=Clock.virtual()),
              new_miner(capped, "bmminer", backoff_base_s=2.0, backoff_cap_s=2.0,
                        clock=Clock.virtual())]
    waits: list[list[float]] = [[], []]          # the delays each miner asked for (experiment s)
    for miner, asked in zip(miners, waits):
        real_sleep = miner._sleep

        async def recording_sleep(seconds: float, real_sleep=real_sleep, asked=asked) -> None:
            asked.append(seconds)
            await real_sleep(seconds)
        miner._sleep = recording_sleep
        await miner.start()
    try:
        await wait_until(lambda: len(growing.connect_times) >= 5 and len(waits[1]) >= 5,
                         timeout=120.0)
        assert not miners[0].connected
        # the schedule, in experiment seconds: base x 2^(n-1), capped, jittered by 0.5..1
        for n, delay in enumerate(waits[0][:4], start=1):
            assert 0.5 * 2.0 * 2 ** (n - 1) <= delay <= 2.0 * 2 ** (n - 1)
        assert all(1.0 <= delay <= 2.0 for delay in waits[1])
        # and the miner really waits as long as it asked before each new attempt
        gaps = [b - a for a, b in zip(growing.connect_times, growing.connect_times[1:])]
        assert all(gap >= asked - 1e-6 for gap, asked in zip(gaps, waits[0])), (gaps, waits[0])
        assert all(len([m for m in growing.messages(i) if m["method"] == "mining.subscribe"]) == 1
                   for i in range(5))
    finally:
        for miner in miners:
            await miner.stop()
        await growing.stop()
        await capped.stop()


async def test_set_extranonce_and_stale_rejections_are_counted():
    pool = RecordingPool(difficulty=1e-6)
    await pool.start()
    miner = new_miner(pool, "esp-miner")
    await miner.start()
    try:
        await wait_until(lambda: miner.connected and miner.job is not None)
        pool.extranonce1.append(bytes.fromhex("00112233"))
        await pool.send({"id": None, "method": "mining.set_extranonce",
                         "params": ["00112233", 4]})
        await wait_until(lambda: miner.extranonce1 == bytes.fromhex("00112233"))
        await mine_until(miner, 3)
        await wait_until(lambda: miner.accepted >= 3)
        assert pool.rejected == []
        pool.jobs.clear()                          # the pool forgets the job: shares go stale
        await mine_until(miner, 2)
        await wait_until(lambda: miner.stale >= 2)
        assert miner.rejected == miner.stale
    finally:
        await miner.stop()
        await pool.stop()


async def test_set_pool_switches_and_paused_miner_hashes_nothing():
    first, second = RecordingPool(), RecordingPool()
    await first.start()
    await second.start()
    miner = new_miner(first, "bmminer")
    await miner.start()
    try:
        await wait_until(lambda: miner.connected)
        await miner.set_pool(second.url, "other.worker", "pw")
        await wait_until(lambda: miner.connected and miner.pool_url == second.url
                       and miner.job is not None)
        assert second.messages()[1]["params"] == ["other.worker", "pw"]
        miner.paused = True
        hashed = miner.hashes_done
        assert miner.mine([10000] * miner.n_chips) == [] and miner.hashes_done == hashed
        miner.inject_hw_errors(3)
        assert miner.hw_errors_injected == 3
    finally:
        await miner.stop()
        await first.stop()
        await second.stop()


def test_bad_configuration_is_refused():
    with pytest.raises(MinerError):
        StratumMiner(flavor="cgminer")
    with pytest.raises(MinerError):
        StratumMiner(url="http://127.0.0.1:80")
    with pytest.raises(MinerError):
        StratumMiner(url="stratum+tcp://127.0.0.1")
    with pytest.raises(MinerError):
        StratumMiner(chip_floor_difficulty=0)
    assert parse_pool_url("stratum+tcp://127.0.0.2:3334") == ("127.0.0.2", 3334)


# --------------------------------------------------------------------------- engine

def test_engine_rolls_extranonce2_when_a_slice_is_exhausted():
    n_chips = 1 << 20                               # 4096-nonce slices
    engine = HashingEngine(n_chips)
    job = make_job("e1")
    engine.set_work(job, b"\x01\x02\x03\x04", 4)
    budgets = [0] * n_chips
    budgets[5] = 4 * 4096                           # exactly four slice passes
    target = (1 << 256) - 1 >> 6                    # 1 in 64 hashes qualifies
    results = engine.search(budgets, target)
    assert {r.extranonce2 for r in results} == {bytes(4), (1).to_bytes(4, "little"),
                                                (2).to_bytes(4, "little"),
                                                (3).to_bytes(4, "little")}
    assert len({(r.extranonce2, r.nonce) for r in results}) == len(results)
    span = nonce_slice(5, n_chips)
    for r in results:
        assert r.nonce in span and r.chip == 5
        header = job.header(b"\x01\x02\x03\x04", r.extranonce2, r.ntime, r.nonce, r.version)
        assert pow_hash(header) == r.digest and hash_to_int(r.digest) <= target


@pytest.mark.parametrize("algorithm,roll", [("sha256d", False), ("sha256d", True), ("lbry", False)])
def test_engine_finds_exactly_the_results_asked_for_and_each_is_genuine(algorithm, roll):
    n_chips = 1 << 22                               # 1024-nonce slices: they run out
    engine = HashingEngine(n_chips, algorithm=algorithm, roll_versions=roll, version_chunk=64)
    job = make_job("f", algorithm=algorithm)
    engine.set_work(job, b"\x01\x02\x03\x04", 4, BIP320_MASK)
    wanted = [0] * n_chips
    wanted[7], wanted[9] = 40, 3
    target = (1 << 256) - 1 >> 4                    # 1 in 16 hashes qualifies
    seen = set()
    for _ in range(3):                              # the next call goes on where this one ended
        results = engine.find(wanted, target)
        assert [sum(r.chip == c for r in results) for c in (7, 9)] == [40, 3]
        for r in results:
            assert r.nonce in nonce_slice(r.chip, n_chips)
            header = job.header(b"\x01\x02\x03\x04", r.extranonce2, r.ntime, r.nonce, r.version)
            assert pow_hash(header, algorithm) == r.digest and hash_to_int(r.digest) <= target
            seen.add((r.chip, r.extranonce2, r.version, r.nonce))
    assert len(seen) == 3 * 43                      # never the same header twice
    assert len({(e, v) for _, e, v, _ in seen}) > 1   # moved on to a new version / extranonce2
    # ~16 hashes per result, counted: what the CPU pays is set by the target alone
    assert 8 * 3 * 43 < engine.hashes < 32 * 3 * 43


@given(mask=st.sampled_from([BIP320_MASK, 0x00006000, 0x1FFFE000 & 0x0F000000]),
       job_version=st.sampled_from([0x20000000, 0x20004000, 0x3FFFFFFF]),
       chunk=st.integers(1, 64))
def test_engine_version_rolling_gives_genuine_headers(mask, job_version, chunk):
    engine = HashingEngine(2, roll_versions=True, version_chunk=chunk)
    job = make_job("v", version=job_version)
    engine.set_work(job, b"\xaa" * 4, 2, mask)
    results = engine.search([300, 300], (1 << 256) - 1 >> 3)
    assert len({r.version for r in results}) > 1
    for r in results:
        assert r.version & ~mask & 0xFFFFFFFF == job_version & ~mask & 0xFFFFFFFF
        bits = r.version ^ job_version
        assert roll_version_xor(job_version, bits) == r.version
        assert version_bits_allowed(bits, mask, job_version)
        header = job.header(b"\xaa" * 4, r.extranonce2, r.ntime, r.nonce, r.version)
        assert pow_hash(header) == r.digest


def test_engine_lbry_matches_work_pow_and_rejects_bad_input():
    engine = HashingEngine(3, algorithm="lbry")
    job = make_job("l", algorithm="lbry")
    engine.set_work(job, b"\x00" * 4, 4)
    results = engine.search([60, 60, 60], (1 << 256) - 1 >> 2)
    assert results
    for r in results:
        header = job.header(b"\x00" * 4, r.extranonce2, r.ntime, r.nonce)
        assert len(header) == 112 and pow_hash(header, "lbry") == r.digest
    with pytest.raises(ValueError):
        engine.search([1, 2], 1)
    with pytest.raises(ValueError):
        HashingEngine(0)
    with pytest.raises(ValueError):
        engine.set_work(make_job("s"), b"", 4)


# --------------------------------------------------------------------------- robustness

_METHODS = ["mining.notify", "mining.set_difficulty", "mining.set_extranonce",
            "mining.set_version_mask", "client.reconnect", "mining.ping", "client.get_version",
            "client.show_message", "mining.whatever"]
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=10) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20)


@settings(max_examples=60)
@given(line=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda m, p, i: json.dumps({"id": i, "method": m, "params": p}).encode(),
              st.sampled_from(_METHODS), _json_values, _json_values),
    st.builds(lambda i, r, e: json.dumps({"id": i, "result": r, "error": e}).encode(),
              st.integers(-2, 40), _json_values, _json_values)))
def test_any_line_from_a_pool_is_survived(line):
    """Whatever a pool sends, handling it never raises: it is used, ignored or ends the session."""
    loop = asyncio.new_event_loop()
    try:
        for flavor, algorithm in (("bmminer", "sha256d"), ("esp-miner", "sha256d"),
                                  ("goldshell", "lbry")):
            miner = StratumMiner(flavor=flavor, algorithm=algorithm, n_chips=2,
                                 url="stratum+tcp://127.0.0.1:1")
            miner._outbox = asyncio.Queue(4)
            miner._established = loop.create_future()
            miner._start_handshake()             # replies pending for the handshake ids
            notify = {"id": None, "method": "mining.notify",
                      "params": make_job("ok", algorithm).notify_params()}
            assert miner._handle_line(json.dumps(notify).encode()) is None
            reason = miner._handle_line(line)
            assert reason is None or isinstance(reason, str)
            assert miner.job is not None
            miner.mine([20, 20])                 # still hashing whatever job it holds
    finally:
        loop.close()


@given(n_chips=st.integers(1, 7), budget=st.integers(1, 90), chunk=st.integers(1, 40),
       rolling=st.booleans())
def test_engine_finds_exactly_the_qualifying_nonces_it_hashed(n_chips, budget, chunk, rolling):
    """Nothing missed, nothing invented: compare with a brute-force walk of the same work."""
    job = make_job("x", version=0x20000000)
    en1, mask, target = b"\x05" * 4, 0x00018000, (1 << 256) - 1 >> 4
    engine = HashingEngine(n_chips, roll_versions=rolling, version_chunk=chunk)
    engine.set_work(job, en1, 4, mask)
    found = {(r.chip, r.nonce, r.version) for r in engine.search([budget] * n_chips, target)}
    expected = set()
    for chip in range(n_chips):
        start = nonce_slice(chip, n_chips).start
        walked = 0
        versions = [0x20000000 | bits for bits in (0, 0x8000, 0x10000, 0x18000)] if rolling \
            else [0x20000000]
        chunk_start = start
        while walked < budget:                   # chunk by chunk, every version per chunk
            for version in versions:
                for nonce in range(chunk_start, chunk_start + (chunk if rolling else budget)):
                    if walked == budget:
                        break
                    walked += 1
                    header = job.header(en1, bytes(4), job.ntime, nonce, version)
                    if hash_to_int(pow_hash(header)) <= target:
                        expected.add((chip, nonce, version))
            chunk_start += chunk
    assert found == expected
