"""The lifecycle every simulated web UI shares: bind, report the port, track the background
work a request starts (a restart outlives its request), stop cleanly; optionally hold the
firmware's session table (``sessions.py``) in front of the server."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from asic_reservoir.simulator.firmware.sessions import SessionGate, SessionLimit


class FirmwareWebServer:
    """Base of the simulated HTTP APIs; subclasses build ``self.app`` in ``__init__`` and may
    set ``session_limit`` (the firmware web server's open-connection table)."""

    app: web.Application
    session_limit: SessionLimit | None = None

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self.gate: SessionGate | None = None
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 80) -> int:
        """Listen on ``host:port`` (0: any free port) and return the bound port."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        if self.session_limit is None:
            site: web.TCPSite = web.TCPSite(self._runner, host, port)
        else:
            self.gate = SessionGate(self.session_limit, self._runner.server)
            site = _GatedSite(self._runner, host, port, gate=self.gate)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.gate is not None:
            self.gate.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _GatedSite(web.TCPSite):
    """A TCP site whose connections go through a :class:`SessionGate`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, gate: SessionGate) -> None:
        super().__init__(runner, host, port)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)
        self._server = await asyncio.get_running_loop().create_server(
            self.gate.protocol, self._host, self._port, backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1]
