"""The pool: listeners, sessions, jobs and the share-event stream experiments consume.

One TCP listener per algorithm (``sha256d`` on ``port``, ``lbry`` on ``lbry_port``).
The pool decides every job a miner hashes: without an experiment attached it serves
default jobs refreshed every ``refresh_s`` (``clean_jobs`` false); experiments push
templates and set difficulties pool-wide, per worker or per session. Pool-wide settings
also become the default for sessions that connect later; per-worker settings follow a
worker across reconnects. A difficulty change sends ``mining.set_difficulty`` followed by
a new ``mining.notify``, and shares are judged against the difficulty in force when
their job was sent. Every share becomes a :class:`ShareEvent` fanned out to all
subscriber queues; a full queue drops the event for that subscriber only (counted and
logged), so a slow consumer never stalls the miners.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import Job

from .config import PoolConfig
from .jobs import JobFactory, JobTemplate, make_sent_job
from .protocol import encode_notification
from .session import Session, SessionInfo
from .validation import ShareValidator, Verdict

log = logging.getLogger(__name__)

@dataclass
class Listener:
    """One algorithm's socket, defaults and current job."""

    algorithm: str
    factor: float
    difficulty: float
    validator: ShareValidator
    factory: JobFactory
    requested_port: int
    template: JobTemplate | None = None
    current: Job | None = None
    server: asyncio.AbstractServer | None = None
    port: int | None = None


@dataclass
class PoolStats:
    started_ns: int = 0                 # on the pool's clock
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)           # reason -> n
    rejected_codes: Counter = field(default_factory=Counter)     # code -> n
    block_candidates: int = 0
    sessions_total: int = 0
    protocol_errors: int = 0
    dropped_events: int = 0


SessionRef = Union[str, SessionInfo, None]
"""A session id, a SessionInfo, or None (all sessions)."""


def _keepalive(sock: socket.socket | None) -> None:
    """TCP keepalive (60 s idle, 5 probes 10 s apart) so vanished peers are noticed."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 5)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    except OSError as exc:
        log.debug("pool: cannot set TCP keepalive: %s", exc)


class Pool:
    """Stratum v1 pool for experiments; see the module docstring. Use ``async with``."""

    def __init__(self, config: PoolConfig | None = None, clock: Clock | None = None) -> None:
        self.config = config or PoolConfig()
        self.clock = clock or Clock()
        cfg = self.config
        en_size = cfg.extranonce1_size + cfg.extranonce2_size
        self._listeners: dict[str, Listener] = {}
        specs = [("sha256d", cfg.port, 1.0, cfg.difficulty),
                 ("lbry", cfg.lbry_port, cfg.lbry_difficulty_factor,
                  cfg.lbry_difficulty if cfg.lbry_difficulty is not None else cfg.difficulty)]
        for i, (alg, port, factor, difficulty) in enumerate(specs):
            if port is None:
                continue
            seed = None if cfg.seed is None else cfg.seed * 2 + i
            self._listeners[alg] = Listener(
                alg, factor, float(difficulty),
                ShareValidator(alg, factor, cfg.extranonce2_size, cfg.ntime_past_s, cfg.ntime_future_s),
                JobFactory(alg, en_size, cfg.branches, seed, self.clock.unix_time), port)
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task] = set()
        self._background: list[asyncio.Task] = []
        self._subscribers: list[asyncio.Queue] = []
        self._waiters: list[tuple] = []
        self._chips: dict[str, int] = {}
        self._worker_difficulty: dict[str, float] = {}
        self._worker_templates: dict[str, JobTemplate] = {}
        self._stats = PoolStats()
        self._rng = random.Random(cfg.seed)
        self._en1_next = self._rng.getrandbits(8 * cfg.extranonce1_size)
        self._en1_live: set[bytes] = set()
        self._session_counter = 0
        self._job_counter = 0
        self._request_counter = 1 << 20
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("pool already started")
        self._started = True
        self._stats = PoolStats(started_ns=self.clock.now_ns())
        try:
            for listener in self._listeners.values():
                listener.current = listener.factory.build(self._next_job_id(), listener.template)
                listener.server = await asyncio.start_server(
                    lambda r, w, lst=listener: self._accept(lst, r, w),
                    self.config.host, listener.requested_port,
                    limit=self.config.max_line_bytes * 2)
                listener.port = listener.server.sockets[0].getsockname()[1]
                log.info("pool: %s listening on %s:%d (difficulty %g)", listener.algorithm,
                         self.config.host, listener.port, listener.difficulty)
        except BaseException:
            await self.stop()
            raise
        self._background.append(asyncio.create_task(self._housekeeping()))
        if self.config.refresh_s:
            self._background.append(asyncio.create_task(self._refresh_loop()))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for listener in self._listeners.values():
            if listener.server is not None:
                listener.server.close()
        for session in list(self._sessions.values()):
            session.close()
        tasks = list(self._tasks) + self._background
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._background.clear()
        for listener in self._listeners.values():
            if listener.server is not None:
                await listener.server.wait_closed()
                listener.server = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()

    async def __aenter__(self) -> Pool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int | None:
        listener = self._listeners.get("sha256d")
        return listener.port if listener else None

    @property
    def lbry_port(self) -> int | None:
        listener = self._listeners.get("lbry")
        return listener.port if listener else None

    def _url(self, port: int | None) -> str | None:
        return None if port is None else f"stratum+tcp://{self.config.host}:{port}"

    @property
    def url(self) -> str | None:
        return self._url(self.port)

    @property
    def lbry_url(self) -> str | None:
        return self._url(self.lbry_port)

    @property
    def sessions(self) -> dict[str, SessionInfo]:
        return {sid: s.info for sid, s in self._sessions.items()}

    def difficulty(self, algorithm: str = "sha256d") -> float:
        """Default difficulty for new sessions of ``algorithm``."""
        return self._listener(algorithm).difficulty

    def current_job(self, algorithm: str = "sha256d") -> Job | None:
        """The pool-wide job most recently sent on ``algorithm``'s listener."""
        return self._listener(algorithm).current

    def _listener(self, algorithm: str) -> Listener:
        try:
            return self._listeners[algorithm]
        except KeyError:
            raise ValueError(f"no {algorithm!r} listener (enabled: {sorted(self._listeners)})") from None

    # ------------------------------------------------------------------ experiment API

    async def set_difficulty(self, difficulty: float, session: SessionRef = None,
                             worker: str | None = None, clean: bool = True,
                             algorithm: str | None = None) -> None:
        """Set the share difficulty; sends ``set_difficulty`` then a new job to each target.

        ``session``/``worker`` None: every session and the default for future sessions
        (restricted to one listener with ``algorithm``). A ``worker`` setting also applies
        to that worker's future sessions.
        """
        if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float)) \
                or not math.isfinite(difficulty) or difficulty <= 0:
            raise ValueError(f"difficulty must be a finite number > 0, got {difficulty!r}")
        difficulty = float(difficulty)
        targets = self._select(session, worker, algorithm)
        if session is None and worker is None:
            for listener in self._listeners.values():
                if algorithm is None or listener.algorithm == algorithm:
                    listener.difficulty = difficulty
        elif session is None:
            self._worker_difficulty[worker] = difficulty
        ready = [s for s in targets if s.info.ready]
        for s in targets:
            if s.info.ready:
                s.send_difficulty(difficulty)
            else:
                s.info.difficulty = difficulty
        self._send_jobs(ready, clean, self._next_job_id())

    async def push_job(self, template: JobTemplate | None = None, session: SessionRef = None,
                       worker: str | None = None, clean: bool = True) -> str:
        """Send a job built from ``template`` (unset fields from the default generator).

        Pool-wide (no session/worker): becomes every listener's job (or
        ``template.algorithm``'s), replaces per-session/per-worker templates, and is kept
        for future sessions and refreshes. Returns the job id.
        """
        template = template or JobTemplate()
        if template.algorithm is not None:
            self._listener(template.algorithm)
        job_id = self._next_job_id()
        algorithm = template.algorithm
        if session is None and worker is None:
            for listener in self._listeners.values():
                if algorithm is None or listener.algorithm == algorithm:
                    listener.template = template
            self._worker_templates.clear()
            targets = self._select(None, None, algorithm)
            for s in targets:
                s.template = None
            self._send_jobs([s for s in targets if s.info.ready], clean, job_id, pool_wide=True,
                            algorithms=[algorithm] if algorithm else list(self._listeners))
            return job_id
        targets = self._select(session, worker, algorithm)
        if session is None:
            self._worker_templates[worker] = template
        for s in targets:
            s.template = template
        self._send_jobs([s for s in targets if s.info.ready], clean, job_id)
        return job_id

    def set_chip_count(self, worker: str, n_chips: int | None) -> None:
        """Derive ``ShareEvent.chip`` from nonces of ``worker`` (contiguous nonce slices)."""
        if n_chips is None:
            self._chips.pop(worker, None)
            return
        if isinstance(n_chips, bool) or not isinstance(n_chips, int) or n_chips < 1:
            raise ValueError(f"chip count must be a positive integer, got {n_chips!r}")
        self._chips[worker] = n_chips

    def subscribe(self, maxsize: int | None = None) -> asyncio.Queue:
        """A queue receiving every :class:`ShareEvent` from now on (bounded; overflow drops)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize or self.config.event_queue_size)
        queue.dropped = 0  # type: ignore[attr-defined]
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        try:
            self._subscribers.remove(queue)
        except ValueError:
            pass

    def totals(self) -> dict:
        """Accepted, rejected by reason (and code), sessions and shares/s since start."""
        st = self._stats
        elapsed = max(self.clock.wall_seconds((self.clock.now_ns() - st.started_ns) * 1e-9), 1e-9)
        rejected = sum(st.rejected.values())
        return {
            "accepted": st.accepted,
            "rejected": rejected,
            "rejected_by_reason": dict(st.rejected),
            "rejected_by_code": {str(code): n for code, n in sorted(st.rejected_codes.items())},
            "block_candidates": st.block_candidates,
            "sessions": len(self._sessions),
            "sessions_total": st.sessions_total,
            "duration_s": round(elapsed, 3),
            "shares_per_s": (st.accepted + rejected) / elapsed,
            "protocol_errors": st.protocol_errors,
            "dropped_events": st.dropped_events,
        }

    async def wait_for_session(self, worker: str | None = None, timeout: float | None = 10.0,
                               algorithm: str | None = None) -> SessionInfo:
        """Wait until a session (of ``worker``/``algorithm`` if given) is subscribed and
        authorized; returns its :class:`SessionInfo`. Raises ``TimeoutError``."""
        def match(s: Session) -> bool:
            return (s.info.ready and not s.closing and (worker is None or worker in s.workers)
                    and (algorithm is None or s.info.algorithm == algorithm))

        for s in self._sessions.values():
            if match(s):
                return s.info
        fut = asyncio.get_running_loop().create_future()
        entry = (match, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.remove(entry)

    async def ping(self, session: SessionRef, timeout: float = 5.0) -> float:
        """Send ``mining.ping`` to one session and return the round-trip time in seconds."""
        if session is None:
            raise ValueError("ping needs a session")
        (s,) = self._select(session, None, None)
        start = time.perf_counter()
        await s.request("mining.ping", [], timeout)
        return time.perf_counter() - start

    async def reconnect(self, session: SessionRef = None, worker: str | None = None,
                        host: str | None = None, port: int | None = None, wait_s: int = 0) -> int:
        """Ask miners to reconnect (``client.reconnect``), to us or to ``host:port``."""
        params = [] if host is None else [host, port if port is not None else 0, wait_s]
        targets = self._select(session, worker, None)
        for s in targets:
            s.send(encode_notification("client.reconnect", params))
        return len(targets)

    async def show_message(self, text: str, session: SessionRef = None,
                           worker: str | None = None) -> int:
        targets = self._select(session, worker, None)
        for s in targets:
            s.send(encode_notification("client.show_message", [str(text)]))
        return len(targets)

    async def set_extranonce(self, session: SessionRef = None, worker: str | None = None) -> int:
        """Give sessions that subscribed to extranonce changes a fresh extranonce1, then a
        clean job (the new extranonce applies from the next notify). Returns how many."""
        targets = [s for s in self._select(session, worker, None)
                   if s.extranonce_subscribed and s.info.ready]
        for s in targets:
            self._en1_live.discard(s.extranonce1)
            s.set_extranonce1(self._new_extranonce1())
        self._send_jobs(targets, True, self._next_job_id())
        return len(targets)

    async def set_version_mask(self, mask: int, session: SessionRef = None,
                               worker: str | None = None) -> int:
        """Change the rolling mask of sessions that negotiated version rolling."""
        if not 0 <= mask <= 0xFFFFFFFF:
            raise ValueError("mask must be a uint32")
        targets = [s for s in self._select(session, worker, None) if s.requested_mask is not None]
        for s in targets:
            s.set_version_mask(mask & self.config.version_mask)
        return len(targets)

    async def disconnect(self, session: SessionRef = None, worker: str | None = None) -> int:
        targets = self._select(session, worker, None)
        for s in targets:
            s.close()
        return len(targets)

    # ------------------------------------------------------------------ internals

    def _select(self, session: SessionRef, worker: str | None,
                algorithm: str | None) -> list[Session]:
        if session is not None:
            sid = session.session_id if isinstance(session, SessionInfo) else session
            s = self._sessions.get(sid)
            if s is None:
                raise KeyError(f"no session {sid!r}")
            targets = [s]
        else:
            targets = list(self._sessions.values())
        if worker is not None:
            targets = [s for s in targets if worker in s.workers]
        if algorithm is not None:
            self._listener(algorithm)
            targets = [s for s in targets if s.info.algorithm == algorithm]
        return [s for s in targets if not s.closing]

    def _next_job_id(self) -> str:
        self._job_counter += 1
        return f"{self._job_counter:x}"

    def next_request_id(self) -> int:
        self._request_counter += 1
        return self._request_counter

    def _new_extranonce1(self) -> bytes:
        size = self.config.extranonce1_size
        while True:
            value = self._en1_next
            self._en1_next = (self._en1_next + 1) % (1 << (8 * size))
            en1 = value.to_bytes(size, "big")
            if en1 not in self._en1_live:
                self._en1_live.add(en1)
                return en1

    def authorized(self, worker: str, password: object) -> bool:
        cfg = self.config
        if cfg.workers is not None and worker not in cfg.workers:
            return False
        return cfg.password is None or password == cfg.password

    async def _accept(self, listener: Listener, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if len(self._sessions) >= self.config.max_sessions:
            log.warning("pool: %d sessions open; refusing %s", len(self._sessions),
                        writer.get_extra_info("peername"))
            writer.transport.abort()
            return
        _keepalive(writer.get_extra_info("socket"))
        self._session_counter += 1
        session = Session(self, self.config, listener, reader, writer, f"{self._session_counter:08x}",
                          self._new_extranonce1())
        self._sessions[session.session_id] = session
        self._stats.sessions_total += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        log.info("%r: connected", session)
        try:
            await session.run()
        finally:
            if task is not None:
                self._tasks.discard(task)

    # ------------------------------------------------------------------ SessionHost
    # (the narrow interface sessions call back through; see session.SessionHost)

    def stamp_ns(self) -> int:
        return self.clock.base_ns()

    def session_protocol_error(self) -> None:
        self._stats.protocol_errors += 1

    def session_closed(self, session: Session) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            self._en1_live.discard(session.extranonce1)
            log.info("%r: closed (accepted %d, rejected %d)", session, session.info.accepted,
                     session.info.rejected)

    def session_ready(self, session: Session) -> None:
        """Subscribed and authorized: send the difficulty and a first, clean job."""
        info = session.info
        listener = session.listener
        difficulty = self._worker_difficulty.get(info.worker, listener.difficulty)
        if self.config.honor_suggested_difficulty and info.suggested_difficulty is not None:
            difficulty = info.suggested_difficulty
        template = self._worker_templates.get(info.worker)
        if template is not None and template.algorithm not in (None, info.algorithm):
            template = None
        session.template = template
        session.send_difficulty(difficulty)
        if session.template is None and listener.current is not None:
            self._send(session, listener.current, True, self._notify_line(listener.current, True))
        else:
            self._send_jobs([session], True, self._next_job_id())
        for match, fut in self._waiters:
            if not fut.done() and match(session):
                fut.set_result(info)

    def session_suggested(self, session: Session) -> None:
        suggested = session.info.suggested_difficulty
        if not self.config.honor_suggested_difficulty or suggested == session.info.difficulty:
            return
        session.send_difficulty(suggested)
        self._send_jobs([session], True, self._next_job_id())

    @staticmethod
    def _notify_line(job: Job, clean: bool) -> bytes:
        params = job.notify_params()
        params[-1] = clean
        return encode_notification("mining.notify", params)

    def _send(self, session: Session, job: Job, clean: bool, line: bytes) -> None:
        listener = session.listener
        session.send_job(make_sent_job(job, session.info.difficulty, listener.factor,
                                       session.extranonce1, self.clock.base_ns()), line, clean)

    def _send_jobs(self, sessions: Iterable[Session], clean: bool, job_id: str,
                   pool_wide: bool = False, algorithms: Iterable[str] = ()) -> None:
        """Build one job per (listener, template) group and send it to the group."""
        groups: dict[tuple[str, int], tuple[JobTemplate | None, list[Session]]] = {}
        for alg in algorithms:  # pool-wide: refresh listeners' current jobs even if idle
            groups.setdefault((alg, 0), (None, []))
        for s in sessions:
            key = (s.info.algorithm, id(s.template) if s.template is not None else 0)
            groups.setdefault(key, (s.template, []))[1].append(s)
        for (alg, _), (template, members) in groups.items():
            listener = self._listeners[alg]
            job = listener.factory.build(job_id, template if template is not None else listener.template,
                                         clean)
            if template is None and (pool_wide or listener.current is None):
                listener.current = job
            line = self._notify_line(job, clean)
            for s in members:
                self._send(s, job, clean, line)

    def session_share(self, session: Session, verdict: Verdict, recv_ns: int) -> None:
        st = self._stats
        if verdict.accepted:
            st.accepted += 1
            if verdict.block_candidate:
                st.block_candidates += 1
                log.warning("%r: block candidate (job %s, nonce %08x)", session, verdict.job_id,
                            verdict.nonce)
        else:
            st.rejected[verdict.reason] += 1
            st.rejected_codes[verdict.code] += 1
            log.debug("%r: share rejected: %s", session, verdict.reason)
        if not self._subscribers:
            return
        event = verdict.event(recv_ns, self.clock.to_experiment_ns(recv_ns), session.session_id,
                              session.info.algorithm, self._chips.get(verdict.worker))
        for queue in self._subscribers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                queue.dropped += 1  # type: ignore[attr-defined]
                st.dropped_events += 1
                if st.dropped_events == 1 or st.dropped_events % 1000 == 0:
                    log.warning("pool: share-event subscriber is full; %d events dropped so far",
                                st.dropped_events)

    async def _refresh_loop(self) -> None:
        """Periodic fresh default work (clean_jobs false: old jobs stay valid)."""
        while True:
            await self.clock.sleep(self.config.refresh_s)
            ready = [s for s in self._sessions.values() if s.info.ready and not s.closing]
            self._send_jobs(ready, False, self._next_job_id(), pool_wide=True,
                            algorithms=list(self._listeners))

    async def _housekeeping(self) -> None:
        """Close idle connections and connections that never finish the handshake."""
        cfg = self.config
        idle = cfg.idle_timeout_s or math.inf
        period = max(0.05, min(1.0, idle / 4, cfg.handshake_timeout_s / 4))
        while True:
            await asyncio.sleep(period)
            now = self.clock.base_ns()
            for s in list(self._sessions.values()):
                if (now - s.last_rx_ns) * 1e-9 > idle:
                    log.info("%r: idle for %.0f s; closing", s, cfg.idle_timeout_s)
                    s.close()
                elif not s.info.ready and (now - s.info.connected_ns) * 1e-9 > cfg.handshake_timeout_s:
                    log.info("%r: no handshake within %.0f s; closing", s, cfg.handshake_timeout_s)
                    s.close()
