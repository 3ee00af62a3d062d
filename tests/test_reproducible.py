"""Virtual time: the same seeds give a bit-identical run file (pool, unit and experiment on
one virtual event loop, talking through real loopback sockets)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from asic_reservoir.experiment.record import run_experiment
from asic_reservoir.drivers.clock import Clock, run_virtual
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.simulator import UnitConfig, start_units

# Addresses fixed within this process (unit and pool URLs are part of the run file) and
# distinct between processes, so that concurrent test runs on one host do not collide.
_PID = os.getpid()
POOL_HOST = f"127.13.{_PID >> 8 & 255}.{(_PID & 255) or 1}"
UNIT_HOST = f"127.14.{_PID >> 8 & 255}.{(_PID & 255) or 1}"
POOL_PORT, HTTP_PORT = 13333, 13380


async def _record(path: Path) -> None:
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host=POOL_HOST, port=POOL_PORT, lbry_port=None, seed=7), clock=clock)
    await pool.start()
    try:
        config = UnitConfig(model="lv06", seed=5, noise_seed=5, host=UNIT_HOST,
                            pool_url=pool.url, worker="ar.lv06", rpc_port=None,
                            http_port=HTTP_PORT, firmware="axeos-2.15")
        async with start_units([config], clock=clock) as (unit,):
            await run_experiment([unit.url], "frequency+fan", path, steps=40, runs=1, slots=2,
                                 seed=3, step_seconds=5.0, warmup_seconds=20.0,
                                 difficulty_scales=[unit.difficulty_scale], pool=pool,
                                 clock=clock, progress=False, names=["lv06"],
                                 workers=["ar.lv06"], simulated=[{"profile": "lv06", "seed": 5}])
    finally:
        await pool.stop()


def _rows(path: Path) -> dict[str, list]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


def test_same_seeds_give_a_bit_identical_run_file(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    run_virtual(_record(first))
    run_virtual(_record(second))
    a, b = _rows(first), _rows(second)
    assert len(a["steps"]) == 40 and len(a["shares"]) > 0 and len(a["telemetry"]) >= 80
    for table in a:                       # a readable diff first, then the bytes
        assert a[table] == b[table], table
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_ticks_run_ahead_record_what_a_timer_per_tick_records(tmp_path: Path) -> None:
    """The units' ticks run ahead of the loop only where it would have jumped straight to
    them: the run file is the one recorded with a loop iteration per tick."""
    reference, ahead = tmp_path / "reference.db", tmp_path / "ahead.db"
    run_virtual(_record(reference), run_ahead=False)
    run_virtual(_record(ahead), run_ahead=True)
    assert hashlib.sha256(reference.read_bytes()).digest() == \
        hashlib.sha256(ahead.read_bytes()).digest()
