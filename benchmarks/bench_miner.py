"""Simulator hashing engine throughput vs a bare hashlib double-SHA loop in the same run.

``miner_engine_rate(seconds, algorithm, ...)`` is reusable (e.g. by the simulator-pace
benchmark) to learn how many genuine hashes per second this machine can give the units.
"""

from __future__ import annotations

import os
import time

from asic_reservoir.drivers.stratum.work import Job, difficulty_to_target
from benchmarks import Figure, hashlib_dsha_rate, quick
from asic_reservoir.simulator.hashing import HashingEngine

TICK_HASHES = 20_000      # total hash budget per engine call, split over the chips


def miner_engine_rate(seconds: float = 1.0, algorithm: str = "sha256d", n_chips: int = 1,
                      roll_versions: bool = False, difficulty: float = 1e-3) -> float:
    """Genuine hashes per second of :class:`HashingEngine` on this machine.

    Mirrors the unit's use: a job with two merkle branches, the budget split over
    ``n_chips`` per call, results screened at ``difficulty`` (a realistic, sparse target).
    """
    claimtrie = os.urandom(32) if algorithm == "lbry" else None
    job = Job("bench", os.urandom(32), os.urandom(42), os.urandom(30),
              (os.urandom(32), os.urandom(32)), ntime=0x65000000, claimtrie=claimtrie,
              algorithm=algorithm)
    engine = HashingEngine(n_chips, algorithm, roll_versions=roll_versions)
    engine.set_work(job, os.urandom(4), 4, 0x1FFFE000 if roll_versions else 0)
    factor = 256.0 if algorithm == "lbry" else 1.0
    target = difficulty_to_target(difficulty, factor)
    per_chip = max(1, TICK_HASHES // n_chips) if algorithm == "sha256d" else \
        max(1, TICK_HASHES // 8 // n_chips)
    budgets = [per_chip] * n_chips
    engine.search([1] * n_chips, target)      # warm up: chip cursors exist for a whole job
    done = engine.hashes
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        engine.search(budgets, target)
        now = time.perf_counter()
        if now >= deadline:
            return (engine.hashes - done) / (now - start)


def _interleaved(seconds: float, **engine_args) -> tuple[float, float]:
    """(engine rate, reference rate) from alternating short bursts.

    Other processes share the cores; alternating the two loops in 0.1 s bursts exposes both
    to the same load, so their ratio stays meaningful on a busy machine.
    """
    engine_time = reference_time = engine_hashes = reference_hashes = 0.0
    bursts = max(1, int(seconds / 0.2))
    for _ in range(bursts):
        rate = hashlib_dsha_rate(0.1)
        reference_hashes += rate * 0.1
        reference_time += 0.1
        rate = miner_engine_rate(0.1, **engine_args)
        engine_hashes += rate * 0.1
        engine_time += 0.1
    return engine_hashes / engine_time, reference_hashes / reference_time


def run() -> list[Figure]:
    seconds = 0.6 if quick() else 3.0
    goal = "goal >= 0.75"
    figures = []
    for name, args, note in (
            ("engine sha256d, 1 chip", dict(n_chips=1), goal),
            ("engine sha256d, 189 chips (S9)", dict(n_chips=189), goal),
            ("engine sha256d, version rolling (LV06)", dict(n_chips=1, roll_versions=True), goal),
            ("engine lbry, 1 chip", dict(algorithm="lbry"),
             "LBRY pow: 4 SHA-2 + 2 RIPEMD-160 per nonce")):
        rate, reference = _interleaved(seconds, **args)
        figures.append(Figure(name, rate, "hash/s", "hashlib dsha", reference, note))
    return figures
