"""Experiment-loop throughput through the socket path: 3 simulated units at speed 200.

Steps are made short (0.5 simulated s, 2.5 ms of wall time at speed 200) so that the loop
itself — commands through the pool, telemetry over RPC/HTTP, share filing, one SQLite
commit per step — sets the pace. The reference is the rate the clock alone would allow.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks import Figure, quick

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.experiment.record import run_experiment
from asic_reservoir.experiment.simulated import DEMO_AMBIENT_C, DEMO_SEEDS
from asic_reservoir.experiment.runs import RunReader

SPEED = 200.0
STEP_SECONDS = 0.5
MODELS = ("s9", "lv06", "lbbox")


async def _measure(steps: int, workdir: Path) -> tuple[float, object, int]:
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    from asic_reservoir.simulator import UnitConfig, start_units
    from asic_reservoir.simulator.firmware.generations import DEMO_FIRMWARE
    clock = Clock(SPEED)
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0), clock=clock)
    await pool.start()
    try:
        configs = [UnitConfig(model=m, seed=DEMO_SEEDS[m], host="127.0.0.1",
                              pool_url=pool.lbry_url if m == "lbbox" else pool.url,
                              worker=f"ar.{m}", speed=SPEED, rpc_port=0, http_port=0,
                              ambient_c=DEMO_AMBIENT_C[m],
                              firmware=DEMO_FIRMWARE.get(m)) for m in MODELS]
        async with start_units(configs, clock=clock) as units:
            path = workdir / "bench.db"
            start = time.perf_counter()
            summary = await run_experiment(
                [u.url for u in units], "difficulty", path, steps=steps,
                step_seconds=STEP_SECONDS, pool=pool, clock=clock, progress=False,
                difficulty_scales=[u.difficulty_scale for u in units],
                names=list(MODELS), workers=[u.config.worker for u in units])
            wall = time.perf_counter() - start
        with RunReader(path) as r:
            polls = r.count("telemetry")
        return wall, summary, polls
    finally:
        await pool.stop()


def run() -> list[Figure]:
    steps = 100 if quick() else 600
    with tempfile.TemporaryDirectory(prefix="bench-experiment-") as tmp:
        wall, summary, polls = asyncio.run(_measure(steps, Path(tmp)))
    rate = summary.steps_written / wall
    return [
        Figure("experiment steps/s (3 units, speed 200)", rate, "steps/s",
               "clock-limited rate", SPEED / STEP_SECONDS,
               f"{summary.late_slots} late slots, {summary.late_polls} late polls"),
        Figure("telemetry readings/s (3 units)", polls / wall, "readings/s",
               "steps/s x units", rate * len(MODELS)),
        Figure("shares filed/s", summary.shares / wall, "shares/s"),
    ]
