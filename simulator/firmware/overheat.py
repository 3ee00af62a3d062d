"""What each firmware does after its over-temperature protection stopped the unit.

The protection itself (which reading trips, at what threshold) lives in the physics
(``control.py``); this module is the firmware's reaction, which is where releases differ.
One small class per behaviour, chosen by the generation's name (:data:`RESPONSES`):

* :class:`StopUntilRestart` -- bmminer (S9) and the Goldshell Box firmware (estimate): the
  unit stays stopped until it restarts, and its settings are untouched.
* :class:`SafeValuesAndReboot` -- ESP-Miner v2.1.8 (``main/tasks/power_management_task.c``,
  BM1366 branch without a power-enable pin): the firmware stores 990 mV, 50 MHz, manual fan
  at 100 % in NVS and calls ``exit()``, which reboots the ESP32. The unit comes back at
  50 MHz and stays there until someone writes new settings and restarts it.
* :class:`CoolThenReduce` -- ESP-Miner v2.15.0 (same file): manual fan 100 % and
  ``overheat_mode`` stored, mining stopped; every 5 s it re-reads the sensors and, after at
  least 6 cycles (30 s) with the chip readings at or below ``SAFE_TEMP`` 45 C (boards whose
  "chip" reading is the EMC2101, as on the BM1366 Ultra-class boards, where it is the EMC2101's
  internal board sensor: firmware_notes, "Sensor read path") and the regulator at most
  95 C, stores frequency and core voltage 100 below what they were (floors 400 MHz /
  1000 mV), starts mining again and clears ``overheat_mode``. The reduced values and the
  manual fan stay in NVS: a restart keeps them. A restart *during* the cooling loop leaves
  ``overheat_mode`` set until the user clears it (``PATCH {"overheat_mode": 0}``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class StopUntilRestart:
    """Stopped until the next restart; nothing stored."""

    def react(self, unit: Any) -> None:
        """Called once when the protection has stopped ``unit``."""

    def cancel(self) -> None:
        """The unit restarts: any reaction still running ends."""


class SafeValuesAndReboot(StopUntilRestart):
    """ESP-Miner v2.1.8: safe values into NVS, then ``exit(EXIT_FAILURE)`` (a reboot)."""

    FREQUENCY_MHZ = 50.0
    CORE_VOLTAGE_MV = 990.0

    def react(self, unit: Any) -> None:
        unit.store_firmware(core_voltage_mv=self.CORE_VOLTAGE_MV, frequency_mhz=self.FREQUENCY_MHZ,
                            fan_pct=100.0, fan_auto=False)
        unit.spawn(unit.restart())


class CoolThenReduce(StopUntilRestart):
    """ESP-Miner v2.15.0: overheat mode, a cooling loop, then mining at reduced settings."""

    POLL_S = 5.0
    MIN_COOLING_CYCLES = 6
    SAFE_TEMP_C = 45.0
    VR_RESUME_C = 105.0 - 10.0          # TPS546_THROTTLE_TEMP - 10
    REDUCTION = 100.0                   # ASIC_REDUCTION, in MHz and in mV
    FLOOR_FREQUENCY_MHZ = 400.0
    FLOOR_VOLTAGE_MV = 1000.0

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None

    def react(self, unit: Any) -> None:
        settings = unit.settings()
        voltage, frequency = float(settings["core_voltage_mv"]), float(settings["frequency_mhz"])
        unit.store_firmware(fan_auto=False, fan_pct=100.0)
        unit.overheat_mode = True
        unit.firmware_log("W", "power_management: Entering safe mode due to overheat condition. "
                               "System operation halted.")
        self._task = asyncio.ensure_future(self._cool(unit, voltage, frequency))

    async def _cool(self, unit: Any, voltage: float, frequency: float) -> None:
        cycles = 0
        while True:
            await unit.clock.sleep(self.POLL_S)
            cycles += 1
            r = unit.reading()
            if r.chip_temp_c > self.SAFE_TEMP_C:
                cycles = 0                  # still hot: the count starts again
            if cycles >= self.MIN_COOLING_CYCLES and r.vr_temp_c <= self.VR_RESUME_C:
                break
        reduced_v = voltage - self.REDUCTION if voltage > self.REDUCTION else self.FLOOR_VOLTAGE_MV
        reduced_f = frequency - self.REDUCTION if frequency > self.REDUCTION else self.FLOOR_FREQUENCY_MHZ
        unit.store_firmware(core_voltage_mv=reduced_v, frequency_mhz=reduced_f)
        unit.firmware_log("I", f"power_management: Restoring at reduced settings: {reduced_v:.0f}mV "
                               f"(was {voltage:.0f}mV), {reduced_f:.0f} MHz (was {frequency:.0f} MHz)")
        unit.rearm()
        unit.overheat_mode = False
        self._task = None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


RESPONSES: dict[str, type[StopUntilRestart]] = {
    "lucky-2.1.8": SafeValuesAndReboot,
    "axeos-2.15": CoolThenReduce,
}


def response(generation: str) -> StopUntilRestart:
    """The overheat reaction of a firmware generation (stop until restart by default)."""
    return RESPONSES.get(generation, StopUntilRestart)()
