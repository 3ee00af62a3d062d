"""The delay line of a closed-loop reservoir: one unit's measured responses by slot.

The experiment loop numbers every slot it runs (across steps and runs: the unit does not
reset between them) and files the response read in slot ``g`` here; the command of slot
``g`` reads back the one of slot ``g - delay`` (``delay = N + 1``, see
:class:`~asic_reservoir.experiment.channels.DelayLoop`). A reading that is missing (the
poll failed, the field was absent, or the reply had not landed by then) feeds back the
operating point (no feedback) and is counted, so a gap never stops the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from asic_reservoir.experiment.channels import ChannelError, DelayLoop


@dataclass
class ResponseLine:
    """Normalised responses of one unit, keyed by the loop's slot number."""

    loop: DelayLoop
    delay: int
    r_lo: float
    r_hi: float
    values: dict[int, float] = field(default_factory=dict)
    missing: int = 0

    @classmethod
    def for_unit(cls, loop: DelayLoop, slots: int, calibration: tuple[float, float] | None
                 ) -> "ResponseLine":
        """The line for one unit; ``calibration`` (lo, hi) is used when the loop gives none."""
        if loop.r_lo is not None and loop.r_hi is not None:
            lo, hi = loop.r_lo, loop.r_hi
        elif calibration is not None:
            lo, hi = calibration
        else:
            raise ChannelError(f"delay loop: no range for the response {loop.response!r}; "
                               f"give r_lo and r_hi or a warm-up to calibrate on")
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ChannelError(f"delay loop: response range [{lo}, {hi}] is empty")
        return cls(loop, loop.delay_slots(slots), float(lo), float(hi))

    def normalise(self, reading: float) -> float:
        return (reading - self.r_lo) / (self.r_hi - self.r_lo) - 0.5

    def record(self, slot: int, reading: dict[str, float | None]) -> None:
        """File slot ``slot``'s telemetry row (the loop's response field, if present)."""
        value = reading.get(self.loop.response)
        if value is not None and math.isfinite(value):
            self.values[slot] = self.normalise(value)

    def feedback(self, slot: int) -> float:
        """The normalised response ``delay`` slots before ``slot`` (0 when missing; the
        first ``delay`` slots of a loop have no history and count as missing too)."""
        value = self.values.pop(slot - self.delay, None)
        for old in [k for k in self.values if k < slot - self.delay]:
            del self.values[old]          # never read again: keep the line short
        if value is None:
            self.missing += 1
            return 0.0
        return value


def calibrate(readings: list[float]) -> tuple[float, float]:
    """The response range seen in the warm-up (its second half, once the unit settled)."""
    settled = [r for r in readings[len(readings) // 2:] if math.isfinite(r)]
    if len(settled) < 2 or not max(settled) > min(settled):
        raise ChannelError(f"delay loop: the response did not move during the warm-up "
                           f"({len(settled)} readings); give r_lo and r_hi or warm up longer")
    return min(settled), max(settled)
