"""Units the toolkit simulates itself, named ``sim:MODEL:SEED`` on the command line (``puf``
and ``run``): one parser, so both commands accept and refuse the same names."""

from __future__ import annotations

from dataclasses import dataclass

from asic_reservoir.simulator.profiles import PROFILES

SIM_PREFIX = "sim:"


@dataclass(frozen=True)
class SimUnitName:
    """``sim:MODEL:SEED`` (``sim:lv06:21``): the identity seed fixes the unit's process
    variation, as in a simulated fleet."""

    model: str
    seed: int

    @property
    def url(self) -> str:
        return f"{SIM_PREFIX}{self.model}:{self.seed}"


def parse_sim_unit(url: str) -> SimUnitName | None:
    """``sim:MODEL:SEED`` -> :class:`SimUnitName`; None for any other URL (a unit on the
    network); a clear ``ValueError`` for a malformed ``sim:`` name."""
    if not url.startswith(SIM_PREFIX):
        return None
    model, _, seed = url[len(SIM_PREFIX):].partition(":")
    if model not in PROFILES or not seed.isdigit():
        raise ValueError(f"a simulated unit is sim:MODEL:SEED with MODEL one of "
                         f"{', '.join(sorted(PROFILES))} and SEED >= 0, got {url!r}")
    return SimUnitName(model, int(seed))
