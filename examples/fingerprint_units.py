"""Fingerprint simulated LV06 units: enroll each, then identify and verify a fresh read.

A challenge is a fixed stimulus program (frequency and fan phases); a unit's response is
the thermal, power and share behaviour it provokes, which differs between units through
process variation. The same calls work on real units named by URL (with ``ar.Clock()`` and
``asyncio.run`` instead of the virtual clock this script uses to run at CPU speed).

    python examples/fingerprint_units.py --store fingerprints.db
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import asic_reservoir as ar

SEEDS = (11, 12, 13)   # three simulated units with different process variation


async def read_all(challenge: ar.Challenge, ambient_c: float, workdir: Path, read_no: int,
                   seeds=SEEDS) -> list:
    """One challenge read of every unit (freshly started: a power cycle per read).

    Pool jobs and sensor noise are seeded per read, so the script prints the same every time;
    the reads still differ from each other as reads of a real unit do.
    """
    clock = ar.Clock.virtual()
    tag = f"r{read_no}"
    async with ar.Pool(ar.PoolConfig(port=0, seed=read_no), clock=clock) as pool:
        configs = [ar.UnitConfig("lv06", seed=s, pool_url=pool.url, worker=f"{tag}.{s}",
                                 rpc_port=None, http_port=0, ambient_c=ambient_c,
                                 noise_seed=1000 * read_no + s, firmware="axeos-2.15")
                   for s in seeds]
        async with ar.start_units(configs, clock=clock) as units:
            return list(await asyncio.gather(*[
                ar.read_response(u.url, challenge, pool, clock, workdir / f"{tag}-{s}.db",
                                 name=f"unit{s}", worker=u.config.worker,
                                 difficulty_scale=u.difficulty_scale)
                for s, u in zip(seeds, units)]))


async def main_async(store_path: Path, steps_per_phase: int) -> None:
    challenge = ar.Challenge().shortened(steps_per_phase)
    with tempfile.TemporaryDirectory() as tmp:
        enroll_reads = [await read_all(challenge, 24.0, Path(tmp), 1),
                        await read_all(challenge, 26.0, Path(tmp), 2)]
        probe = (await read_all(challenge, 25.0, Path(tmp), 3, seeds=SEEDS[1:2]))[0]
    with ar.EnrollmentStore(store_path) as store:
        for reads in enroll_reads:
            for response in reads:
                ar.enroll(store, response.conditions["unit"], "sim://lv06", response)
        ranked = ar.identify(store, probe)
        print("identify:", ", ".join(f"{c.name} (distance {c.distance:.3g})" for c in ranked))
        verdict = ar.verify(store, probe, ranked[0].name, far=0.05)
        print(f"verify as {verdict.name}: {'accepted' if verdict.accepted else 'rejected'} "
              f"(distance {verdict.distance:.3g}, threshold {verdict.threshold:.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("fingerprints.db"))
    parser.add_argument("--steps-per-phase", type=int, default=6)
    args = parser.parse_args()
    ar.run_virtual(main_async(args.store, args.steps_per_phase))


if __name__ == "__main__":
    main()
