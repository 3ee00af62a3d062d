"""ESP-Miner's log ring buffer (v2.15.0 ``main/log_buffer.c``): every ESP_LOG line the
firmware prints goes into a 512 KB ring (``LOG_BUFFER_SIZE``, ``websocket.h``) kept in
no-init PSRAM, so a soft restart keeps it and writes ``"\\n--- SYSTEM RESTART ---\\n"``.

``GET /api/system/logs`` sends the whole ring from its oldest complete line; the log
websocket reads it from where it was when the client came, one line per frame
(``log_buffer_read_absolute`` stops after the first newline).
"""

from __future__ import annotations

LOG_BUFFER_SIZE = 512 * 1024
RESTART_MARK = "\n--- SYSTEM RESTART ---\n"


class LogBuffer:
    """Bytes written so far, addressed absolutely as the firmware does (``total_written``)."""

    def __init__(self, size: int = LOG_BUFFER_SIZE) -> None:
        self.size = size
        self.total_written = 0
        self._data = bytearray()           # the last ``size`` bytes written

    def write(self, text: str) -> None:
        raw = text.encode("utf-8", errors="replace")
        self._data += raw
        self.total_written += len(raw)
        if len(self._data) > self.size:
            del self._data[:len(self._data) - self.size]

    def soft_restart(self) -> None:
        """What ``log_buffer_init`` does when the header survived a soft reset."""
        self.write(RESTART_MARK)

    def read_from(self, position: int, max_len: int = 4096) -> tuple[bytes, int]:
        """``log_buffer_read_absolute``: from ``position`` (clamped to what the ring still
        holds, then resynced to the next line start) up to ``max_len`` bytes, cut after the
        first newline; returns the bytes and the new position."""
        position = self._clamp(position)
        offset = position - (self.total_written - len(self._data))
        window = self._data[offset:offset + max_len]
        end = window.find(b"\n")
        chunk = bytes(window[:end + 1] if end >= 0 else window)
        return chunk, position + len(chunk)

    def read_all(self) -> bytes:
        """What ``GET /api/system/logs`` sends: the ring from its first whole line on."""
        offset = self._clamp(0) - (self.total_written - len(self._data))
        return bytes(self._data[offset:])

    def _clamp(self, position: int) -> int:
        start = self.total_written - len(self._data)
        position = min(position, self.total_written)
        if position < start:                 # overwritten: resync within 4 KB to a line start
            cut = self._data.find(b"\n", 0, 4096)
            position = start + (cut + 1 if cut >= 0 else 0)
        return position
