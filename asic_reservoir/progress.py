"""A small progress line for long work (stderr, throttled, with ETA and live fields)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Prints ``label  done/total  pct  ETA  key=value ...`` at most every ``interval`` s.

    Writes carriage-return updates on a terminal and plain lines elsewhere (logs, CI),
    so long runs show life without flooding a log file.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 interval: float = 0.5, enabled: bool = True) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval if self.stream.isatty() else max(interval, 5.0)
        self.enabled = enabled
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1, **fields: object) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= self.interval or self.done >= self.total):
            self._last = now
            self._write(now, fields)

    def _write(self, now: float, fields: dict) -> None:
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        extra = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in fields.items())
        line = (f"{self.label} {self.done}/{self.total} {100 * self.done / self.total:5.1f}% "
                f"elapsed {elapsed:6.1f}s ETA {eta:6.1f}s {extra}").rstrip()
        end = "\r" if self.stream.isatty() and self.done < self.total else "\n"
        self.stream.write(line + end)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()
