"""The LV06's ESP32 serial console on a pseudo-terminal.

On the real unit the ESP32's UART0 (USB-serial, 115200 8N1) carries the
firmware's ESP_LOG output, one ``I (uptime_ms) tag: text`` line per event, with
ESP-IDF's default CRLF line ending.  Here a pty stands in for the USB-serial
adapter: :attr:`SerialConsole.path` is the slave device that pyserial (or any
terminal) opens.  Like a UART nobody listens to, lines are dropped rather than
queued when the reader falls behind, so a stalled reader never stalls the unit.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import tty
from typing import Any

log = logging.getLogger(__name__)


class SerialConsole:
    """Mirror a unit's ESP_LOG lines onto a pty; ``.path`` is the tty to open."""

    def __init__(self, unit: Any) -> None:
        self.unit = unit
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = b""
        self.dropped_lines = 0

    async def start(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)                    # bytes pass unchanged, as over a UART
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._discard_input)
        self.unit.add_log_listener(self._on_log)
        return self.path

    async def stop(self) -> None:
        if self._master is None:
            return
        self.unit.remove_log_listener(self._on_log)
        if self._loop is not None:
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        self._pending = b""
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def _on_log(self, line: str) -> None:
        if self._master is None:
            return
        if self._pending:                    # reader behind: drop whole lines, never split one
            self.dropped_lines += 1
            return
        data = (line.rstrip("\r\n") + "\r\n").encode("utf-8", errors="replace")
        written = self._write(data)
        if written == 0:
            self.dropped_lines += 1
        elif written < len(data):            # finish this line once the reader drains the pty
            self._pending = data[written:]
            if self._loop is not None:
                self._loop.add_writer(self._master, self._flush)

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self._master, data) if self._master is not None else 0
        except BlockingIOError:
            return 0
        except OSError as exc:               # reader side gone: keep the unit running
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                log.warning("serial console write failed: %s", exc)
            return 0

    def _flush(self) -> None:
        written = self._write(self._pending)
        self._pending = self._pending[written:]
        if not self._pending and self._loop is not None and self._master is not None:
            self._loop.remove_writer(self._master)

    def _discard_input(self) -> None:
        """The firmware reads nothing from its console; swallow what the reader types."""
        try:
            os.read(self._master, 4096) if self._master is not None else None
        except OSError:
            pass
