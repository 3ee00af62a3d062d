"""PUF metrics on a fleet: simulated units started in-process (a power cycle per read,
ambient shifted between reads, all in virtual time) or units named by URL, read in rounds;
and the reads of one unit for enroll/identify/verify: a unit named by URL, or one the toolkit
simulates itself, named ``sim:MODEL:SEED`` (fingerprinting scripts in CI: no units in another
process, no wall clock, the same reads every time).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import numpy as np

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.progress import progress_bar
from asic_reservoir.puf.identify import Challenge, PufError, Response, read_response
from asic_reservoir.puf.metrics import evaluate_fleet
from asic_reservoir.simulator import UnitConfig, start_units
from asic_reservoir.simulator.firmware.generations import DEMO_FIRMWARE
from asic_reservoir.simulator.names import SimUnitName
from asic_reservoir.simulator.profiles import PROFILES
from asic_reservoir.simulator.unit import auto_hash_scale


@dataclass
class FleetOptions:
    devices: int = 20
    reads: int = 5
    enroll_reads: int = 2         # >= 2 lets the metric learn each feature's own noise
    ambient_drift_c: float = 3.0
    model: str = "lv06"
    challenge: Challenge = field(default_factory=Challenge)
    seed: int = 0
    concurrency: int = 10
    hash_budget: float | None = None   # genuine hashes per simulated second (None: auto)
    verify_far: float = 0.01      # FAR target of the verify rule tested on held-out reads


MAX_FLEET = 10_000
"""Largest simulated fleet: ``--seed`` s owns identity seeds 1000 + s * MAX_FLEET + i."""


def fleet_seeds(fleet_seed: int, devices: int) -> list[int]:
    """Identity seeds of a simulated fleet; fleets of different ``--seed`` share no unit."""
    if fleet_seed < 0 or not 1 <= devices <= MAX_FLEET:
        raise PufError(f"a simulated fleet needs --seed >= 0 and 1..{MAX_FLEET} devices, got "
                       f"seed {fleet_seed}, {devices} devices")
    return [1000 + fleet_seed * MAX_FLEET + i for i in range(devices)]


def _noise_seed(fleet_seed: int, read: int, unit_seed: int, *stream: int) -> int:
    """Sensor-noise seed of one read of one unit: fixed by ``--seed``, different per read
    (and per ``stream``: the ``puf`` actions on ``sim:`` units never share a read)."""
    return int(np.random.SeedSequence([fleet_seed, read, unit_seed, *stream])
               .generate_state(1)[0])


@dataclass(frozen=True)
class _Read:
    """One challenge read of simulated units: who, at which ambient, with which noise."""

    model: str
    seeds: Sequence[int]
    ambients: Sequence[float]
    noise_seeds: Sequence[int]
    challenge: Challenge
    ambient_drift_c: float          # drift during the read
    hash_budget: float | None


@contextlib.asynccontextmanager
async def _reading(pool: Pool, reads: int, progress: bool) -> AsyncIterator[tuple[Path, Any]]:
    """The pool started, a scratch directory for the reads' run files and a progress bar over
    ``reads`` reads; all closed however the reads end."""
    await pool.start()
    bar = progress_bar(reads, "puf reads", enabled=progress, unit="read")
    try:
        with tempfile.TemporaryDirectory(prefix="asic-reservoir-puf-") as tmp:
            yield Path(tmp), bar
    finally:
        bar.close()
        await pool.stop()


async def _read_simulated(spec: _Read, pool: Any, clock: Clock, workdir: Path,
                          tag: str) -> list[Response]:
    """One challenge read of freshly started simulated units (a power cycle per read)."""
    scale = auto_hash_scale(PROFILES[spec.model], spec.hash_budget)
    configs = [UnitConfig(model=spec.model, seed=s, host="127.0.0.1",
                          pool_url=pool.lbry_url if spec.model == "lbbox" else pool.url,
                          worker=f"puf.{tag}.{i}", hash_scale=scale,
                          rpc_port=0, http_port=0, ambient_c=a,
                          ambient_drift_c=spec.ambient_drift_c,
                          noise_seed=n, firmware=DEMO_FIRMWARE.get(spec.model))
               for i, (s, a, n) in enumerate(zip(spec.seeds, spec.ambients, spec.noise_seeds))]
    async with start_units(configs, clock=clock) as units:
        jobs = [read_response(u.url, spec.challenge, pool, clock, workdir / f"{tag}-{i}.db",
                              name=f"d{s}", worker=u.config.worker,
                              difficulty_scale=u.difficulty_scale,
                              simulated={"profile": spec.model, "seed": s})
                for i, (s, u) in enumerate(zip(spec.seeds, units))]
        return list(await asyncio.gather(*jobs))


def _matrix(responses: Sequence[Response]) -> tuple[tuple[str, ...], np.ndarray]:
    common = set(responses[0].feature_names)
    for r in responses[1:]:
        common &= set(r.feature_names)
    names = tuple(n for n in responses[0].feature_names if n in common)
    rows = []
    for r in responses:
        index = {n: i for i, n in enumerate(r.feature_names)}
        rows.append(r.values[[index[n] for n in names]])
    x = np.array(rows)
    finite = np.all(np.isfinite(x), axis=0)
    return tuple(n for n, f in zip(names, finite) if f), x[:, finite]


def _fleet_metrics(rounds: list[list[Response]], enroll_reads: int, seed: int,
                   verify_far: float = 0.01) -> dict:
    """Metrics from ``rounds[r][d]`` = read ``r`` of device ``d``; the first rounds enroll."""
    devices = len(rounds[0])
    flat = [resp for round_ in rounds for resp in round_]
    names, x = _matrix(flat)
    x = x.reshape(len(rounds), devices, -1)
    groups = [x[:enroll_reads, d] for d in range(devices)]
    tests = x[enroll_reads:].reshape(-1, x.shape[-1])
    owner = np.tile(np.arange(devices), len(rounds) - enroll_reads)
    metrics = evaluate_fleet(groups, tests, owner, seed=seed, verify_far=verify_far)
    return {"features": len(names), "metrics": metrics.as_dict()}


async def evaluate_simulated_fleet(opts: FleetOptions, progress: bool = True) -> dict:
    """Enroll ``devices`` simulated units, re-read each ``reads`` times under ambient drift.

    Pool, units and reads run in virtual time: await it under
    :func:`~asic_reservoir.drivers.clock.run_virtual`."""
    rng = np.random.default_rng(opts.seed)
    seeds = fleet_seeds(opts.seed, opts.devices)
    clock = Clock.virtual()
    # seeded pool (extranonces, jobs) + seeded units + virtual time: the same --seed gives
    # the same result
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0, seed=opts.seed), clock=clock)
    total_reads = opts.enroll_reads + opts.reads
    rounds: list[list[Response]] = []
    async with _reading(pool, opts.devices * total_reads, progress) as (workdir, bar):
        for read in range(total_reads):
            ambients = 25.0 + rng.uniform(-opts.ambient_drift_c, opts.ambient_drift_c,
                                          opts.devices)
            rounds.append([])
            for lo in range(0, opts.devices, opts.concurrency):
                idx = list(range(lo, min(lo + opts.concurrency, opts.devices)))
                spec = _Read(opts.model, [seeds[i] for i in idx],
                             [float(ambients[i]) for i in idx],
                             [_noise_seed(opts.seed, read, seeds[i]) for i in idx],
                             opts.challenge, opts.ambient_drift_c / 10, opts.hash_budget)
                rounds[-1] += await _read_simulated(spec, pool, clock, workdir,
                                                    f"r{read}b{lo}")
                bar.update(len(idx))
    return {"fleet": f"sim:{opts.devices}", "model": opts.model, "reads": opts.reads,
            "ambient_drift_c": opts.ambient_drift_c, "challenge_steps": opts.challenge.steps,
            "challenge_version": opts.challenge.version, "enroll_reads": opts.enroll_reads,
            **_fleet_metrics(rounds, opts.enroll_reads, opts.seed, opts.verify_far)}


async def evaluate_units(urls: Sequence[str], challenge: Challenge, *, reads: int = 5,
                         enroll_reads: int = 2, speed: float = 1.0,
                         difficulty_scale: float = 1.0, pool_host: str = "127.0.0.1",
                         pool_port: int = 0, lbry_port: int = 0, seed: int = 0,
                         verify_far: float = 0.01,
                         progress: bool = True) -> dict:
    """The same metrics on units named by URL (real or simulated elsewhere), read in
    rounds: every unit once per round, concurrently, on one pool. On a virtual-time loop
    (units simulated in this process) the reads run in virtual time and ``speed`` is unused.
    ``seed`` fixes the pool's jobs and the metrics' resampling: simulated units with fixed noise
    seeds then give the same result every run."""
    if len(urls) < 2:
        raise PufError("a fleet needs at least two units")
    clock = Clock.for_running_loop(speed)
    pool = Pool(PoolConfig(host=pool_host, port=pool_port, lbry_port=lbry_port, seed=seed),
                clock=clock)
    total = enroll_reads + reads
    rounds: list[list[Response]] = []
    async with _reading(pool, len(urls) * total, progress) as (workdir, bar):
        for read in range(total):
            rounds.append(list(await asyncio.gather(*[
                read_response(url, challenge, pool, clock, workdir / f"r{read}-{i}.db",
                              name=f"u{i}", difficulty_scale=difficulty_scale)
                for i, url in enumerate(urls)])))
            bar.update(len(urls))
    models = sorted({r.model for r in rounds[0]})
    if len(models) > 1:
        raise PufError(f"a fleet must be one model, got {models}")
    return {"fleet": list(urls), "model": models[0], "reads": reads,
            "challenge_steps": challenge.steps, "challenge_version": challenge.version,
            "enroll_reads": enroll_reads, **_fleet_metrics(rounds, enroll_reads, seed, verify_far)}


async def read_unit(url: str, challenge: Challenge, reads: int, *, name: str = "unit",
                    speed: float = 1.0, difficulty_scale: float = 1.0,
                    pool_host: str = "127.0.0.1", pool_port: int = 0, lbry_port: int = 0,
                    progress: bool = False) -> list[Response]:
    """``reads`` challenge reads of the unit at ``url`` (on the network, or simulated in
    another process) on a pool of its own, in wall time times ``speed``."""
    clock = Clock(speed)
    pool = Pool(PoolConfig(host=pool_host, port=pool_port, lbry_port=lbry_port), clock=clock)
    async with _reading(pool, reads, False) as (workdir, _):
        return [await read_response(url, challenge, pool, clock, workdir / f"challenge{i}.db",
                                    name=name, difficulty_scale=difficulty_scale,
                                    progress=progress)
                for i in range(reads)]


# ----------------------------------------------------------------- one unit named sim:MODEL:SEED

async def read_simulated_unit(unit: SimUnitName, challenge: Challenge, reads: int, *,
                              seed: int = 0, stream: int = 0, ambient_drift_c: float = 3.0,
                              hash_budget: float | None = None,
                              progress: bool = False) -> list[Response]:
    """``reads`` challenge reads of ``unit``, each a power cycle at ambient 25 +-
    ``ambient_drift_c`` C, with sensor noise and ambient fixed by (``seed``, ``stream``, read):
    the same arguments give the same responses. Runs in virtual time: await it under
    :func:`~asic_reservoir.drivers.clock.run_virtual`."""
    if reads < 1:
        raise PufError("a read needs reads >= 1")
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0, seed=seed), clock=clock)
    responses: list[Response] = []
    async with _reading(pool, reads, progress) as (workdir, bar):
        for read in range(reads):
            noise = _noise_seed(seed, read, unit.seed, stream)
            draw = np.random.default_rng(_noise_seed(seed, read, unit.seed, stream, 1))
            ambient = 25.0 + draw.uniform(-ambient_drift_c, ambient_drift_c)
            spec = _Read(unit.model, [unit.seed], [float(ambient)], [noise], challenge,
                         ambient_drift_c / 10, hash_budget)
            responses += await _read_simulated(spec, pool, clock, workdir, f"r{read}")
            bar.update(1)
    return responses
