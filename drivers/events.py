"""One parser for ESP-Miner console lines, shared by the websocket (/api/ws) and the serial console.

ESP_LOG lines look like ``I (123456) tag: message`` (level letter, uptime in ms, tag),
optionally wrapped in ANSI colour codes. The lines the drivers turn into typed events:

- ``asic_result: ID: <job>, ASIC nr: 0, Core: 12/3, ver: 20000000 Nonce 1A2B3C4D diff 1234.5 of 1000.``
  (older firmware has no ``Core:``; another variant logs ``Nonce difficulty 308.15 of 538.``)
- ``stratum_task: message result accepted`` / ``message result rejected[: reason]``
- ``stratum_task: Set stratum difficulty: 1000``
- temperature lines (``OVERHEAT! VR: 105.0C ASIC 75.0C``, ``... temp: 55.3 ...``)

Everything else is returned as a plain :class:`LogLine`, so no line is lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINE = re.compile(r"^(?P<level>[EWIDV]) \((?P<ms>\d+)\) (?P<tag>[^:]+):(?: (?P<msg>.*))?$")
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_NONCE = re.compile(
    r"ID: (?P<job>[^,]*), ASIC nr: (?P<asic>\d+),(?: Core: (?P<core>\d+)/(?P<small>\d+),)?"
    r" ver: (?P<ver>[0-9A-Fa-f]+) Nonce (?P<nonce>[0-9A-Fa-f]+) diff (?P<diff>" + _NUM + r")"
    r" of (?P<pool>" + _NUM + r")")
_NONCE_SHORT = re.compile(r"Nonce difficulty (?P<diff>" + _NUM + r") of (?P<pool>" + _NUM + r")")
_RESULT = re.compile(r"message result (?P<what>accepted|rejected)(?::\s*(?P<reason>.*))?")
_DIFFICULTY = re.compile(r"[Ss]et stratum difficulty:?\s*(?P<d>" + _NUM + r")")
_OVERHEAT = re.compile(r"VR:?\s*(?P<vr>" + _NUM + r")\s*C.*ASIC:?\s*(?P<chip>" + _NUM + r")\s*C")
_TEMP = re.compile(r"(?P<which>vr|asic|chip)?[ _]?temp(?:erature)?\s*[:=]?\s*(?P<t>" + _NUM + r")",
                   re.IGNORECASE)


@dataclass(frozen=True)
class LogLine:
    """Any console line: level letter, firmware uptime (ms), tag, message."""

    level: str
    uptime_ms: int
    tag: str
    message: str


@dataclass(frozen=True)
class NonceEvent:
    """A chip result the firmware logged (meets the chip's floor; may be below pool difficulty)."""

    uptime_ms: int
    job_id: str | None
    asic_nr: int | None
    core: int | None
    small_core: int | None
    version: int | None
    nonce: int | None
    difficulty: float
    pool_difficulty: float

    @property
    def is_share(self) -> bool:
        """True when the result meets the pool difficulty (the firmware submits it)."""
        return self.difficulty >= self.pool_difficulty


@dataclass(frozen=True)
class ShareResultEvent:
    """The pool's answer to a submitted share, as the firmware logged it."""

    uptime_ms: int
    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class DifficultyEvent:
    """The pool set a new difficulty."""

    uptime_ms: int
    difficulty: float


@dataclass(frozen=True)
class TemperatureEvent:
    """A temperature the firmware logged; either reading may be absent."""

    uptime_ms: int
    chip_c: float | None = None
    vr_c: float | None = None


LogEvent = Union[NonceEvent, ShareResultEvent, DifficultyEvent, TemperatureEvent, LogLine]


def split_line(line: str) -> LogLine | None:
    """ESP_LOG line -> :class:`LogLine`, or None for text that is not an ESP_LOG line."""
    match = _LINE.match(_ANSI.sub("", line).strip())
    if match is None:
        return None
    message = (match["msg"] or "").strip()     # "I (5) tag:" with nothing after it is a line too
    return LogLine(match["level"], int(match["ms"]), match["tag"].strip(), message)


def parse_line(line: str) -> LogEvent | None:
    """The most specific event for one console line; None if it is not an ESP_LOG line."""
    base = split_line(line)
    if base is None:
        return None
    msg, ms = base.message, base.uptime_ms
    if (m := _NONCE.search(msg)) is not None:
        return NonceEvent(ms, m["job"].strip() or None, int(m["asic"]),
                          int(m["core"]) if m["core"] is not None else None,
                          int(m["small"]) if m["small"] is not None else None,
                          int(m["ver"], 16), int(m["nonce"], 16), float(m["diff"]), float(m["pool"]))
    if (m := _NONCE_SHORT.search(msg)) is not None:
        return NonceEvent(ms, None, None, None, None, None, None, float(m["diff"]), float(m["pool"]))
    if (m := _RESULT.search(msg)) is not None:
        return ShareResultEvent(ms, m["what"] == "accepted", (m["reason"] or "").strip())
    if (m := _DIFFICULTY.search(msg)) is not None:
        return DifficultyEvent(ms, float(m["d"]))
    if (m := _OVERHEAT.search(msg)) is not None:
        return TemperatureEvent(ms, chip_c=float(m["chip"]), vr_c=float(m["vr"]))
    if (m := _TEMP.search(msg)) is not None:
        value = float(m["t"])
        if (m["which"] or "").lower() == "vr":
            return TemperatureEvent(ms, vr_c=value)
        return TemperatureEvent(ms, chip_c=value)
    return base
