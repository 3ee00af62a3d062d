"""Stratum v1 client of a simulated unit, speaking as its firmware does, plus genuine hashing.

Three dialects, read from the public firmware sources and re-written here:

``bmminer`` (Antminer S9; bmminer is a cgminer fork, ``util.c``/``cgminer.c``)
    One global request id counter starting at 0 and never reset. ``mining.subscribe``
    with user agent ``bmminer/2.0.0`` (plus the previous session id when resuming), wait
    for the reply, then ``mining.authorize`` and wait. Submits carry 5 params (stock
    bmminer only sends version bits after Bitmain's own ``mining.multi_version``
    extension, which BIP310 pools never send). Message text follows cgminer's sprintf
    formats, e.g. ``{"params": [...], "id": 7, "method": "mining.submit"}``.
    ``mining.set_difficulty`` takes effect from the next ``mining.notify``.
    ``client.reconnect`` may move the client to another host only within the same domain
    (cgminer's rule) and port.

``esp-miner`` (Lucky Miner LV06; ESP-Miner 2.x ``stratum_task.c``/``stratum_api.c``)
    Ids restart at 1 on every connection. ``mining.configure`` (version-rolling, mask
    ``ffffffff``), ``mining.subscribe`` (``bitaxe/BM1366/v2.4.1``) and ``mining.authorize``
    are written back to back without waiting; after the authorize reply it sends
    ``mining.suggest_difficulty`` (if configured) and ``mining.extranonce.subscribe`` (if
    enabled). Submits carry 6 params, the 6th being ``rolled_version ^ job_version``.
    ``client.reconnect`` reconnects to the configured pool (ESP-Miner ignores its params).
    ESP-Miner parses ``set_difficulty`` as an integer; the simulator keeps fractions because
    its difficulties are scaled by ``hash_scale`` (see ARCHITECTURE.md, Time).

``goldshell`` (Goldshell LB-Box, LBRY)
    The firmware is closed. Its RPC is cgminer's, so the sequence is cgminer's
    (subscribe, wait, authorize, wait, 5-param submits); message text is compact
    (``{"method":"mining.submit","id":7,"params":[...]}``) as captured from a Goldshell HS1
    in goldshellminer/HS1 issue #3. The user agent string is *unconfirmed*.
    Jobs are LBRY ``mining.notify`` with 10 params (claimtrie root).

Shared behaviour: all of them switch to the newest job on every ``mining.notify`` (with
``clean_jobs`` the old job is also dropped); ``mining.ping`` is answered with ``pong``;
unknown methods and undecodable lines are logged and ignored; the client reconnects with
capped, jittered exponential backoff (experiment seconds) when the pool goes away, refuses
the connection or refuses authorization. ``client.reconnect``'s optional third parameter
(seconds to wait) is honoured although the firmwares reconnect at once; pools only send it
to ask for a pause. Rejections count in ``rejected``; those with code 21 (job not found)
also in ``stale``.

Hashing is synchronous: :meth:`StratumMiner.mine` is called from the unit's tick loop (on
the event loop's thread) and never waits on the network; submissions are queued to a
writer task. Shares found while disconnected are dropped and counted (``dropped``), as real
firmware discards results for work it no longer holds; a new connection starts hashing
only when its first job arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import (LBRY_DIFFICULTY_FACTOR, Job, WorkError, difficulty_to_target,
                                 hash_to_int, share_difficulty)
from asic_reservoir.simulator.hashing import ChipResult, HashingEngine

log = logging.getLogger(__name__)

FLAVORS = ("bmminer", "esp-miner", "goldshell")

DEFAULT_USER_AGENTS = {
    "bmminer": "bmminer/2.0.0",          # PACKAGE/VERSION; S9 stats report BMMiner 2.0.0
    "esp-miner": "bitaxe/BM1366/v2.4.1",  # "bitaxe/<asic>/<firmware version>"
    "goldshell": "cgminer/4.9.2",        # unconfirmed: Goldshell's stratum client is closed
}

DEFAULT_SUGGESTED_DIFFICULTY = {
    "esp-miner": 1000,                   # CONFIG_STRATUM_DIFFICULTY default (Kconfig.projbuild)
}

ESP_MINER_VERSION_MASK_REQUEST = "ffffffff"
STALE_CODE = 21
HANDSHAKE_TIMEOUT_S = 60.0   # wall seconds; cgminer's DEFAULT_SOCKWAIT for the subscribe reply
MAX_LINE = 1 << 20        # longest line accepted from a pool (bytes)
OUTBOX_SIZE = 4096        # queued lines before new shares are dropped


class MinerError(ValueError):
    """Bad miner configuration (unknown flavor, malformed pool URL, ...)."""


@dataclass(slots=True)
class FoundShare:
    """A chip result: a nonce meeting the chip floor; ``submitted`` if it met the pool's.

    Not frozen, as :class:`~asic_reservoir.simulator.hashing.ChipResult` (one per result)."""

    chip: int
    nonce: int
    ntime: int
    version: int              # header version hashed (rolled for esp-miner)
    extranonce2: str          # hex, as submitted
    difficulty: float         # difficulty the hash achieves (pool units)
    pool_difficulty: float    # difficulty of the job it was found on
    submitted: bool
    job_id: str
    time: float               # clock seconds


def parse_pool_url(url: str) -> tuple[str, int]:
    """``stratum+tcp://host:port`` -> (host, port); raises :class:`MinerError`."""
    if not isinstance(url, str):
        raise MinerError(f"pool URL must be a string, got {type(url).__name__}")
    parts = urlsplit(url if "://" in url else "stratum+tcp://" + url)
    if parts.scheme not in ("stratum+tcp", "stratum", "tcp"):
        raise MinerError(f"unsupported pool URL scheme in {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise MinerError(f"bad port in pool URL {url!r}") from None
    if not parts.hostname or port is None:
        raise MinerError(f"pool URL needs host and port: {url!r}")
    return parts.hostname, port


class _Dialect:
    """How one firmware writes its messages."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.compact = flavor == "goldshell"

    def request(self, msg_id: int, method: str, params: list) -> str:
        if self.compact:
            return json.dumps({"method": method, "id": msg_id, "params": params},
                              separators=(",", ":")) + "\n"
        if method == "mining.submit" and self.flavor == "bmminer":
            return json.dumps({"params": params, "id": msg_id, "method": method}) + "\n"
        return json.dumps({"id": msg_id, "method": method, "params": params}) + "\n"

    def reply(self, msg_id, result) -> str:
        body = {"id": msg_id, "result": result, "error": None}
        if self.compact:
            return json.dumps(body, separators=(",", ":")) + "\n"
        return json.dumps(body) + "\n"


class _SessionEnded(Exception):
    """The connection is over (EOF, refusal, reconnect request)."""

    def __init__(self, reason: str, established: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.established = established


class StratumMiner:
    """Stratum v1 client + hashing engine of one simulated unit (see module doc)."""

    def __init__(self, flavor: str = "bmminer", algorithm: str = "sha256d",
                 url: str = "stratum+tcp://127.0.0.1:3333", worker: str = "sim",
                 password: str = "x", n_chips: int = 1, clock: Clock | None = None,
                 user_agent: str | None = None, chip_floor_difficulty: float | None = None,
                 on_share: Callable[[FoundShare], None] | None = None, *,
                 stored_pool: Callable[[], tuple[str, str, str] | None] | None = None,
                 suggest_difficulty: float | None = None, extranonce_subscribe: bool = False,
                 difficulty_factor: float | None = None, backoff_base_s: float = 1.0,
                 backoff_cap_s: float = 30.0, connect_timeout_s: float = 10.0,
                 jitter_seed: int | None = None) -> None:
        """See the module doc for the dialects. Keyword-only extras:

        ``suggest_difficulty``: sent after authorization; None = the firmware default
        (ESP-Miner 1000, cgminer-based none), 0 = never. Given in pool-difficulty units as
        the pool should see it, so a scaled unit passes ``1000 * hash_scale``.
        ``extranonce_subscribe``: send ``mining.extranonce.subscribe`` (off by default in
        both ESP-Miner and cgminer). ``difficulty_factor``: difficulty scale of the pool
        (LBRY 256, Bitcoin 1). ``backoff_*``: reconnect delays in experiment seconds;
        ``connect_timeout_s`` is wall time (a socket limit). ``jitter_seed``: seed of the
        backoff jitter (None: fresh entropy), so a virtual-time run can reconnect at the same
        moments every time. ``stored_pool``: asked before
        every connection attempt; a (url, worker, password) it returns replaces the pool
        (a firmware that reads its stored pool whenever it connects).
        """
        if flavor not in FLAVORS:
            raise MinerError(f"unknown flavor {flavor!r}; expected one of {FLAVORS}")
        if algorithm not in ("sha256d", "lbry"):
            raise MinerError(f"unknown algorithm {algorithm!r}")
        if chip_floor_difficulty is not None and not chip_floor_difficulty > 0:
            raise MinerError(f"chip_floor_difficulty must be > 0, got {chip_floor_difficulty!r}")
        if not 0 < backoff_base_s <= backoff_cap_s:
            raise MinerError("need 0 < backoff_base_s <= backoff_cap_s")
        self.flavor = flavor
        self.algorithm = algorithm
        self._host, self._port = parse_pool_url(url)
        self._worker = worker
        self._password = password
        self.n_chips = n_chips
        self.clock = clock or Clock()
        self.user_agent = user_agent or DEFAULT_USER_AGENTS[flavor]
        self.chip_floor_difficulty = chip_floor_difficulty
        self.on_share = on_share
        self.stored_pool = stored_pool
        self.suggest_difficulty = (DEFAULT_SUGGESTED_DIFFICULTY.get(flavor)
                                   if suggest_difficulty is None else suggest_difficulty)
        self.extranonce_subscribe = extranonce_subscribe
        self.difficulty_factor = (difficulty_factor if difficulty_factor is not None else
                                  LBRY_DIFFICULTY_FACTOR if algorithm == "lbry" else 1.0)
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.connect_timeout_s = connect_timeout_s
        self.paused = False

        self._dialect = _Dialect(flavor)
        self._engine = HashingEngine(n_chips, algorithm, roll_versions=flavor == "esp-miner")
        self._floor_target = (difficulty_to_target(chip_floor_difficulty, self.difficulty_factor)
                              if chip_floor_difficulty else None)
        self._rng = random.Random(jitter_seed)
        # session state
        self._next_id = 1 if flavor == "esp-miner" else 0   # cgminer: static counter from 0
        self._session_id: str | None = None
        self.extranonce1 = b""
        self.extranonce2_size = 4
        self.version_mask = 0
        self._next_difficulty = 1.0        # Stratum default until the pool says otherwise
        self._job_difficulty = 1.0
        self._pool_target = difficulty_to_target(1.0, self.difficulty_factor)
        self._pending: dict[int, Callable] = {}
        self._established: asyncio.Future | None = None
        self._submits: dict[int, FoundShare] = {}
        self._outbox: asyncio.Queue[str] | None = None
        self._connected = False
        self._writer: asyncio.StreamWriter | None = None
        self._run_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._reconnect_to: tuple[str, int, float] | None = None
        # counters
        self.accepted = 0
        self.rejected = 0                 # every rejected share, stale ones included
        self.stale = 0                    # rejected with code 21 (job not found)
        self.submitted = 0                # shares written to the pool (answered or not)
        self.dropped = 0                  # pool-grade shares found while disconnected
        self.difficulty_accepted = 0.0
        self.best_share = 0.0
        self.hw_errors_injected = 0
        self.garbage_lines = 0
        self.connections = 0
        self.last_share_time: float | None = None

    # ------------------------------------------------------------------ properties

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def difficulty(self) -> float:
        """Pool difficulty applied to the current job."""
        return self._job_difficulty

    @property
    def next_difficulty(self) -> float:
        """Latest ``mining.set_difficulty``; applies from the next job."""
        return self._next_difficulty

    @property
    def job(self) -> Job | None:
        return self._engine.job

    @property
    def pool_url(self) -> str:
        return f"stratum+tcp://{self._host}:{self._port}"

    @property
    def worker(self) -> str:
        return self._worker

    @property
    def hashes_done(self) -> int:
        return self._engine.hashes

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._run_task is None:
            self._stopping = False
            self._run_task = asyncio.create_task(self._run(), name=f"miner-{self._worker}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._connected = False

    async def set_pool(self, url: str, worker: str, password: str = "x") -> None:
        """Switch to another pool: drop the connection and connect there at once."""
        host, port = parse_pool_url(url)
        self._host, self._port, self._worker, self._password = host, port, worker, password
        self._session_id = None
        self._drop_connection()
        self._wake.set()

    def inject_hw_errors(self, n: int) -> None:
        """Count ``n`` hardware-error nonces (from physics); they are never submitted."""
        if n < 0:
            raise ValueError(f"hardware error count must be >= 0, got {n}")
        self.hw_errors_injected += int(n)

    # ------------------------------------------------------------------ hashing

    def mine(self, hashes_per_chip: Sequence[int]) -> list[FoundShare]:
        """Hash this tick's budget on every chip; submit pool-grade results; return chip results."""
        if self.paused or self._engine.job is None:
            return []
        return self._report(self._engine.search(hashes_per_chip, self._chip_target()))

    def mine_results(self, results_per_chip: Sequence[int]) -> list[FoundShare]:
        """Hash until chip c found ``results_per_chip[c]`` results at its floor; submit the
        pool-grade ones; return them all (the caller draws the counts: see the unit)."""
        if self.paused or self._engine.job is None:
            return []
        return self._report(self._engine.find(results_per_chip, self._chip_target()))

    def _chip_target(self) -> int:
        return self._floor_target if self._floor_target is not None else self._pool_target

    def _report(self, results: list[ChipResult]) -> list[FoundShare]:
        if not results:
            return []
        job = self._engine.job
        found = []
        now = self.clock.now()                          # one tick's results: one instant
        for result in results:
            achieved = share_difficulty(result.digest, self.difficulty_factor)
            pool_grade = (achieved >= self._job_difficulty
                          and hash_to_int(result.digest) <= self._pool_target)
            submit_id = self._submit(job, result) if pool_grade else None
            submitted = submit_id is not None
            if pool_grade and not submitted:
                self.dropped += 1
            share = FoundShare(result.chip, result.nonce, result.ntime, result.version,
                               result.extranonce2.hex(), achieved, self._job_difficulty,
                               submitted, job.job_id, now)
            if submitted:
                self._submits[submit_id] = share
            self.best_share = max(self.best_share, achieved)
            if self.on_share is not None:
                self.on_share(share)
            found.append(share)
        return found

    def _submit(self, job: Job, result: ChipResult) -> int | None:
        """Queue a share for the writer task; returns its request id, None if dropped."""
        if not self._connected or self._outbox is None:
            return None
        params = [self._worker, job.job_id, result.extranonce2.hex(), f"{result.ntime:08x}",
                  f"{result.nonce:08x}"]
        if self.flavor == "esp-miner":
            params.append(f"{(result.version ^ job.version) & 0xFFFFFFFF:08x}")
        msg_id = self._take_id()
        if not self._queue(self._dialect.request(msg_id, "mining.submit", params)):
            return None
        self.submitted += 1
        return msg_id

    def _take_id(self) -> int:
        msg_id = self._next_id
        self._next_id += 1
        return msg_id

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            stored = self.stored_pool() if self.stored_pool is not None else None
            if stored is not None:
                url, self._worker, self._password = stored
                self._host, self._port = parse_pool_url(url)
                self._session_id = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self._host, self._port, limit=MAX_LINE),
                    self.connect_timeout_s)
            except (OSError, asyncio.TimeoutError) as exc:
                failures += 1
                log.info("%s: cannot connect to %s:%s (%s)", self._worker, self._host,
                         self._port, exc or type(exc).__name__)
                await self._backoff(failures)
                continue
            self.connections += 1
            established = False
            try:
                await self._session(reader, writer)
            except _SessionEnded as exc:
                established = exc.established
                log.info("%s: connection to %s:%s ended: %s", self._worker, self._host,
                         self._port, exc.reason)
            except Exception:                 # a bug must cost a reconnect, never the miner
                log.exception("%s: session with %s:%s failed", self._worker, self._host,
                              self._port)
            finally:
                self._end_session(writer)
            if self._stopping:
                break
            if self._reconnect_to is not None:
                host, port, wait = self._reconnect_to
                self._reconnect_to = None
                self._host, self._port = host, port
                failures = 0
                if wait > 0:
                    await self._sleep(wait)
                continue
            if self._wake.is_set():          # set_pool: connect to the new pool right away
                failures = 0
                continue
            failures = 1 if established else failures + 1
            await self._backoff(failures)

    async def _backoff(self, failures: int) -> None:
        """Capped exponential backoff with jitter (experiment seconds)."""
        delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
        await self._sleep(delay * self._rng.uniform(0.5, 1.0))

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), self.clock.wall_seconds(seconds))
        except asyncio.TimeoutError:
            pass

    def _drop_connection(self) -> None:
        self._connected = False
        if self._writer is not None:
            self._writer.close()

    def _end_session(self, writer: asyncio.StreamWriter) -> None:
        self._connected = False
        self._writer = None
        self._outbox = None
        writer.close()
        self._pending.clear()
        lost = len(self._submits)
        if lost:
            log.info("%s: %d submitted shares lost without a reply", self._worker, lost)
        self._submits.clear()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handshake and serve one connection until it ends (raises :class:`_SessionEnded`)."""
        self._writer = writer
        self._outbox = asyncio.Queue(OUTBOX_SIZE)
        self._established = asyncio.get_running_loop().create_future()
        # The old job belongs to the old session (its extranonce1); a new one will come.
        self._engine.set_work(None)
        if self.flavor == "esp-miner":
            self._next_id = 1                 # ESP-Miner resets its ids per connection
        else:
            self._next_difficulty = 1.0       # cgminer resets sdiff on every subscribe
        tasks = [asyncio.create_task(self._read_loop(reader)),
                 asyncio.create_task(self._write_loop(writer))]
        try:
            self._start_handshake()
            done, _ = await asyncio.wait([self._established, *tasks],
                                         timeout=HANDSHAKE_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
            if not self._established.done():
                reason = next(iter(done)).result() if done else "handshake timed out"
                raise _SessionEnded(reason)
            log.info("%s: mining on %s:%s as %s", self._worker, self._host, self._port,
                     self.flavor)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            raise _SessionEnded(next(iter(done)).result(), established=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _send(self, method: str, params: list, on_reply=None) -> None:
        """Queue a request; ``on_reply(result, error)`` runs in the reader when it answers."""
        msg_id = self._take_id()
        if on_reply is not None:
            self._pending[msg_id] = on_reply
        self._queue(self._dialect.request(msg_id, method, params))

    def _queue(self, line: str) -> bool:
        """Send a line; False (logged) if the outbox is full.

        With nothing waiting before it (outbox empty, socket buffer flushed), the line goes
        straight to the socket: a share reaches the pool without a writer-task wake-up, in
        the loop iteration of the tick that found it. Otherwise the writer task sends it in
        order and waits for the socket to drain."""
        writer = self._writer
        if (writer is not None and self._outbox.empty() and not writer.transport.is_closing()
                and not writer.transport.get_write_buffer_size()):
            writer.write(line.encode())
            return True
        try:
            self._outbox.put_nowait(line)
        except asyncio.QueueFull:
            log.warning("%s: outbox full, dropping %s", self._worker, line[:80])
            return False
        return True

    def _start_handshake(self) -> None:
        authorize = ("mining.authorize", [self._worker, self._password], self._on_authorize)
        if self.flavor == "esp-miner":       # written back to back, replies handled as they come
            self._send("mining.configure", [["version-rolling"], {
                "version-rolling.mask": ESP_MINER_VERSION_MASK_REQUEST}], self._on_configure)
            self._send("mining.subscribe", [self.user_agent], self._on_subscribe)
            self._send(*authorize)
            return
        params = [self.user_agent]
        if self.flavor == "bmminer" and self._session_id:
            params.append(self._session_id)   # cgminer asks to resume its last session

        def subscribed(result, error) -> str | None:
            reason = self._on_subscribe(result, error)
            if reason is None:
                self._send(*authorize)        # cgminer authorizes only after the reply
            return reason

        self._send("mining.subscribe", params, subscribed)

    def _on_configure(self, result, error) -> None:
        mask = result.get("version-rolling.mask") if isinstance(result, dict) else None
        self.version_mask = 0
        if error is None and isinstance(mask, str) and result.get("version-rolling"):
            try:
                self.version_mask = int(mask, 16) & 0xFFFFFFFF
            except ValueError:
                log.warning("%s: bad version mask %r", self._worker, mask)
        else:
            log.info("%s: pool refused version rolling: %r %r", self._worker, result, error)
        self._restart_work()

    def _on_subscribe(self, result, error) -> str | None:
        try:
            if error is not None or not isinstance(result, list) or len(result) < 3:
                raise ValueError(f"subscribe refused: result={result!r} error={error!r}")
            extranonce1 = bytes.fromhex(result[1])
            size = result[2]
            low = 2 if self.flavor == "bmminer" else 0
            if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= 16:
                raise ValueError(f"bad extranonce2 size {size!r}")
        except (TypeError, ValueError) as exc:
            self._session_id = None
            return str(exc)
        self._session_id = _notify_subscription(result[0])
        self.extranonce1, self.extranonce2_size = extranonce1, size
        return None

    def _on_authorize(self, result, error) -> str | None:
        if result is not True or error is not None:
            return f"authorization refused: result={result!r} error={error!r}"
        self._connected = True
        if not self._established.done():
            self._established.set_result(True)
        if self.suggest_difficulty:
            self._send("mining.suggest_difficulty", [self.suggest_difficulty],
                       self._optional_reply("mining.suggest_difficulty"))
        if self.extranonce_subscribe:
            self._send("mining.extranonce.subscribe", [], self._optional_reply(
                "mining.extranonce.subscribe"))
        return None

    def _optional_reply(self, method: str) -> Callable[[Any, Any], None]:
        """The reply to a request the firmware goes on without: a refusal is logged, the
        session carries on (pools answer these with true, an error, or not at all)."""
        def on_reply(result: Any, error: Any) -> None:
            if error is not None or result is False:
                log.info("%s: pool declined %s: result=%r error=%r", self._worker, method,
                         result, error)
        return on_reply

    # ------------------------------------------------------------------ reading

    async def _write_loop(self, writer: asyncio.StreamWriter) -> str:
        outbox = self._outbox
        try:
            while True:
                line = await outbox.get()
                writer.write(line.encode())
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            return f"write failed: {exc}"

    async def _read_loop(self, reader: asyncio.StreamReader) -> str:
        while True:
            try:
                raw = await reader.readline()
            except (ConnectionError, OSError) as exc:
                return f"read failed: {exc}"
            except ValueError:             # line longer than MAX_LINE
                self.garbage_lines += 1
                return "pool sent an over-long line"
            if not raw:
                return "pool closed the connection"
            reason = self._handle_line(raw)
            if reason:
                return reason

    def _handle_line(self, raw: bytes) -> str | None:
        """Dispatch one line; returns a reason string when the session must end."""
        text = raw.strip()
        if not text:
            return None
        try:
            msg = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            msg = None
        if not isinstance(msg, dict):
            self.garbage_lines += 1
            log.warning("%s: ignoring garbage from pool: %r", self._worker, text[:200])
            return None
        method = msg.get("method")
        if isinstance(method, str):
            params = msg.get("params")
            try:
                return self._handle_method(method, params if isinstance(params, list) else [],
                                           msg.get("id"))
            except (WorkError, TypeError, ValueError, IndexError, KeyError) as exc:
                self.garbage_lines += 1
                log.warning("%s: bad %s from pool (%s): %r", self._worker, method, exc,
                            text[:200])
                return None
        msg_id = msg.get("id")
        if isinstance(msg_id, int) and not isinstance(msg_id, bool):
            on_reply = self._pending.pop(msg_id, None)
            if on_reply is not None:
                return on_reply(msg.get("result"), msg.get("error"))
            share = self._submits.pop(msg_id, None)
            if share is not None:
                self._on_submit_result(share, msg.get("result"), msg.get("error"))
                return None
        log.info("%s: unexpected message from pool: %r", self._worker, text[:200])
        return None

    def _on_submit_result(self, share: FoundShare, result, error) -> None:
        if result is True and error is None:
            self.accepted += 1
            self.difficulty_accepted += share.pool_difficulty
            self.last_share_time = self.clock.now()
            return
        self.rejected += 1
        code = error[0] if isinstance(error, list) and error else None
        if code == STALE_CODE:
            self.stale += 1
        log.info("%s: share %08x rejected: %r", self._worker, share.nonce, error)

    def _handle_method(self, method: str, params: list, msg_id) -> str | None:
        if method == "mining.notify":
            self._on_notify(params)
        elif method == "mining.set_difficulty":
            value = params[0]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or value == float("inf"):
                raise ValueError(f"difficulty must be a number > 0, got {value!r}")
            self._next_difficulty = float(value)
            log.info("%s: pool difficulty %g from the next job", self._worker, value)
        elif method == "mining.set_extranonce":
            extranonce1 = bytes.fromhex(params[0])
            size = params[1]
            if not isinstance(size, int) or not 0 <= size <= 16:
                raise ValueError(f"bad extranonce2 size {size!r}")
            self.extranonce1, self.extranonce2_size = extranonce1, size
            self._restart_work()
        elif method == "mining.set_version_mask":
            self.version_mask = int(params[0], 16) & 0xFFFFFFFF
            self._restart_work()
        elif method == "client.reconnect":
            return self._on_reconnect(params)
        elif method == "mining.ping":
            self._queue(self._dialect.reply(msg_id, "pong"))
        elif method == "client.get_version" and self.flavor != "esp-miner":
            self._queue(self._dialect.reply(msg_id, self.user_agent))
        elif method == "client.show_message":
            log.info("%s: pool message: %s", self._worker, params[0] if params else "")
        else:
            log.info("%s: ignoring unknown method %s", self._worker, method)
        return None

    def _on_notify(self, params: list) -> None:
        job = Job.from_notify(params, self.algorithm)
        # cgminer: a pending set_difficulty becomes the work difficulty at this notify.
        self._job_difficulty = self._next_difficulty
        self._pool_target = difficulty_to_target(self._job_difficulty, self.difficulty_factor)
        self._engine.set_work(job, self.extranonce1, self.extranonce2_size, self.version_mask)
        log.debug("%s: job %s (clean=%s) at difficulty %g", self._worker, job.job_id,
                  job.clean_jobs, self._job_difficulty)

    def _restart_work(self) -> None:
        job = self._engine.job
        if job is not None:
            self._engine.set_work(job, self.extranonce1, self.extranonce2_size, self.version_mask)

    def _on_reconnect(self, params: list) -> str | None:
        host, port, wait = self._host, self._port, 0.0
        if self.flavor != "esp-miner":
            if params and isinstance(params[0], str) and params[0]:
                if _domain(params[0]) != _domain(self._host):
                    log.warning("%s: denied reconnect to other domain %r", self._worker,
                                params[0])
                    return None
                host = params[0]
            if len(params) > 1 and params[1] not in (None, "", 0):
                port = int(params[1])
                if not 0 < port < 65536:
                    raise ValueError(f"bad reconnect port {params[1]!r}")
        if len(params) > 2 and isinstance(params[2], (int, float)) and params[2] > 0:
            wait = min(float(params[2]), 3600.0)
        self._reconnect_to = (host, port, wait)
        return "pool asked to reconnect"


def _notify_subscription(subscriptions) -> str | None:
    """Session id cgminer keeps for resuming: the id of the ``mining.notify`` subscription."""
    if not isinstance(subscriptions, list):
        return None
    if len(subscriptions) == 2 and subscriptions[0] == "mining.notify":
        subscriptions = [subscriptions]
    for item in subscriptions:
        if isinstance(item, list) and len(item) >= 2 and item[0] == "mining.notify" \
                and isinstance(item[1], str):
            return item[1]
    return None


def _domain(host: str) -> str:
    """cgminer's reconnect rule compares the host from its first dot on."""
    dot = host.find(".")
    return host[dot:] if dot >= 0 else host
