"""A NARMA-10 experiment on one simulated LV06, scored beside its baselines.

Everything runs on loopback: the toolkit's pool, a simulated Lucky Miner LV06 (AxeOS HTTP API,
genuine SHA-256d shares), the experiment loop writing a SQLite run file, then the analysis.
Point ``run_experiment`` at a real unit's URL (``lv06://192.168.1.50``) and a pool address the
unit can reach to do the same at the bench.

    python examples/narma_on_simulator.py --steps 300 --runs 2 --out narma.db
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import asic_reservoir as ar


async def record(out: Path, steps: int, runs: int, speed: float) -> None:
    clock = ar.Clock(speed)                        # simulated seconds run `speed` times faster
    async with ar.Pool(ar.PoolConfig(port=0), clock=clock) as pool:
        unit_config = ar.UnitConfig("lv06", seed=7, pool_url=pool.url, speed=speed,
                                    rpc_port=None, http_port=0)
        async with ar.start_units([unit_config], clock=clock) as (lv06,):
            summary = await ar.run_experiment(
                [lv06.url], "frequency+fan:invert=1", out, steps=steps, runs=runs,
                step_seconds=5.0, warmup_seconds=120.0, pool=pool, clock=clock,
                difficulty_scales=[lv06.difficulty_scale], names=["lv06"],
                workers=[lv06.config.worker], progress=False,
                simulated=[{"profile": "lv06", "seed": 7}])
    print(f"{out}: {summary.steps_written} steps, {summary.shares} shares")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--speed", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=Path("narma.db"))
    args = parser.parse_args()
    args.out.unlink(missing_ok=True)
    asyncio.run(record(args.out, args.steps, args.runs, args.speed))
    report = ar.analyze_files([args.out])          # hardware readout, controls, baselines
    print(report.table())


if __name__ == "__main__":
    main()
