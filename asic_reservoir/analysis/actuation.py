"""Did a channel's commands take effect? Read from the verified writes in a run file.

The experiment loop records, per setting write, the commanded value, what the unit read
back and the verdict (``effects`` table). A channel whose writes did not take effect
(not read back, or stored only for a restart that never came) did not carry the input, so
its states cannot be scored as if it had: :func:`actuation` says how many writes failed and
:meth:`Actuation.flagged` when too many did.

A closed loop's commands can also take effect and still not carry the input: when the
fed-back response leaves the range it was normalised on, the drive saturates at the
channel's range and the command is the range's end whatever the input. :func:`saturation`
measures that from the run file (the recorded feedback, the mask and the loop's settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from asic_reservoir.experiment.channels import DelayLoop, parse_channels
from asic_reservoir.experiment.runs import RunReader

APPLIED = "applied"
TOLERATED_FAILURES = 0.05     # a few late read-backs are noise; more means a dead channel


@dataclass(frozen=True)
class Actuation:
    """Verified setting writes of one unit in one run."""

    writes: int = 0
    failed: int = 0
    examples: tuple[str, ...] = ()

    def flagged(self, tolerance: float = TOLERATED_FAILURES) -> bool:
        return self.writes > 0 and self.failed > tolerance * self.writes

    def describe(self) -> str:
        return (f"{self.failed} of {self.writes} setting writes did not take effect"
                + (f" ({'; '.join(self.examples)})" if self.examples else ""))


def actuation(reader: RunReader, run: int, unit: str, examples: int = 2) -> Actuation:
    rows = reader.effects(run, unit)
    failed = [r for r in rows if r[5] != APPLIED]
    shown = tuple(dict.fromkeys(f"{r[2]} {r[5]}: {r[6]}" for r in failed))[:examples]
    return Actuation(writes=len(rows), failed=len(failed), examples=shown)


@dataclass(frozen=True)
class Saturation:
    """A closed loop's slots in one run: how many commands were clipped at the channel's
    range, and how many fed back a response outside the range it was normalised on."""

    slots: int = 0           # slots of the loop (a missing response feeds back 0)
    clipped: int = 0
    outside: int = 0         # |r| > 1/2: the reading left the calibrated range

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.slots if self.slots else 0.0

    @property
    def outside_fraction(self) -> float:
        return self.outside / self.slots if self.slots else 0.0


def saturation(reader: RunReader, run: int, unit: str) -> Saturation | None:
    """Clipped commands of ``unit``'s closed loop in ``run`` (None for an open-loop run):
    each slot's drive is rebuilt from its input, mask value and recorded feedback exactly
    as the loop computed it, and counted when it fell outside [0, 1]."""
    meta = reader.meta
    stored = meta.channel.get("delay_loop")
    if not stored:
        return None
    channels = parse_channels(meta.channel["spec"], slots=meta.slots, mask=meta.mask,
                              loop=DelayLoop(**stored))
    inputs = {row[0]: row[1] for row in reader.steps(run)}
    slots = clipped = outside = 0
    for step, k, name, r in reader.commands(run, unit):
        if name != "feedback" or step not in inputs:
            continue
        a = channels.drive(inputs[step], k, r)
        slots += 1
        clipped += not 0.0 <= a <= 1.0
        outside += abs(r) > 0.5
    return Saturation(slots, clipped, outside)
