"""Shared aiohttp plumbing for the web APIs: one session per client, typed errors, read retries."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from typing import Any

import aiohttp

from asic_reservoir.drivers.errors import (AuthError, ConnectionRefused, HTTPError, MalformedReply, ServerError,
                            Timeout, UnitError, retry_read)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 << 20
# Connections one client opens to a unit at most. The smallest web server we talk to,
# ESP-Miner v2.1.8 on the LV06, serves 7 sockets in all and queues the rest unanswered
# (firmware_notes/lucky-miner-lv06.md); a browser with the unit's page open holds up to 4.
MAX_CONNECTIONS = 3


def connect_failure(port: int, error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return f"connection refused on port {port}"
    return f"cannot connect to port {port}: {error}"


class HttpClient:
    """Base for AxeOS and Goldshell clients. Use as ``async with`` or call :meth:`close`."""

    def __init__(self, host: str, port: int = 80, *, timeout: float = 5.0, attempts: int = 3,
                 unit: str | None = None, session: aiohttp.ClientSession | None = None,
                 middlewares: tuple[Any, ...] = ()) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.attempts = attempts
        self.unit = unit or f"{host}:{port}"
        self._session = session
        self._own_session = session is None
        self._middlewares = middlewares

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS), middlewares=self._middlewares)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, method: str, path: str, *, command: str | None = None,
                   json_body: Any = None, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None,
                   form: dict[str, str] | list[tuple[str, str]] | None = None,
                   timeout: float | None = None,
                   allow_redirects: bool = True) -> tuple[int, str, dict[str, str]]:
        """One HTTP request -> (status, body text, headers); transport failures are typed.

        ``timeout`` overrides the client's for one request (a firmware operation known to
        be slow, such as the S9's config CGI); ``form`` fields keep their order;
        ``allow_redirects=False`` returns a redirect itself (a capture records it).
        """
        command = command or f"{method} {path}"
        limit = self.timeout if timeout is None else timeout
        try:
            async with self.session().request(method, self.base_url + path, json=json_body,
                                              data=form, params=params, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=limit),
                                              allow_redirects=allow_redirects) as resp:
                body = await resp.content.read(MAX_BODY_BYTES + 1)
                if len(body) > MAX_BODY_BYTES:
                    raise MalformedReply(f"body exceeds {MAX_BODY_BYTES} bytes", unit=self.unit,
                                         command=command)
                return resp.status, body.decode("utf-8", errors="replace"), dict(resp.headers)
        except UnitError:
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise Timeout(f"no reply within {limit:g}s", unit=self.unit,
                          command=command) from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionRefused(connect_failure(self.port, exc.os_error), unit=self.unit,
                                    command=command) from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientOSError) as exc:
            raise ConnectionRefused(f"connection dropped: {exc}", unit=self.unit,
                                    command=command) from None
        except aiohttp.ClientError as exc:
            raise MalformedReply(f"bad HTTP reply: {exc}", unit=self.unit, command=command) from None

    def check(self, status: int, body: str, command: str) -> None:
        if status in (401, 403):
            raise AuthError(f"HTTP {status}: {body[:120]}", unit=self.unit, command=command)
        if status >= 500:
            raise ServerError(f"HTTP {status}: {body[:120]}", status=status, unit=self.unit,
                              command=command)
        if status >= 400:
            raise HTTPError(f"HTTP {status}: {body[:120]}", status=status, unit=self.unit,
                            command=command)

    def parse_json(self, body: str, command: str) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            raise MalformedReply(f"not JSON: {body[:80]!r}", unit=self.unit, command=command) from None

    async def get_json(self, path: str, *, command: str | None = None,
                       headers: dict[str, str] | None = None) -> Any:
        """GET returning JSON; a read, so transient failures are retried with backoff."""
        command = command or f"GET {path}"

        async def call() -> Any:
            status, body, _ = await self.send("GET", path, command=command, headers=headers)
            self.check(status, body, command)
            return self.parse_json(body, command)

        return await retry_read(call, attempts=self.attempts)
