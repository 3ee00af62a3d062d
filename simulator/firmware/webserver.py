"""The lifecycle every simulated web UI shares: bind, report the port, track the background
work a request starts (a restart outlives its request), stop cleanly."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class FirmwareWebServer:
    """Base of the simulated HTTP APIs; subclasses build ``self.app`` in ``__init__``."""

    app: web.Application

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 80) -> int:
        """Listen on ``host:port`` (0: any free port) and return the bound port."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = self._runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
