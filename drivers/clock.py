"""One time base for pool, simulator, drivers and experiments.

Real units run in wall time. The simulator may run ``speed`` times faster than real
time; everything that measures or waits in *experiment time* goes through a
:class:`Clock` so that a share timestamp, a physics step and an experiment slot agree.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Monotonic clock running ``speed`` times faster than wall time.

    ``speed == 1`` is the real clock. Scaled time starts at the wall-clock instant the
    clock was created, so several components created from the same :class:`Clock`
    share one origin.
    """

    speed: float = 1.0
    origin_ns: int = 0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"clock speed must be > 0, got {self.speed!r}")
        if self.origin_ns == 0:
            object.__setattr__(self, "origin_ns", time.monotonic_ns())

    def now(self) -> float:
        """Experiment time in seconds since the clock's origin."""
        return (time.monotonic_ns() - self.origin_ns) * 1e-9 * self.speed

    def now_ns(self) -> int:
        """Experiment time in nanoseconds since the clock's origin."""
        return int((time.monotonic_ns() - self.origin_ns) * self.speed)

    def to_experiment_ns(self, monotonic_ns: int) -> int:
        """Convert a ``time.monotonic_ns()`` reading into experiment nanoseconds."""
        return int((monotonic_ns - self.origin_ns) * self.speed)

    def wall_seconds(self, experiment_seconds: float) -> float:
        """Wall-clock duration of an experiment-time interval."""
        return experiment_seconds / self.speed

    async def sleep(self, experiment_seconds: float) -> None:
        await asyncio.sleep(max(0.0, experiment_seconds) / self.speed)

    async def sleep_until(self, experiment_time: float) -> None:
        await self.sleep(experiment_time - self.now())


REAL_CLOCK_SPEED = 1.0


def real_clock() -> Clock:
    return Clock(REAL_CLOCK_SPEED)
