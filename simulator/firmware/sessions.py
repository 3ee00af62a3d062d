"""esp_http_server's session table: how many connections an ESP32 web server holds at once,
and what happens to one more (ESP-IDF ``components/esp_http_server``: ``httpd_main.c``
``httpd_server`` / ``httpd_accept_conn``, ``httpd_sess.c``).

Every open TCP connection is a session -- a keep-alive HTTP client, a websocket -- up to
``max_open_sockets``. When all are taken:

* without ``lru_purge_enable`` (the ``HTTPD_DEFAULT_CONFIG``) the server stops polling its
  listening socket: the client's TCP connection completes in the stack's backlog, its
  request waits unanswered until some session closes, then it is served;
* with ``lru_purge_enable`` the server closes the least recently used session (the one
  whose last request, or websocket frame from the client, is oldest) and takes the new one.

:class:`SessionGate` puts that in front of an aiohttp server: it wraps the server's protocol
factory, holds a connection that has no session (reading paused, nothing handed to aiohttp)
and admits it when one frees, or purges the least recently used one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SessionLimit:
    max_open: int
    lru_purge: bool = False


class SessionGate:
    """Sessions of one simulated web server; ``factory`` builds aiohttp's protocol."""

    def __init__(self, limit: SessionLimit, factory: Callable[[], asyncio.Protocol]) -> None:
        self.limit = limit
        self.factory = factory
        self.open: set[_Session] = set()
        self.waiting: deque[_Session] = deque()
        self.purged = 0                      # sessions closed to make room (LRU)
        self._clock = itertools.count()      # the LRU counter: a stamp per use

    def protocol(self) -> asyncio.Protocol:
        return _Session(self)

    def close(self) -> None:
        """The server stops: connections still waiting for a session are dropped."""
        for session in list(self.waiting):
            session.transport.close()
        self.waiting.clear()

    def _arrive(self, session: _Session) -> None:
        if len(self.open) < self.limit.max_open:
            self._admit(session)
        elif self.limit.lru_purge:
            oldest = min(self.open, key=lambda s: s.used)
            self.open.discard(oldest)
            self.purged += 1
            oldest.transport.close()
            self._admit(session)
        else:
            session.transport.pause_reading()
            self.waiting.append(session)

    def _admit(self, session: _Session) -> None:
        self.open.add(session)
        session.start(self.factory(), next(self._clock))

    def _leave(self, session: _Session) -> None:
        if session in self.waiting:
            self.waiting.remove(session)
        if session in self.open:
            self.open.discard(session)
            while self.waiting and len(self.open) < self.limit.max_open:
                self._admit(self.waiting.popleft())

    def _touch(self, session: _Session) -> None:
        session.used = next(self._clock)


class _Session(asyncio.Protocol):
    """One accepted connection; forwards to aiohttp's protocol once it holds a session."""

    def __init__(self, gate: SessionGate) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.used = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport            # type: ignore[assignment]
        self.gate._arrive(self)

    def start(self, inner: asyncio.Protocol, stamp: int) -> None:
        self.inner, self.used = inner, stamp
        inner.connection_made(self.transport)
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.gate._touch(self)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.gate._leave(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
