"""One miner connection: its state machine, its handlers and its defences.

A session reads raw chunks, splits lines itself (so a 16 KiB cap holds even before a
newline arrives) and answers every line read in one chunk with one write. Handshake:
``mining.configure`` (optional, BIP310) -> ``mining.subscribe`` -> ``mining.authorize``;
once subscribed *and* authorized the pool sends ``mining.set_difficulty`` and a clean
``mining.notify``. Defences, each logged and confined to this connection: malformed
lines answer error 20 (too many of them close the connection), oversized lines close it,
a token bucket caps the message rate, the pool's housekeeping closes idle and
never-handshaking connections, and a peer that stops reading (half-open socket) is
closed once its unsent output exceeds a limit instead of blocking anyone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .config import PoolConfig
from .jobs import JobRegistry, SentJob
from .protocol import (
    OTHER,
    UNAUTHORIZED,
    Message,
    StratumError,
    encode_id,
    encode_notification,
    encode_request,
    encode_response,
    parse_line,
)
from .validation import ShareValidator, Verdict


log = logging.getLogger(__name__)

READ_CHUNK = 65536


@dataclass(slots=True)
class SessionInfo:
    """What the pool knows about one connection (a live view: read, don't modify)."""

    session_id: str
    worker: str | None
    algorithm: str
    peer: str
    user_agent: str | None
    extranonce1: str
    difficulty: float
    authorized: bool = False
    subscribed: bool = False
    version_mask: int = 0
    extranonce2_size: int = 4
    suggested_difficulty: float | None = None
    connected_ns: int = 0
    accepted: int = 0
    rejected: int = 0

    @property
    def ready(self) -> bool:
        return self.authorized and self.subscribed


def _number(value: Any, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise StratumError(OTHER, f"{name} must be a finite number > 0")
    return float(value)


class ListenerView(Protocol):
    """The listener a session was accepted on: its algorithm, default difficulty, rules."""

    algorithm: str
    difficulty: float
    validator: ShareValidator


class SessionHost(Protocol):
    """What a session needs from its pool (the pool implements it; nothing else is shared)."""

    def authorized(self, worker: str, password: object) -> bool: ...
    def next_request_id(self) -> int: ...
    def session_ready(self, session: Session) -> None: ...
    def session_closed(self, session: Session) -> None: ...
    def session_share(self, session: Session, verdict: Verdict, recv_ns: int) -> None: ...
    def session_suggested(self, session: Session) -> None: ...
    def session_protocol_error(self) -> None: ...
    def stamp_ns(self) -> int: ...         # the pool clock's time base (monotonic or virtual)


class Session:
    """State and handlers of one Stratum connection."""

    def __init__(self, host: SessionHost, config: PoolConfig, listener: ListenerView,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session_id: str,
                 extranonce1: bytes) -> None:
        cfg = config
        self.host = host
        self.config = cfg
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        self.extranonce1 = extranonce1
        peer = writer.get_extra_info("peername")
        now = host.stamp_ns()
        self.info = SessionInfo(session_id=session_id, worker=None, algorithm=listener.algorithm,
                                peer=f"{peer[0]}:{peer[1]}" if peer else "?", user_agent=None,
                                extranonce1=extranonce1.hex(), difficulty=listener.difficulty,
                                extranonce2_size=cfg.extranonce2_size, connected_ns=now)
        self.validator: ShareValidator = listener.validator
        self.jobs = JobRegistry(cfg.max_jobs_per_session)
        self.workers: set[str] = set()
        self.template = None            # JobTemplate override for this session (or None)
        self.mask = 0
        self.requested_mask: int | None = None
        self.xor_form = cfg.version_form == "xor"
        self.extranonce_subscribed = False
        self.last_rx_ns = now
        self.closing = False
        self.protocol_errors = 0
        self._tokens = float(cfg.message_burst)
        self._token_ns = now
        self._out: list[bytes] | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._handlers: dict[str, Callable[[Message, int], None]] = {
            "mining.submit": self._submit,
            "mining.configure": self._configure,
            "mining.subscribe": self._subscribe,
            "mining.authorize": self._authorize,
            "mining.suggest_difficulty": self._suggest_difficulty,
            "mining.extranonce.subscribe": self._extranonce_subscribe,
            "mining.ping": self._ping,
        }

    @property
    def session_id(self) -> str:
        return self.info.session_id

    def __repr__(self) -> str:
        return f"<Session {self.session_id} {self.info.algorithm} {self.info.peer} {self.info.worker}>"

    # ------------------------------------------------------------------ I/O

    async def run(self) -> None:
        try:
            await self._read_loop()
        except (ConnectionError, OSError) as exc:
            log.info("%r: connection error: %s", self, exc)
        except Exception:  # a bug must cost one session, never the pool
            log.exception("%r: unexpected error; closing", self)
        finally:
            self.close()
            for fut in self._pending.values():
                if not fut.done():
                    fut.cancel()
            self.host.session_closed(self)

    async def _read_loop(self) -> None:
        reader = self.reader
        max_line = self.config.max_line_bytes
        handle = self._handle_line
        buf = b""
        while not self.closing:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                log.info("%r: disconnected", self)
                return
            recv_ns = self.host.stamp_ns()
            self.last_rx_ns = recv_ns
            lines = (buf + chunk).split(b"\n") if buf else chunk.split(b"\n")
            buf = lines.pop()
            if len(buf) > max_line:
                log.warning("%r: line longer than %d bytes; closing", self, max_line)
                return
            if not self._take_tokens(len(lines), recv_ns):
                log.warning("%r: message flood (> %g/s); closing", self, self.config.max_messages_per_s)
                return
            self._out = []
            try:
                for line in lines:
                    if len(line) > max_line:
                        log.warning("%r: line longer than %d bytes; closing", self, max_line)
                        return
                    handle(line, recv_ns)
                    if self.closing:
                        return
            finally:
                out, self._out = self._out, None
                if out:
                    self._write(b"".join(out))

    def _take_tokens(self, n: int, now_ns: int) -> bool:
        cfg = self.config
        tokens = self._tokens + (now_ns - self._token_ns) * 1e-9 * cfg.max_messages_per_s
        self._tokens = min(tokens, float(cfg.message_burst)) - n
        self._token_ns = now_ns
        return self._tokens >= 0

    def send(self, data: bytes) -> None:
        """Queue one line; lines produced while handling a chunk go out in one write."""
        if self._out is not None:
            self._out.append(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closing or self.transport.is_closing():
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.config.write_buffer_limit:
            log.warning("%r: peer is not reading (%d bytes unsent); closing", self,
                        self.transport.get_write_buffer_size())
            self.close(abort=True)

    def close(self, abort: bool = False) -> None:
        if self.closing:
            return
        self.closing = True
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    # ------------------------------------------------------------------ dispatch

    def _handle_line(self, line: bytes, recv_ns: int) -> None:
        if not line or line.isspace():
            return
        try:
            msg = parse_line(line)
        except StratumError as exc:
            self._protocol_error(exc.msg_id, exc, line)
            return
        if msg.method is None:
            self._response(msg)
            return
        handler = self._handlers.get(msg.method)
        if handler is None:
            self._protocol_error(msg.id, StratumError(OTHER, f"unknown method {msg.method[:64]!r}"), line)
            return
        try:
            handler(msg, recv_ns)
        except StratumError as exc:
            self._protocol_error(msg.id, exc, line)

    def _protocol_error(self, msg_id: Any, exc: StratumError, line: bytes) -> None:
        self.protocol_errors += 1
        self.host.session_protocol_error()
        log.info("%r: %s (line %r)", self, exc.message, line[:120])
        self.send(encode_response(msg_id, None, exc))
        if self.protocol_errors > self.config.max_protocol_errors:
            log.warning("%r: more than %d protocol errors; closing", self, self.config.max_protocol_errors)
            self.close()

    def _reply(self, msg_id: Any, result: Any) -> None:
        self.send(encode_response(msg_id, result))

    def _response(self, msg: Message) -> None:
        fut = self._pending.pop(msg.id, None) if type(msg.id) is int else None
        if fut is None:
            log.debug("%r: unsolicited response id=%r", self, msg.id)
        elif not fut.done():
            fut.set_result(msg)

    # ------------------------------------------------------------------ handlers

    def _submit(self, msg: Message, recv_ns: int) -> None:
        v = self.validator.check(msg.params, self.info.subscribed, self.workers, self.jobs,
                                 self.mask, self.xor_form, self.info.difficulty)
        if v.accepted:
            self.send(b'{"id":%s,"result":true,"error":null}\n' % encode_id(msg.id).encode())
            self.info.accepted += 1
        else:
            self.send(encode_response(msg.id, False, v.error()))
            self.info.rejected += 1
        self.host.session_share(self, v, recv_ns)

    def _configure(self, msg: Message, recv_ns: int) -> None:
        params = msg.params
        if type(params) is not list or not params or type(params[0]) is not list:
            raise StratumError(OTHER, "mining.configure needs [extensions, {parameters}]")
        names = params[0]
        options = params[1] if len(params) > 1 else {}
        if type(options) is not dict or not all(type(n) is str for n in names):
            raise StratumError(OTHER, "mining.configure needs [extensions, {parameters}]")
        result: dict[str, Any] = {}
        for name in names:
            if name == "version-rolling":
                result.update(self._negotiate_version_rolling(options))
            elif name == "minimum-difficulty":
                value = _number(options.get("minimum-difficulty.value"), "minimum-difficulty.value")
                self.info.suggested_difficulty = value
                result[name] = True
            elif name == "subscribe-extranonce":
                self.extranonce_subscribed = True
                result[name] = True
            elif name == "info":
                result[name] = True
            else:
                result[name] = False
        self._reply(msg.id, result)
        if self.info.ready and self.info.suggested_difficulty is not None:
            self.host.session_suggested(self)

    def _negotiate_version_rolling(self, options: dict) -> dict[str, Any]:
        requested = options.get("version-rolling.mask", "ffffffff")
        min_bits = options.get("version-rolling.min-bit-count", 0)
        if type(requested) is not str or len(requested) > 8 or type(min_bits) is not int:
            raise StratumError(OTHER, "version-rolling.mask must be hex, min-bit-count an integer")
        try:
            req = int(requested, 16)
        except ValueError:
            raise StratumError(OTHER, "version-rolling.mask is not valid hex") from None
        mask = req & self.config.version_mask
        self.requested_mask = req
        if self.config.version_form == "auto":
            self.xor_form = req == 0xFFFFFFFF or self._esp_agent()
        if bin(mask).count("1") < min_bits:
            self.mask = self.info.version_mask = 0
            return {"version-rolling": False}
        self.mask = self.info.version_mask = mask
        return {"version-rolling": True, "version-rolling.mask": f"{mask:08x}"}

    def _esp_agent(self) -> bool:
        agent = (self.info.user_agent or "").lower()
        return agent.startswith("bitaxe") or "esp-miner" in agent

    def _subscribe(self, msg: Message, recv_ns: int) -> None:
        params = msg.params
        if type(params) is not list:
            raise StratumError(OTHER, "mining.subscribe params must be a list")
        if params:
            if type(params[0]) is not str:
                raise StratumError(OTHER, "user agent must be a string")
            self.info.user_agent = params[0][:128]
            if self.config.version_form == "auto" and self._esp_agent():
                self.xor_form = True
        sid = self.session_id
        was_subscribed = self.info.subscribed
        self.info.subscribed = True
        self._reply(msg.id, [[["mining.set_difficulty", sid], ["mining.notify", sid]],
                             self.extranonce1.hex(), self.config.extranonce2_size])
        if self.info.authorized and not was_subscribed:
            self.host.session_ready(self)

    def _authorize(self, msg: Message, recv_ns: int) -> None:
        params = msg.params
        if type(params) is not list or not params or type(params[0]) is not str \
                or not 0 < len(params[0]) <= 256:
            raise StratumError(OTHER, "mining.authorize needs [worker, password]")
        worker = params[0]
        password = params[1] if len(params) > 1 else None
        if not self.host.authorized(worker, password):
            log.info("%r: worker %r refused", self, worker)
            self.send(encode_response(msg.id, False, StratumError(UNAUTHORIZED, "unauthorized worker")))
            return
        was_ready = self.info.ready
        self.workers.add(worker)
        if self.info.worker is None:
            self.info.worker = worker
        self.info.authorized = True
        self._reply(msg.id, True)
        if self.info.subscribed and not was_ready:
            self.host.session_ready(self)

    def _suggest_difficulty(self, msg: Message, recv_ns: int) -> None:
        params = msg.params
        if type(params) is not list or len(params) != 1:
            raise StratumError(OTHER, "mining.suggest_difficulty needs [difficulty]")
        self.info.suggested_difficulty = _number(params[0], "difficulty")
        self._reply(msg.id, True)
        if self.info.ready:
            self.host.session_suggested(self)

    def _extranonce_subscribe(self, msg: Message, recv_ns: int) -> None:
        self.extranonce_subscribed = True
        self._reply(msg.id, True)

    def _ping(self, msg: Message, recv_ns: int) -> None:
        self._reply(msg.id, "pong")

    # ------------------------------------------------------------------ pool -> miner

    def send_difficulty(self, difficulty: float) -> None:
        self.info.difficulty = difficulty
        self.send(encode_notification("mining.set_difficulty", [difficulty]))

    def send_job(self, sent: SentJob, line: bytes, clean: bool) -> None:
        """Register a job (with its send-time difficulty) and send its notify line."""
        self.jobs.add(sent, clean)
        self.send(line)

    def set_extranonce1(self, extranonce1: bytes) -> None:
        """Switch extranonce1; jobs already sent keep the one they were sent with."""
        self.extranonce1 = extranonce1
        self.info.extranonce1 = extranonce1.hex()
        self.send(encode_notification("mining.set_extranonce",
                                      [extranonce1.hex(), self.config.extranonce2_size]))

    def set_version_mask(self, mask: int) -> None:
        if self.requested_mask is not None:
            mask &= self.requested_mask
        self.mask = self.info.version_mask = mask
        self.send(encode_notification("mining.set_version_mask", [f"{mask:08x}"]))

    async def request(self, method: str, params: list, timeout: float) -> Message:
        """Send a request to the miner and wait for its response (``TimeoutError``)."""
        msg_id = self.host.next_request_id()
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        self.send(encode_request(msg_id, method, params))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(msg_id, None)
