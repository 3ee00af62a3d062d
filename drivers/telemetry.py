"""Typed records the drivers return: one telemetry reading, one capability set, settings keys.

All three models map onto the same :class:`Telemetry`; whatever a model does not report
stays ``None`` (never a made-up zero). ``raw`` keeps the firmware's own replies so
nothing the unit said is lost.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Readings no sensor of these units can produce: a failed or unplugged sensor reads -83 C
# or 255 C, a stuck tachometer 60 000 rpm. They become missing values, never data.
TEMP_RANGE_C = (-20.0, 150.0)
MAX_FAN_RPM = 20_000

# Canonical settings keys (shared with the simulator's unit.apply and the channels).
SETTINGS_KEYS = ("frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct", "temp_target_c",
                 "pool_url", "pool_user", "pool_password")


def as_float(value: Any) -> float | None:
    """Firmware number -> float: accepts numbers, numeric strings, SI-suffixed strings ("4.29G").

    Non-finite values, empty strings and anything unparseable give ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        out = float(value)
    else:
        text = str(value).strip()
        match = re.fullmatch(r"(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([kKMGTP]?)", text)
        if match is None:
            return None
        scale = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
        out = float(match[1]) * scale[match[2]]
    return out if math.isfinite(out) else None


def as_int(value: Any) -> int | None:
    out = as_float(value)
    return None if out is None else int(out)


@dataclass
class Chain:
    """One hash board (S9 chain, LB-Box board) or the single chip of an LV06."""

    index: int
    chips: int | None = None
    chip_temps_c: list[float] = field(default_factory=list)
    board_temp_c: float | None = None
    chip_temp_c: float | None = None
    frequency_mhz: float | None = None
    hashrate_ghs: float | None = None
    hw_errors: int | None = None
    status: str = ""  # per-chip 'o' (ok) / 'x' (bad) string, as bmminer reports it


@dataclass
class Telemetry:
    """One reading of a unit. ``time`` is the local Unix time the reading completed."""

    time: float
    unit: str
    model: str
    firmware: str = ""
    hashrate_ghs: float | None = None
    hashrate_avg_ghs: float | None = None
    chains: list[Chain] = field(default_factory=list)
    chip_temp_c: float | None = None
    board_temp_c: float | None = None
    vr_temp_c: float | None = None
    power_w: float | None = None
    voltage_mv: float | None = None       # input voltage
    current_ma: float | None = None
    core_voltage_mv: float | None = None
    frequency_mhz: float | None = None
    fan_rpm: list[int] = field(default_factory=list)
    fan_pct: float | None = None
    hw_errors: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    best_share: float | None = None
    pool_difficulty: float | None = None
    pool_url: str = ""
    pool_user: str = ""
    uptime_s: float | None = None
    paused: bool | None = None
    overheat: str = ""        # the firmware's overheat safe mode, with its evidence ("" = none seen)
    insane: dict[str, float] = field(default_factory=dict)   # impossible readings, dropped
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_row(self) -> dict[str, float | None]:
        """Flat numeric view for run files and state matrices (fans and chains flattened)."""
        row: dict[str, float | None] = {}
        for key in ("hashrate_ghs", "hashrate_avg_ghs", "chip_temp_c", "board_temp_c", "vr_temp_c",
                    "power_w", "voltage_mv", "current_ma", "core_voltage_mv", "frequency_mhz",
                    "fan_pct", "hw_errors", "accepted", "rejected", "best_share",
                    "pool_difficulty", "uptime_s"):
            value = getattr(self, key)
            row[key] = None if value is None else float(value)
        for i, rpm in enumerate(self.fan_rpm):
            row[f"fan{i}_rpm"] = float(rpm)
        for chain in self.chains:
            for key in ("chip_temp_c", "board_temp_c", "hashrate_ghs", "frequency_mhz", "hw_errors"):
                value = getattr(chain, key)
                row[f"chain{chain.index}_{key}"] = None if value is None else float(value)
        return row

    def to_dict(self, raw: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not raw:
            out.pop("raw")
        return out


def _temp(value: float | None, name: str, bad: dict[str, float]) -> float | None:
    if value is not None and not TEMP_RANGE_C[0] <= value <= TEMP_RANGE_C[1]:
        bad[name] = value
        return None
    return value


def _nonneg(value: float | None, name: str, bad: dict[str, float]) -> float | None:
    if value is not None and value < 0:
        bad[name] = value
        return None
    return value


def sanitize(reading: Telemetry) -> Telemetry:
    """Report impossible readings as missing, with a warning (the raw reply keeps them).

    Temperatures outside -20..150 C, fans above 20 000 rpm and negative hash rates never
    reach the safety envelope or the reservoir states. Unit-level temperatures are the
    maxima of the sane chain readings.
    """
    bad: dict[str, float] = {}
    for chain in reading.chains:
        tag = f"chain{chain.index}"
        chain.chip_temp_c = _temp(chain.chip_temp_c, f"{tag}_chip_temp_c", bad)
        chain.board_temp_c = _temp(chain.board_temp_c, f"{tag}_board_temp_c", bad)
        chain.chip_temps_c = [t for i, t in enumerate(chain.chip_temps_c)
                              if _temp(t, f"{tag}_chip_temp{i}_c", bad) is not None]
        chain.hashrate_ghs = _nonneg(chain.hashrate_ghs, f"{tag}_hashrate_ghs", bad)
    if reading.chains:
        for key, attr in (("chip_temp_c", "chip_temp_c"), ("board_temp_c", "board_temp_c")):
            seen = [getattr(c, attr) for c in reading.chains if getattr(c, attr) is not None]
            value = _temp(getattr(reading, key), key, {})
            setattr(reading, key, max(seen) if seen else value)
    else:
        reading.chip_temp_c = _temp(reading.chip_temp_c, "chip_temp_c", bad)
        reading.board_temp_c = _temp(reading.board_temp_c, "board_temp_c", bad)
    reading.vr_temp_c = _temp(reading.vr_temp_c, "vr_temp_c", bad)
    fans = []
    for i, rpm in enumerate(reading.fan_rpm):
        if 0 <= rpm <= MAX_FAN_RPM:
            fans.append(rpm)
        else:
            bad[f"fan{i}_rpm"] = float(rpm)
    reading.fan_rpm = fans
    reading.hashrate_ghs = _nonneg(reading.hashrate_ghs, "hashrate_ghs", bad)
    reading.hashrate_avg_ghs = _nonneg(reading.hashrate_avg_ghs, "hashrate_avg_ghs", bad)
    if bad:
        log.warning("unit %s: impossible readings reported as missing: %s", reading.unit,
                    ", ".join(f"{k}={v:g}" for k, v in sorted(bad.items())))
        reading.insane = bad
    return reading


@dataclass(frozen=True)
class Capabilities:
    """Which actuators a unit has. Difficulty (set by the pool) is always available."""

    difficulty: bool = True
    frequency: bool = False
    frequency_needs_restart: bool = False
    frequency_steps: tuple[float, ...] = ()   # discrete choices (LB-Box power plans); () = continuous
    voltage: bool = False
    fan: bool = False
    fan_needs_restart: bool = False           # stock S9: every settings write restarts bmminer
    temp_target: bool = False
    pause: bool = False
    pool: bool = True
    pool_needs_restart: bool = False
    restart: bool = True
    voltage_needs_restart: bool = False
    learned: tuple[str, ...] = ()             # how each capability was found out, for probe

    def restart_keys(self) -> set[str]:
        """Settings keys this unit stores for its next restart instead of applying them."""
        keys: set[str] = set()
        if self.frequency_needs_restart:
            keys.add("frequency_mhz")
        if self.voltage_needs_restart:
            keys.add("core_voltage_mv")
        if self.fan_needs_restart:
            keys |= {"fan_auto", "fan_pct"}
        if self.pool_needs_restart:
            keys |= {"pool_url", "pool_user", "pool_password"}
        return keys
