"""Three simulated units mining on the pool: simulated seconds per wall second, virtual vs wall.

One process, one thread (asyncio): the in-process pool on loopback, an S9, an LV06 and an
LB-Box with 0.1 s physics ticks and their auto hash budgets, each read through its real
driver (cgminer RPC / AxeOS HTTP / Goldshell HTTP) once per simulated 5 s. The same set-up
runs twice in the same process: in virtual time (the loop jumps to the next event; the
figure is simulated seconds per wall second, CPU-bound) and in wall-clock mode at
``--speed`` :data:`WALL_SPEED` (the reference: at most the speed, less when the host cannot
keep pace, which the tick pace shows). On a shared host the wall figures follow the share of
a core the process gets; simulated seconds per CPU second are printed too. The virtual run
is repeated with a loop iteration per tick (``run_virtual(..., run_ahead=False)``, what
the units did before their ticks ran ahead of the loop), the reference of that saving.

Also the cost of one 0.1 s physics tick per model (step plus the miner's budget), as a
multiple of one numpy ufunc call on the S9's 189 chips measured in the same run: a tick's
cost is the count of numpy calls it makes, not the chip count. Their sum over the three
units, ten ticks each per simulated second, is the ceiling the physics alone sets (pool,
hashing, sockets and telemetry free), printed beside the whole run's simulated seconds per
CPU second.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from benchmarks import Figure, quick

from asic_reservoir.drivers.clock import Clock, run_virtual
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.drivers.units import open_unit
from asic_reservoir.simulator import UnitConfig, start_units
from asic_reservoir.simulator.physics import UnitPhysics
from asic_reservoir.simulator.profiles import profile
from asic_reservoir.simulator.unit import TICK_S

WALL_SPEED = 100.0
TELEMETRY_EVERY_S = 5.0
MODELS = ("s9", "lv06", "lbbox")
REAL_DIFFICULTY = {"s9": 1024.0, "lv06": 256.0, "lbbox": 16.0}   # typical stock pool settings


async def _poll(url: str, clock: Clock, until: float, counts: list[int]) -> None:
    driver = await open_unit(url, timeout=10.0)
    try:
        while clock.now() < until:
            await driver.telemetry()
            counts[0] += 1
            await clock.sleep(TELEMETRY_EVERY_S)
    finally:
        await driver.close()


async def _run(clock: Clock, sim_seconds: float) -> dict:
    pool = Pool(PoolConfig(port=0, lbry_port=0, difficulty=1.0, seed=1), clock=clock)
    await pool.start()
    cfgs = [UnitConfig(model=m, seed=i + 1, noise_seed=i + 1, speed=clock.speed, rpc_port=0,
                       http_port=0, pool_url=pool.lbry_url if m == "lbbox" else pool.url)
            for i, m in enumerate(MODELS)]
    try:
        async with start_units(cfgs, clock=clock) as units:
            for u in units:
                await pool.set_difficulty(REAL_DIFFICULTY[u.profile.model] * u.difficulty_scale,
                                          worker=u.config.worker)
            for u in units:
                await pool.wait_for_session(worker=u.config.worker, timeout=60.0)
            t0 = clock.now()
            acc0 = [u.miner.accepted for u in units]
            hashes0 = sum(u.miner.hashes_done for u in units)
            ticks0 = [u.stats.ticks for u in units]
            reads = [0]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(_poll(u.url, clock, t0 + sim_seconds, reads) for u in units))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            sim = clock.now() - t0
            return {
                "sim_per_wall": sim / wall, "wall": wall, "sim": sim, "cpu_share": cpu / wall,
                "sim_per_cpu": sim / cpu,
                "pace": min((u.stats.ticks - t) * u.tick_s / sim for u, t in zip(units, ticks0)),
                "shares": sum(u.miner.accepted - a for u, a in zip(units, acc0)),
                "hashes": sum(u.miner.hashes_done for u in units) - hashes0,
                "reads": reads[0], "rejected": pool.totals()["rejected"],
            }
    finally:
        await pool.stop()


def _best_of(fn, n: int, repeats: int = 5) -> float:
    """CPU seconds per call of ``fn``: the best of ``repeats`` batches of ``n`` (CPU time, so
    that time spent waiting for a shared core does not count)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best


def tick_costs(n: int) -> dict[str, float]:
    """Seconds per 0.1 s physics tick of each model, and of one numpy add on 189 floats."""
    a, b = np.ones(189), np.ones(189)
    out = {"numpy call": _best_of(lambda: np.add(a, b), 20 * n)}
    for model in MODELS:
        ph = UnitPhysics(profile(model), 1, noise_seed=1)
        ph.sample_nonces = False
        ph.set_hashing(True)
        ph.step(600.0)

        def tick(ph=ph) -> None:
            ph.step(0.1)
            ph.valid_rates_hs()
        out[model] = _best_of(tick, n)
    return out


def run() -> list[Figure]:
    sim_s = 300.0 if quick() else 3000.0
    virtual = run_virtual(_run(Clock.virtual(), sim_s))
    per_tick = run_virtual(_run(Clock.virtual(), sim_s), run_ahead=False)
    wall = asyncio.run(_run(Clock(WALL_SPEED), WALL_SPEED * (3.0 if quick() else 10.0)))
    figures = [
        Figure("3 units, virtual time: simulated s per wall s", virtual["sim_per_wall"], "x",
               f"wall-clock mode at speed {WALL_SPEED:g}", wall["sim_per_wall"],
               note=f"{virtual['sim']:.0f} simulated s in {virtual['wall']:.1f} s wall, "
                    f"CPU {virtual['cpu_share']:.2f} core"),
        Figure("3 units, virtual time: simulated s per CPU s", virtual["sim_per_cpu"], "x",
               "a loop iteration per tick", per_tick["sim_per_cpu"],
               note="what two free cores give per process"),
        Figure("wall-clock mode: ticks done / ticks due", wall["pace"], "ratio", "on schedule", 1.0,
               note=f"CPU {wall['cpu_share']:.2f} core"),
    ]
    for name, r in (("virtual", virtual), ("wall-clock", wall)):
        figures.append(Figure(f"{name}: accepted shares per simulated s", r["shares"] / r["sim"],
                              "share/s", note=f"{r['reads']} telemetry reads, "
                                              f"{r['hashes'] / r['sim']:,.0f} hashes per simulated s, "
                                              f"pool rejected {r['rejected']}"))
    costs = tick_costs(200 if quick() else 2000)
    for model in MODELS:
        figures.append(Figure(f"{model} physics tick (0.1 s)", costs[model] * 1e6, "us",
                              "one numpy call on 189 floats", costs["numpy call"] * 1e6,
                              note="the ratio: numpy-call equivalents per tick"))
    physics_cpu = sum(costs[m] for m in MODELS) / TICK_S      # CPU s per simulated s
    figures.append(Figure("3 units' physics alone: simulated s per CPU s", 1.0 / physics_cpu, "x",
                          "the whole run in virtual time", virtual["sim_per_cpu"],
                          note="the ceiling the ticks set with everything else free"))
    return figures
