"""Did a channel's commands take effect? Read from the verified writes in a run file.

The experiment loop records, per setting write, the commanded value, what the unit read
back and the verdict (``effects`` table). A channel whose writes did not take effect
(not read back, or stored only for a restart that never came) did not carry the input, so
its states cannot be scored as if it had: :func:`actuation` says how many writes failed and
:meth:`Actuation.flagged` when too many did.
"""

from __future__ import annotations

from dataclasses import dataclass

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
