"""Drivers: telemetry read latency per unit (p50/p99) and sustained reads/s over 50 units, beside pyasic.

The simulated units run in a child process (their servers and tick loops must not share
the measuring event loop); this process only reads. Each unit gets its own loopback
address with the standard ports (HTTP 80, RPC 4028) because pyasic only probes those.
If the standard ports cannot be bound, units use ephemeral ports and the pyasic
column is left out with a note.

One "read" is one full telemetry record: ``Unit.telemetry()`` here, ``get_data()`` in
pyasic (which gathers more: it also fetches settings pages, so it is expected to be
slower; for the LB-Box pyasic's config step fails on the firmware's pool list and is
excluded).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from benchmarks import Figure, quick

LATENCY_HOSTS = {"s9": "127.78.0.1", "lv06": "127.78.0.2", "lbbox": "127.78.0.3"}
FLEET_PREFIX = "127.78.1."
FLEET_MODELS = ("s9", "lv06", "lbbox")
# Units hash almost nothing (tiny hash_scale): the benchmark measures the management APIs,
# not the hashing engine (bench_sim does); 50 units at the automatic budget would need 50 cores.
HASH_SCALE = 1e-12


def _serve(specs: list[tuple[str, str]], standard_ports: bool, hash_scale: float | None,
           conn: Any) -> None:
    logging.disable(logging.WARNING)
    asyncio.run(_serve_async(specs, standard_ports, hash_scale, conn))


async def _serve_async(specs: list[tuple[str, str]], standard_ports: bool,
                       hash_scale: float | None, conn: Any) -> None:
    from asic_reservoir.drivers.stratum import Pool, PoolConfig
    from asic_reservoir.simulator import UnitConfig, start_units

    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0))
    await pool.start()
    configs = [UnitConfig(model=m, seed=i + 1, host=h, speed=1.0, hash_scale=hash_scale,
                          pool_url=pool.lbry_url if m == "lbbox" else pool.url,
                          rpc_port=(4028 if standard_ports else 0) if m != "lv06" else None,
                          http_port=80 if standard_ports else 0, warmup_s=300.0)
               for i, (m, h) in enumerate(specs)]
    try:
        async with start_units(configs) as units:
            conn.send([(u.config.model, u.host, u.url) for u in units])
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    except OSError as exc:
        conn.send(f"cannot start units: {exc}")
    finally:
        await pool.stop()


class SimProcess:
    """Simulated units in a child process; the context value is [(model, host, url)]."""

    def __init__(self, specs: list[tuple[str, str]], hash_scale: float | None = None) -> None:
        self.specs = specs
        self.hash_scale = hash_scale
        self.standard_ports = True
        self.note = ""

    def _start(self, standard_ports: bool) -> Any:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(self.specs, standard_ports, self.hash_scale,
                                                     child), daemon=True)
        self.proc.start()
        if not self.conn.poll(180):
            raise RuntimeError("simulated units did not start within 180 s")
        return self.conn.recv()

    def __enter__(self) -> list[tuple[str, str, str]]:
        reply = self._start(True)
        if isinstance(reply, str):
            self.note = f"pyasic skipped: {reply} (needs ports 80/4028)"
            self.proc.join(10)
            self.standard_ports = False
            reply = self._start(False)
            if isinstance(reply, str):
                raise RuntimeError(reply)
        return reply

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


async def _latencies(read: Callable[[], Awaitable[Any]], n: int) -> tuple[list[float], int]:
    out, errors = [], 0
    for _ in range(n):
        start = time.perf_counter()
        try:
            await read()
        except Exception:  # noqa: BLE001 - a failed read is counted, not fatal
            errors += 1
            continue
        out.append(time.perf_counter() - start)
    return out, errors


async def _rate(reads: list[Callable[[], Awaitable[Any]]], seconds: float
                ) -> tuple[float, int, float]:
    """Every unit polled back-to-back by its own task: (reads/s, errors, client CPU ms per read).

    The servers live in another process, so this process's CPU time is the client's cost.
    """
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def poll(read: Callable[[], Awaitable[Any]]) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            try:
                await read()
                done += 1
            except Exception:  # noqa: BLE001
                errors += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(poll(r) for r in reads))
    cpu_ms = (time.process_time() - cpu) * 1e3 / max(done, 1)
    return done / (time.perf_counter() - start), errors, cpu_ms


async def _pyasic_reader(model: str, host: str) -> tuple[Callable[[], Awaitable[Any]], str]:
    import pyasic

    miner = None
    for _ in range(3):  # identification has its own short timeouts; a busy host can miss one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            miner = await pyasic.get_miner(host)
        if miner is not None:
            break
    if miner is None:
        raise RuntimeError(f"pyasic did not recognise {host}")
    exclude = ["config"] if model == "lbbox" else None

    async def read() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return await miner.get_data(exclude=exclude)
    return read, type(miner).__name__


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


async def _measure_latency(units: list[tuple[str, str, str]], n: int, with_pyasic: bool,
                           note: str) -> list[Figure]:
    from asic_reservoir.drivers.units import open_unit

    figures = []
    for model, host, url in units:
        unit = await open_unit(url)
        try:
            await unit.telemetry()  # warm: identify-free, session open
            ours, our_err = await _latencies(unit.telemetry, n)
        finally:
            await unit.close()
        ref50 = ref99 = None
        extra = note
        if with_pyasic:
            try:
                read, name = await _pyasic_reader(model, host)
                await read()
                theirs, their_err = await _latencies(read, n)
                ref50, ref99 = _p(theirs, 50), _p(theirs, 99)
                extra = f"pyasic as {name}, errors {their_err}/{n}"
            except Exception as exc:  # noqa: BLE001
                extra = f"pyasic failed: {exc}"
        figures.append(Figure(f"{model} telemetry latency p50", _p(ours, 50), "ms",
                              "pyasic get_data p50", ref50, f"{n} reads, errors {our_err}; {extra}"))
        figures.append(Figure(f"{model} telemetry latency p99", _p(ours, 99), "ms",
                              "pyasic get_data p99", ref99))
    return figures


async def _measure_rate(units: list[tuple[str, str, str]], seconds: float, with_pyasic: bool,
                        note: str) -> list[Figure]:
    from asic_reservoir.drivers.units import open_unit

    opened = [await open_unit(url) for _, _, url in units]
    try:
        ours, our_err, our_cpu = await _rate([u.telemetry for u in opened], seconds)
    finally:
        for u in opened:
            await u.close()
    ref = ref_cpu = None
    extra = note
    if with_pyasic:
        try:
            readers = [(await _pyasic_reader(m, h))[0] for m, h, _ in units]
            ref, their_err, ref_cpu = await _rate(readers, seconds)
            extra = f"pyasic errors {their_err}"
        except Exception as exc:  # noqa: BLE001
            extra = f"pyasic failed: {exc}"
    return [Figure(f"telemetry reads/s, {len(units)} units, one process", ours, "reads/s",
                   "pyasic get_data", ref,
                   f"{seconds:g} s, errors {our_err}; servers in one child process; {extra}"),
            Figure("client CPU per telemetry read", our_cpu, "ms", "pyasic get_data", ref_cpu)]


def run() -> list[Figure]:
    n = 30 if quick() else 200
    fleet_size = 12 if quick() else 50
    seconds = 3.0 if quick() else 10.0
    figures: list[Figure] = []
    proc = SimProcess(list(LATENCY_HOSTS.items()), hash_scale=HASH_SCALE)
    with proc as units:
        figures += asyncio.run(_measure_latency(units, n, proc.standard_ports, proc.note))
    fleet = [(FLEET_MODELS[i % 3], f"{FLEET_PREFIX}{i + 1}") for i in range(fleet_size)]
    proc = SimProcess(fleet, hash_scale=HASH_SCALE)
    with proc as units:
        figures += asyncio.run(_measure_rate(units, seconds, proc.standard_ports, proc.note))
    return figures
