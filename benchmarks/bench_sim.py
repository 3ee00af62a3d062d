"""Three simulated units at speed 100 on one core: pace, CPU share, share flow, engine rate.

One process, one thread (asyncio): an in-process pool on loopback and an S9, an LV06 and
an LB-Box at ``--speed 100``. Keeping real-time pace means every unit runs the ticks its
clock schedules (ratio 1.0; a late tick integrates the longer interval, so simulated time
is never lost, but the lag shows) with tick lag under a tick period, while shares keep
arriving at the pool. CPU share is process time / wall time (the pool is included; the
reference is one full core). On a machine shared with other work the process may get
less than a core: then lag grows although the tick CPU stays well below one core.
"""

from __future__ import annotations

import asyncio
import time

from asic_reservoir.drivers.clock import Clock
from benchmarks import Figure, hashlib_dsha_rate, quick
from benchmarks.bench_miner import miner_engine_rate
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.simulator import UnitConfig, start_units

SPEED = 100.0
REAL_DIFFICULTY = {"s9": 1024.0, "lv06": 256.0, "lbbox": 16.0}   # typical stock pool settings


async def _run(seconds: float) -> dict:
    clock = Clock(SPEED)
    pool = Pool(PoolConfig(port=0, lbry_port=0, difficulty=1.0), clock=clock)
    await pool.start()
    cfgs = [UnitConfig(model=m, seed=i + 1, speed=SPEED, rpc_port=0, http_port=0,
                       pool_url=pool.lbry_url if m == "lbbox" else pool.url)
            for i, m in enumerate(("s9", "lv06", "lbbox"))]
    try:
        async with start_units(cfgs, clock=clock) as units:
            for u in units:
                await pool.set_difficulty(REAL_DIFFICULTY[u.profile.model] * u.difficulty_scale,
                                          worker=u.config.worker)
            await asyncio.sleep(1.0)                       # connect and settle
            clock0 = clock.now()
            acc0 = [u.miner.accepted for u in units]
            hashes0 = [u.miner.hashes_done for u in units]
            for u in units:
                u.stats.__init__()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            clock_dt = clock.now() - clock0
            out = {
                "cpu_share": cpu / wall, "wall": wall, "tick_wall_s": units[0].clock.wall_seconds(
                    units[0].tick_s),
                "pace": [u.stats.ticks * u.tick_s / clock_dt for u in units],
                "tick_cpu": [u.stats.cpu_s / wall for u in units],
                "lag_mean": [u.stats.lag_mean_s for u in units],
                "lag_max": [u.stats.lag_max_s for u in units],
                "late": [u.stats.late_ticks / max(u.stats.ticks, 1) for u in units],
                "shares_per_s": [(u.miner.accepted - a) / wall for u, a in zip(units, acc0)],
                "hashes_per_s": sum(u.miner.hashes_done - h for u, h in zip(units, hashes0)) / wall,
                "rejected": pool.totals()["rejected"],
                "models": [u.profile.model for u in units],
            }
    finally:
        await pool.stop()
    return out


def run() -> list[Figure]:
    seconds = 4.0 if quick() else 20.0
    r = asyncio.run(_run(seconds))
    figures = [
        Figure("3 units @100x: CPU share (process/wall)", r["cpu_share"], "core", "one core", 1.0,
               note=f"{r['wall']:.1f} s, pool in the same process"),
        Figure("3 units @100x: genuine hashes/s (all units)", r["hashes_per_s"], "hash/s",
               "hashlib dsha", hashlib_dsha_rate(0.3 if quick() else 1.0)),
    ]
    for i, model in enumerate(r["models"]):
        figures += [
            Figure(f"{model}: ticks done / ticks due", r["pace"][i], "ratio", "on schedule", 1.0),
            Figure(f"{model}: tick CPU (physics + hashing)", r["tick_cpu"][i], "core", "one core", 1.0),
            Figure(f"{model}: tick lag mean", r["lag_mean"][i] * 1e3, "ms", "tick period",
                   r["tick_wall_s"] * 1e3, note=f"max {r['lag_max'][i] * 1e3:.1f} ms, "
                                                f"late ticks {100 * r['late'][i]:.1f} %"),
            Figure(f"{model}: accepted shares/s", r["shares_per_s"][i], "share/s",
                   note=f"pool rejected {r['rejected']} in total"),
        ]
    engine = miner_engine_rate(0.5 if quick() else 2.0, "sha256d", n_chips=189)
    figures.append(Figure("hashing engine, 189 chips (sha256d)", engine, "hash/s", "hashlib dsha",
                          hashlib_dsha_rate(0.5 if quick() else 2.0)))
    return figures
