"""Typed records the drivers return: one telemetry reading, one capability set, settings keys.

All three models map onto the same :class:`Telemetry`; whatever a model does not report
stays ``None`` (never a made-up zero). ``raw`` keeps the firmware's own replies so
nothing the unit said is lost.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

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
