"""Pool: share validation through real sockets (100 sessions), 1,000 idle sessions' memory
and job-broadcast latency.

The pool runs in this process; the miners run in a separate process so that client work
does not count against the pool. Shares are genuine solutions at difficulty 2**-32 (a
target almost every hash meets, so the client can prepare 100k distinct shares cheaply);
the pool hashes and checks every one exactly as at any difficulty. "per pool CPU-second"
divides by this process's CPU time, which is the one-core figure on a shared machine.
Broadcast latency is from ``push_job`` to each client's receipt of the notify line (both
processes read the same system-wide CLOCK_MONOTONIC), so it includes the client's own
scheduling delay.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time

from asic_reservoir.drivers.stratum.work import Job, difficulty_to_target, hash_to_int, sha256d
from benchmarks import Figure, hashlib_dsha_rate, quick

HOST = "127.0.0.1"
SHARE_DIFF = 2.0 ** -32


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _handshake(port: int, worker: str) -> tuple:
    """Subscribe + authorize; returns (reader, writer, extranonce1, en2 size, first job)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b'{"id":1,"method":"mining.subscribe","params":["bench/1"]}\n'
                 b'{"id":2,"method":"mining.authorize","params":["%s","x"]}\n' % worker.encode())
    en1 = size = job = None
    while job is None:
        msg = json.loads(await reader.readline())
        if msg.get("id") == 1:
            _, en1_hex, size = msg["result"]
            en1 = bytes.fromhex(en1_hex)
        elif msg.get("method") == "mining.notify":
            job = Job.from_notify(msg["params"])
    return reader, writer, en1, size, job


def _shares(job: Job, en1: bytes, size: int, worker: str, n: int) -> list[bytes]:
    """``n`` distinct genuine shares (checked against the target) as submit lines."""
    target = difficulty_to_target(SHARE_DIFF)
    lines, nonce, en2_i = [], 0, 0
    while len(lines) < n:
        en2 = (en2_i % 4).to_bytes(size, "big")
        prefix = job.header_prefix(en1, en2, job.ntime)
        nonce += 1
        if nonce % 1000 == 0:
            en2_i += 1
        if hash_to_int(sha256d(prefix + nonce.to_bytes(4, "little"))) > target:
            continue
        lines.append(b'{"id":%d,"method":"mining.submit","params":["%s","%s","%s","%08x","%08x"]}\n'
                     % (len(lines) + 10, worker.encode(), job.job_id.encode(), en2.hex().encode(),
                        job.ntime, nonce))
    return lines


async def _blast_client(port: int, n_sessions: int, per_session: int, window: int, conn) -> None:
    sessions = [await _handshake(port, f"bench.{i}") for i in range(n_sessions)]
    work = [_shares(job, en1, size, f"bench.{i}", per_session)
            for i, (_, _, en1, size, job) in enumerate(sessions)]
    conn.send("ready")
    conn.recv()

    async def run(session, lines) -> int:
        reader, writer = session[0], session[1]
        accepted = 0
        for i in range(0, len(lines), window):
            batch = lines[i:i + window]
            writer.write(b"".join(batch))
            got = b""
            while got.count(b"\n") < len(batch):
                got += await reader.read(65536)
            accepted += got.count(b'"result":true')
        return accepted

    accepted = sum(await asyncio.gather(*(run(s, w) for s, w in zip(sessions, work))))
    for s in sessions:
        s[1].close()
    conn.send(accepted)


class _Watcher(asyncio.Protocol):
    """An idle miner that timestamps every notify the moment its bytes arrive."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.buf = b""
        self.seen: dict[str, int] = {}
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b'{"id":1,"method":"mining.subscribe","params":["idle/1"]}\n'
                        b'{"id":2,"method":"mining.authorize","params":["%s","x"]}\n'
                        % self.worker.encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            if b'"method":"mining.notify"' in line:
                self.seen.setdefault(json.loads(line)["params"][0], now)


async def _idle_client(port: int, n_sessions: int, broadcasts: int, conn) -> None:
    loop = asyncio.get_running_loop()
    watchers = []
    for i in range(n_sessions):
        _, w = await loop.create_connection(lambda i=i: _Watcher(f"idle.{i}"), HOST, port)
        watchers.append(w)
    while not all(w.seen for w in watchers):
        await asyncio.sleep(0.01)
    conn.send("ready")
    latencies: list[int] = []
    for _ in range(broadcasts):
        job_id, sent_ns = await _recv(conn)   # keep the loop free to timestamp arrivals
        while not all(job_id in w.seen for w in watchers):
            await asyncio.sleep(0.001)
        latencies += [w.seen[job_id] - sent_ns for w in watchers]
        conn.send("got")
    conn.send(latencies)
    await _recv(conn)
    for w in watchers:
        w.transport.close()


def _client_main(kind: str, args: tuple, conn) -> None:
    coro = _blast_client if kind == "blast" else _idle_client
    asyncio.run(coro(*args, conn))


async def _recv(conn):
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def _spawn(kind: str, args: tuple):
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_client_main, args=(kind, args, child), daemon=True)
    proc.start()
    return proc, parent


async def _throughput(n_sessions: int, per_session: int) -> tuple[float, float, int]:
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    async with Pool(PoolConfig(host=HOST, difficulty=SHARE_DIFF, refresh_s=None)) as pool:
        events = pool.subscribe()

        async def consume() -> None:
            while True:
                await events.get()

        consumer = asyncio.create_task(consume())
        proc, conn = _spawn("blast", (pool.port, n_sessions, per_session, 32))
        assert await _recv(conn) == "ready"
        before = pool.totals()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        conn.send("go")
        accepted = await _recv(conn)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        after = pool.totals()
        consumer.cancel()
        proc.join(10)
    n = after["accepted"] - before["accepted"]
    if n != accepted or after["rejected"] != before["rejected"]:
        raise RuntimeError(f"pool accepted {n}, client saw {accepted}; rejected {after['rejected']}")
    return n / wall, n / cpu, n


async def _idle(n_sessions: int, broadcasts: int) -> tuple[float, float, list[int], int, float]:
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    rss0 = _rss_mib()
    push_cpu: list[float] = []
    async with Pool(PoolConfig(host=HOST, difficulty=1.0, refresh_s=None)) as pool:
        proc, conn = _spawn("idle", (pool.port, n_sessions, broadcasts))
        assert await _recv(conn) == "ready"
        for _ in range(50):
            if len(pool.sessions) >= n_sessions:
                break
            await asyncio.sleep(0.1)
        held = len(pool.sessions)
        rss = _rss_mib()
        for _ in range(broadcasts):
            await asyncio.sleep(0.2)
            job_id = f"{pool._job_counter + 1:x}"   # the id push_job is about to use
            conn.send((job_id, time.monotonic_ns()))
            cpu0 = time.process_time()
            assert await pool.push_job(clean=False) == job_id
            push_cpu.append(time.process_time() - cpu0)
            assert await _recv(conn) == "got"
        latencies = await _recv(conn)
        conn.send("bye")
        proc.join(10)
    return rss0, rss, latencies, held, min(push_cpu)


def _validator_only_rate(seconds: float) -> float:
    """The check alone (no sockets, no JSON): header + dsha + bookkeeping per share."""
    from asic_reservoir.drivers.stratum.jobs import JobFactory, JobRegistry, make_sent_job
    from asic_reservoir.drivers.stratum.validation import ShareValidator
    job = JobFactory("sha256d", 8).build("1")
    en1 = b"\x00\x00\x00\x01"
    reg = JobRegistry()
    reg.add(make_sent_job(job, SHARE_DIFF, 1.0, en1, 0), True)
    validator = ShareValidator("sha256d", 1.0, 4, 0, 7200)
    ntime = f"{job.ntime:08x}"
    n, start = 0, time.perf_counter()
    workers = {"w"}
    while time.perf_counter() - start < seconds:
        for nonce in range(n, n + 2000):
            validator.check(["w", "1", "00000000", ntime, f"{nonce:08x}"], True, workers, reg,
                            0, False, SHARE_DIFF)
        n += 2000
    return n / (time.perf_counter() - start)


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


def run() -> list[Figure]:
    q = quick()
    reference = hashlib_dsha_rate(0.3 if q else 1.0)
    n_idle = 200 if q else 1000
    rss0, rss, latencies, held, push_cpu = asyncio.run(_idle(n_idle, 3 if q else 5))  # first: clean RSS
    _, _, single, _, _ = asyncio.run(_idle(1, 3 if q else 5))
    check_rate = _validator_only_rate(0.3 if q else 1.0)
    wall_rate, cpu_rate, n = asyncio.run(_throughput(100, 100 if q else 1000))
    note_load = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    note = f"{n} genuine shares, 100 sessions, 1 event subscriber, {note_load}"
    return [
        Figure("validator.check only (no I/O)", check_rate, "shares/s", "hashlib dsha", reference),
        Figure("shares via sockets, 100 sessions (wall)", wall_rate, "shares/s", "hashlib dsha",
               reference, note + "; target >= 20,000"),
        Figure("shares per pool CPU-second (one core)", cpu_rate, "shares/s", "hashlib dsha", reference,
               "target >= 20,000"),
        Figure(f"pool RSS holding {held} idle sessions", rss, "MiB", "RSS before pool", rss0,
               f"target < 200 MiB (pid {os.getpid()})"),
        Figure(f"broadcast latency p50 ({held} sessions)", _pct(latencies, 0.5), "ms",
               "1 session p50", _pct(single, 0.5)),
        Figure(f"broadcast latency p99 ({held} sessions)", _pct(latencies, 0.99), "ms",
               "1 session p99", _pct(single, 0.99), f"{len(latencies)} deliveries; {note_load}"),
        Figure("pool CPU per session per broadcast", push_cpu / held * 1e6, "us",
               "one dsha", 1e6 / reference, f"push_job to {held} sessions, best of the broadcasts"),
    ]


if __name__ == "__main__":
    for figure in run():
        print(figure.line())
