"""A NARMA-10 experiment on one simulated LV06, scored beside its baselines.

Everything runs on loopback: the toolkit's pool, a simulated Lucky Miner LV06 (AxeOS HTTP API,
genuine SHA-256d shares), the experiment loop writing a SQLite run file, then the analysis.
All of it shares one virtual clock, which jumps ahead whenever nothing is running, so the
script runs as fast as the CPU allows. At the bench, use ``ar.Clock()`` (wall time) and
``asyncio.run``, and point ``run_experiment`` at a real unit's URL (``lv06://192.168.1.50``)
with a pool address the unit can reach.

    python examples/narma_on_simulator.py --steps 1000 --runs 5 --out narma.db
"""

from __future__ import annotations

import argparse
from pathlib import Path

import asic_reservoir as ar


async def record(out: Path, steps: int, runs: int) -> None:
    clock = ar.Clock.virtual()                     # the virtual loop's clock (see ar.run_virtual)
    async with ar.Pool(ar.PoolConfig(port=0, seed=7), clock=clock) as pool:
        # current AxeOS: a stock LV06 loads a new clock only at restart (no frequency input)
        unit_config = ar.UnitConfig("lv06", seed=7, pool_url=pool.url, rpc_port=None, http_port=0,
                                    noise_seed=7, firmware="axeos-2.15")
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
    parser.add_argument("--out", type=Path, default=Path("narma.db"))
    args = parser.parse_args()
    args.out.unlink(missing_ok=True)
    ar.run_virtual(record(args.out, args.steps, args.runs))
    report = ar.analyze_files([args.out])          # hardware readout, controls, baselines
    print(report.table())


if __name__ == "__main__":
    main()
