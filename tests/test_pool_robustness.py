"""Bad input against a live pool over loopback TCP: every kind of garbage gets a Stratum
error or a closed connection, is logged, and never disturbs other sessions or the pool."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stratum_client import StratumTestClient

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum import OTHER, Pool, PoolConfig

DIFF = 2.0 ** -20
HOST = "127.0.0.1"


def pool_config(**kw) -> PoolConfig:
    return PoolConfig(host=HOST, difficulty=DIFF, refresh_s=None, **kw)


async def raw_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port)


async def read_reply(reader: asyncio.StreamReader) -> dict:
    return json.loads(await asyncio.wait_for(reader.readline(), 5))


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """Drain until EOF; True if the server closed the connection within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if not await reader.read(65536):
                    return True
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False


@pytest.fixture
async def pool():
    p = Pool(pool_config(max_protocol_errors=20))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def good(pool):
    c = await StratumTestClient(HOST, pool.port).connect()
    await c.handshake(worker="good")
    yield c
    await c.close()


async def assert_still_accepted(c: StratumTestClient) -> None:
    reply = await c.submit(c.solve())
    assert reply["result"] is True, reply


@pytest.mark.parametrize("line", [
    b"{not json",
    b"\xff\xfe\x00binary\x80",
    b"[1, 2, 3]",
    b'"a string"',
    b"42",
    b"null",
    b'{"id": [1], "method": "mining.subscribe", "params": []}',
    b'{"id": 1, "method": 7, "params": []}',
    b'{"id": 1, "method": "mining.subscribe", "params": "x"}',
    b'{"id": 1}',
    b"[" * 5000 + b"]" * 5000,
])
async def test_malformed_lines_get_error_20_and_the_connection_survives(pool, good, line):
    reader, writer = await raw_connection(pool.port)
    try:
        writer.write(line + b"\n")
        reply = await read_reply(reader)
        assert reply["error"][0] == OTHER and reply["result"] is None
        writer.write(b'{"id": 9, "method": "mining.ping", "params": []}\n')
        assert (await read_reply(reader)) == {"id": 9, "result": "pong", "error": None}
    finally:
        writer.close()
    await assert_still_accepted(good)


@pytest.mark.parametrize("method, params", [
    ("mining.nonsense", []),
    ("mining.authorize", []),
    ("mining.authorize", [17, "x"]),
    ("mining.authorize", ["w" * 300, "x"]),
    ("mining.configure", [{}]),
    ("mining.configure", [["version-rolling"], {"version-rolling.mask": "zz"}]),
    ("mining.configure", [["version-rolling"], {"version-rolling.mask": 5}]),
    ("mining.configure", [["minimum-difficulty"], {"minimum-difficulty.value": "big"}]),
    ("mining.subscribe", [5]),
    ("mining.suggest_difficulty", ["high"]),
    ("mining.suggest_difficulty", [-1]),
    ("mining.suggest_difficulty", [1e308 * 10]),
    ("mining.submit", "nope"),
    ("mining.submit", [1, 2, 3, 4, 5]),
    ("mining.submit", ["good", "1", "0000000", "00000000", "00000000"]),
    ("mining.submit", ["good", "1", "00000000", "0000 000", "00000000"]),
    ("mining.submit", ["good", "1", "00000000", "00000000", "00000000", "+0000000"]),
])
async def test_wrong_methods_and_params_get_error_20_with_their_id(pool, good, method, params):
    reader, writer = await raw_connection(pool.port)
    try:
        line = json.dumps({"id": "q1", "method": method, "params": params}).replace("Infinity", "1e999")
        writer.write(line.encode() + b"\n")
        reply = await read_reply(reader)
        assert reply["id"] == "q1" and reply["error"][0] == OTHER
    finally:
        writer.close()
    await assert_still_accepted(good)


@pytest.mark.parametrize("payload", [
    b"x" * 20000,                         # no newline at all
    b'{"id": 1, "method": "' + b"a" * 17000 + b'"}\n',
    b"ok\n" + b"y" * 70000 + b"\n",       # an oversized line inside a large chunk
])
async def test_oversized_lines_close_only_that_connection(pool, good, payload):
    reader, writer = await raw_connection(pool.port)
    try:
        writer.write(payload)
        assert await closed_by_peer(reader)
    finally:
        writer.close()
    await assert_still_accepted(good)


async def test_too_many_protocol_errors_close_the_connection(pool, good):
    reader, writer = await raw_connection(pool.port)
    writer.write(b"garbage\n" * 25)
    assert await closed_by_peer(reader)
    writer.close()
    await assert_still_accepted(good)


async def test_message_flood_is_capped_per_session():
    async with Pool(pool_config(max_messages_per_s=100, message_burst=200)) as p:
        good = await StratumTestClient(HOST, p.port).connect()
        await good.handshake(worker="good")
        reader, writer = await raw_connection(p.port)
        writer.write(b'{"id": 1, "method": "mining.ping", "params": []}\n' * 1000)
        assert await closed_by_peer(reader)
        writer.close()
        await assert_still_accepted(good)
        await good.close()


@pytest.mark.virtual_time
async def test_idle_and_handshake_timeouts_close_connections():
    # virtual time: the 0.3 s and 0.4 s timeouts are measured on the loop's clock, so a
    # loaded host cannot stretch them past the bounds below
    async with Pool(pool_config(idle_timeout_s=0.4, handshake_timeout_s=0.3),
                    clock=Clock.virtual()) as p:
        reader, writer = await raw_connection(p.port)     # never says anything
        c = await StratumTestClient(HOST, p.port).connect()
        await c.handshake(worker="talker")                 # handshakes, then goes quiet
        start = asyncio.get_running_loop().time()
        assert await closed_by_peer(reader, 3)
        await asyncio.wait_for(c.closed.wait(), 3)
        assert asyncio.get_running_loop().time() - start < 2.5
        writer.close()
        assert p.sessions == {}


async def test_peer_that_stops_reading_is_closed_without_blocking_others():
    """Half-open/slow socket: the pool's unsent output to it grows, the pool drops it."""
    async with Pool(pool_config(write_buffer_limit=64 * 1024, branches=32)) as p:
        good = await StratumTestClient(HOST, p.port).connect()
        await good.handshake(worker="good")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, p.port))
        hello = (b'{"id":1,"method":"mining.subscribe","params":[]}\n'
                 b'{"id":2,"method":"mining.authorize","params":["stuck","x"]}\n')
        await asyncio.get_running_loop().sock_sendall(sock, hello)
        info = await p.wait_for_session(worker="stuck", timeout=5)
        for _ in range(2000):                               # ~2.3 KB notify each, never read
            await p.push_job(clean=False, worker="stuck")
            if info.session_id not in p.sessions:
                break
            await asyncio.sleep(0)
        assert info.session_id not in p.sessions
        await assert_still_accepted(good)
        sock.close()
        await good.close()


async def test_abrupt_reset_mid_handshake_is_harmless(pool, good):
    for _ in range(5):
        sock = socket.socket()
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, pool.port))
        await asyncio.get_running_loop().sock_sendall(sock, b'{"id":1,"method":"mining.subscr')
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()                                         # RST
    await asyncio.sleep(0.1)
    await assert_still_accepted(good)
    assert list(pool.sessions.values())[0].worker == "good" and len(pool.sessions) == 1


# ---------------------------------------------------------------- hypothesis garbage

class ErrorLog(logging.Handler):
    """Collects ERROR records (an unexpected exception inside a session logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class LivePool:
    """A pool and one well-behaved miner on an event loop in a background thread, so
    synchronous hypothesis tests can hammer it with blocking sockets."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pool = Pool(pool_config(max_protocol_errors=10))
        self.run(self.pool.start())
        self.good = StratumTestClient(HOST, self.pool.port)
        self.run(self.good.connect())
        self.run(self.good.handshake(worker="good"))

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.good.close())
        self.run(self.pool.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def live():
    errors = ErrorLog()
    logging.getLogger("asic_reservoir.drivers.stratum").addHandler(errors)
    lp = LivePool()
    lp.errors = errors
    yield lp
    lp.close()
    logging.getLogger("asic_reservoir.drivers.stratum").removeHandler(errors)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
methods = st.sampled_from(["mining.submit", "mining.subscribe", "mining.authorize", "mining.configure",
                           "mining.suggest_difficulty", "mining.extranonce.subscribe", "mining.ping",
                           "client.reconnect", "mining.notify"]) | st.text(max_size=20)
hexish = st.text(alphabet="0123456789abcdefABCDEF xg", max_size=10)
submit_params = st.lists(st.one_of(hexish, json_values), min_size=0, max_size=7)
stratum_shaped = st.builds(
    lambda i, m, p: json.dumps({"id": i, "method": m, "params": p}).encode(),
    st.one_of(st.none(), st.integers(), st.text(max_size=5), json_values), methods,
    st.one_of(submit_params, json_values))
garbage_line = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    stratum_shaped,
).map(lambda b: b.replace(b"\n", b" "))


def exchange(port: int, lines: list[bytes]) -> tuple[list[dict], bool]:
    """Send garbage then a probe ping; return parsed replies and whether the probe answered."""
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"\n".join(lines) + b'\n{"id":"probe","method":"mining.ping","params":[]}\n')
        data = b""
        while b'"probe"' not in data:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionError):
                break
            if not chunk:
                break
            data += chunk
    replies = [json.loads(line) for line in data.splitlines() if line.strip()]
    return replies, any(r.get("id") == "probe" and r.get("result") == "pong" for r in replies)


@settings(max_examples=120)
@given(lines=st.lists(garbage_line, min_size=1, max_size=8))
def test_hypothesis_garbage_never_disturbs_a_well_behaved_session(live, lines):
    replies, probed = exchange(live.pool.port, lines)
    for reply in replies:                       # every answer is a well-formed Stratum message
        assert isinstance(reply, dict) and "id" in reply
        if reply.get("error") is not None:
            code = reply["error"][0]
            assert 20 <= code <= 25
    if not probed:                              # only a closed connection may swallow the probe
        assert live.pool.totals()["protocol_errors"] > 0
    assert not live.errors.records, live.errors.records[0].getMessage()
    reply = live.run(live.good.submit(live.good.solve()))
    assert reply["result"] is True, reply


async def test_accepted_sockets_use_tcp_keepalive(pool, good):
    (session,) = pool._sessions.values()
    sock = session.writer.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


async def test_concurrent_miners_churn_and_garbage_every_share_accounted():
    """20 miners submit concurrently while others connect, misbehave and vanish; the
    pool's totals and event stream account for every share exactly."""
    async with Pool(pool_config(max_protocol_errors=5)) as p:
        events = p.subscribe()
        miners = [await StratumTestClient(HOST, p.port, flavor=("esp-miner", "bmminer")[i % 2]).connect()
                  for i in range(20)]
        for i, m in enumerate(miners):
            await m.handshake(worker=f"m{i}")

        async def mine(m: StratumTestClient) -> int:
            ok = 0
            for k in range(5):
                reply = await m.submit(m.solve(roll=k << 13))
                ok += reply["result"] is True
            return ok

        async def churn() -> None:
            for k in range(10):
                c = await StratumTestClient(HOST, p.port).connect()
                if k % 2:
                    await c.send_raw(b"\x00garbage\n" * 10)
                else:
                    await c.handshake(worker=f"churn{k}")
                await c.close()

        results = await asyncio.gather(*(mine(m) for m in miners), churn())
        assert results[:20] == [5] * 20
        totals = p.totals()
        assert totals["accepted"] == 100 and totals["rejected"] == 0
        accepted = [events.get_nowait() for _ in range(events.qsize())]
        assert len(accepted) == 100 and all(e.accepted for e in accepted)
        assert {e.worker for e in accepted} == {f"m{i}" for i in range(20)}
        for m in miners:
            await m.close()
