"""Safety envelopes per model: refuse settings outside them, stop when a unit runs too hot.

Limits come from the firmware's own ranges and protections where those are public; the
rest are conservative estimates and say so. Temperature limits sit ``PROTECTION_MARGIN_C``
below the temperature at which the firmware itself cuts or throttles hashing, so an
experiment stops on its own terms before the unit's protection changes the physics under
it. See ``firmware_notes/`` for the sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from asic_reservoir.drivers.errors import EnvelopeError, OverTemperature
from asic_reservoir.drivers.telemetry import SETTINGS_KEYS, Telemetry

PROTECTION_MARGIN_C = 5.0


@dataclass(frozen=True)
class Envelope:
    """Allowed ranges (inclusive) and the temperatures at which an experiment must stop."""

    model: str
    frequency_mhz: tuple[float, float]
    core_voltage_mv: tuple[float, float] | None  # None: the unit offers no voltage control
    fan_pct: tuple[float, float]
    temp_target_c: tuple[float, float]
    chip_temp_max_c: float
    board_temp_max_c: float | None
    vr_temp_max_c: float | None
    sources: tuple[str, ...]

    def check_settings(self, settings: Mapping[str, Any], *, unit: str = "") -> None:
        """Raise :class:`EnvelopeError` for unknown keys or values outside the envelope."""
        for key, value in settings.items():
            if key not in SETTINGS_KEYS:
                raise EnvelopeError(f"unknown setting {key!r}; known: {', '.join(SETTINGS_KEYS)}",
                                    unit=unit, command="apply")
            if key in ("pool_url", "pool_user", "pool_password"):
                if not isinstance(value, str) or (key != "pool_password" and not value):
                    raise EnvelopeError(f"{key} must be a non-empty string, got {value!r}",
                                        unit=unit, command="apply")
                continue
            if key == "fan_auto":
                if not isinstance(value, bool):
                    raise EnvelopeError(f"fan_auto must be true/false, got {value!r}",
                                        unit=unit, command="apply")
                continue
            limits = {"frequency_mhz": self.frequency_mhz, "core_voltage_mv": self.core_voltage_mv,
                      "fan_pct": self.fan_pct, "temp_target_c": self.temp_target_c}[key]
            if limits is None:
                raise EnvelopeError(f"{self.model} offers no {key} control", unit=unit,
                                    command="apply")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise EnvelopeError(f"{key} must be a number, got {value!r}", unit=unit,
                                    command="apply")
            lo, hi = limits
            if not lo <= value <= hi:
                raise EnvelopeError(f"{key}={value} outside the {self.model} safe range "
                                    f"[{lo:g}, {hi:g}]", unit=unit, command="apply")

    def check_temperature(self, reading: Telemetry) -> None:
        """Raise :class:`OverTemperature` when any reported temperature crosses its limit."""
        checks = [("chip", self.chip_temp_max_c,
                   [reading.chip_temp_c] + [c.chip_temp_c for c in reading.chains]
                   + [t for c in reading.chains for t in c.chip_temps_c]),
                  ("board", self.board_temp_max_c,
                   [reading.board_temp_c] + [c.board_temp_c for c in reading.chains]),
                  ("VR", self.vr_temp_max_c, [reading.vr_temp_c])]
        for name, limit, values in checks:
            seen = [v for v in values if v is not None]
            if limit is not None and seen and max(seen) >= limit:
                raise OverTemperature(f"{name} temperature {max(seen):.1f} C >= limit {limit:g} C "
                                      f"for {self.model}; stop the experiment", unit=reading.unit,
                                      command="telemetry")


ENVELOPES: dict[str, Envelope] = {
    "s9": Envelope(
        model="Antminer S9",
        # bmminer's stock frequency list for the S9 (BM1387) tops out at 700 MHz; 650 is stock.
        frequency_mhz=(100.0, 700.0),
        core_voltage_mv=None,
        fan_pct=(0.0, 100.0),
        temp_target_c=(50.0, 80.0),  # estimate (stock S9 has no target; kept for completeness)
        # bmminer stops the S9 at MAX_TEMP 85 C on the hash-board (PCB) sensors only; the chip
        # sensors (temp2_N) read 15-35 C above the board. The chip limit is an estimate well
        # below silicon junction limits (~125 C) and above stock operation (~80-98 C).
        chip_temp_max_c=110.0 - PROTECTION_MARGIN_C,
        board_temp_max_c=85.0 - PROTECTION_MARGIN_C,
        vr_temp_max_c=None,
        sources=("bmminer S9 frequency table (web UI, 100-700 MHz, default 650)",
                 "bmminer driver-btm-c5.c MAX_TEMP 85 C (board sensor)",
                 "estimate: chip sensor limit 110 C"),
    ),
    "lv06": Envelope(
        model="Lucky Miner LV06",
        # ESP-Miner /api/system/asic for BM1366: frequency options 400-575 MHz (default 485),
        # core voltage options 1100-1300 mV (default 1200).
        frequency_mhz=(400.0, 575.0),
        core_voltage_mv=(1100.0, 1300.0),
        fan_pct=(0.0, 100.0),
        temp_target_c=(35.0, 66.0),  # AxeOS PATCH validation range for temptarget
        # ESP-Miner power_management_task.c: THROTTLE_TEMP 75 C (chip), TPS546_THROTTLE_TEMP 105 C (VR).
        chip_temp_max_c=75.0 - PROTECTION_MARGIN_C,
        board_temp_max_c=None,
        vr_temp_max_c=105.0 - PROTECTION_MARGIN_C,
        sources=("ESP-Miner components/asic bm1366 frequency/voltage options",
                 "ESP-Miner main/tasks/power_management_task.c throttle temperatures"),
    ),
    "lbbox": Envelope(
        model="Goldshell LB-Box",
        # estimate: Box tools allow manual clocks from 300 MHz up to the stock plan (the
        # LB-Box's is not published; modelled 1000 MHz); the driver additionally refuses
        # any clock that is neither one of the unit's plans nor a manual step.
        frequency_mhz=(300.0, 1100.0),
        core_voltage_mv=None,
        fan_pct=(0.0, 100.0),
        temp_target_c=(65.0, 75.0),  # the fan daemon's temp_targets clamp range
        chip_temp_max_c=90.0,  # estimate: Goldshell does not publish its protection threshold
        board_temp_max_c=80.0,  # estimate
        vr_temp_max_c=None,
        sources=("Goldshell Box web API: power plans and manual clocks (frequency choices)",
                 "estimate: 90 C chip / 80 C board, conservative"),
    ),
}
