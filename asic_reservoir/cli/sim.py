"""``asic-reservoir sim``: simulated units on loopback addresses.

Each unit gets its own loopback address (127.0.0.2, 127.0.0.3, ... by default), so
several units serve the real ports (RPC 4028, HTTP 80) side by side, as units on a LAN
would. Unit *i* uses identity seed ``--seed + i``. The LB-Box mines LBRY and connects to
``--lbry-pool``; by default that is the ``--pool`` host at port + 1 (start the pool with
``asic-reservoir pool --port P --lbry-port P+1``).

Share statistics are those of the real hardware when the pool's difficulty is the real
difficulty times the unit's printed ``difficulty_scale``; a pool at one small difficulty
(e.g. ``--difficulty 1e-9``) serves all three units at once.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import signal
import time
from urllib.parse import urlsplit

from asic_reservoir.cli import CommandError
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.progress import advance_to, progress_bar
from asic_reservoir.simulator.miner import MinerError, parse_pool_url
from asic_reservoir.simulator.firmware.generations import GENERATIONS, generation
from asic_reservoir.simulator.profiles import MODELS
from asic_reservoir.simulator.unit import SimulatedUnit, UnitConfig, start_units

DEFAULT_HOST_BASE = "127.0.0."
DEFAULT_HOST_START = 2


def sim_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", default="s9,lv06,lbbox",
                        help=f"comma-separated models ({', '.join(MODELS)}); repeats allowed")
    parser.add_argument("--pool", required=True, help="stratum+tcp://HOST:PORT (SHA-256d units)")
    parser.add_argument("--lbry-pool", default=None,
                        help="pool for the LB-Box (default: --pool host at port + 1)")
    parser.add_argument("--hosts", default=None,
                        help="comma-separated loopback addresses, one per unit "
                             "(default 127.0.0.2, 127.0.0.3, ...)")
    parser.add_argument("--seed", type=int, default=1, help="identity seed of the first unit")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    parser.add_argument("--hash-scale", type=float, default=None,
                        help="hash_scale for every unit (default: automatic CPU budget)")
    parser.add_argument("--rpc-port", type=int, default=4028, help="cgminer RPC port (S9, LB-Box)")
    parser.add_argument("--http-port", type=int, default=80, help="web API port")
    parser.add_argument("--ambient", type=float, default=25.0, help="ambient temperature, degC")
    parser.add_argument("--ambient-drift", type=float, default=0.0,
                        help="std of slow ambient drift, degC")
    parser.add_argument("--firmware", default=None,
                        help="firmware generation per unit: a comma-separated list aligned with "
                             "--units, or MODEL=GENERATION pairs (default: what a stock unit "
                             f"ships; choices: {', '.join(sorted(GENERATIONS))})")
    parser.add_argument("--serial", action="store_true", help="LV06: open a pty serial console")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many wall seconds (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="print unit list and totals as JSON")
    parser.add_argument("--allow-nonloopback", action="store_true",
                        help="permit non-loopback --hosts (exposes the units on a network)")


def _lbry_default(pool: str) -> str:
    host, port = parse_pool_url(pool)
    scheme = urlsplit(pool).scheme or "stratum+tcp"
    return f"{scheme}://{host}:{port + 1}"


def build_configs(args: argparse.Namespace) -> list[UnitConfig]:
    """Unit configurations from the command line; ValueError with a clear message."""
    models = [m.strip().lower() for m in args.units.split(",") if m.strip()]
    if not models:
        raise ValueError("--units names no unit")
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    try:
        parse_pool_url(args.pool)
        lbry_pool = args.lbry_pool or _lbry_default(args.pool)
        parse_pool_url(lbry_pool)
    except MinerError as exc:
        raise ValueError(str(exc)) from None
    if args.hosts:
        hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
        if len(hosts) != len(models):
            raise ValueError(f"--hosts lists {len(hosts)} addresses for {len(models)} units")
    else:
        hosts = [f"{DEFAULT_HOST_BASE}{DEFAULT_HOST_START + i}" for i in range(len(models))]
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"--hosts entry {host!r} is not an IP address") from None
        if not address.is_loopback and not args.allow_nonloopback:
            raise ValueError(f"{host} is not a loopback address; pass --allow-nonloopback "
                             "to expose simulated units on a network")
    if len(set(hosts)) != len(hosts) and (args.rpc_port or args.http_port):
        raise ValueError("units on the same address need port 0 (ephemeral) to coexist")
    firmware = _firmware_per_unit(args.firmware, models)
    counts: dict[str, int] = {}
    configs = []
    for i, (model, host) in enumerate(zip(models, hosts)):
        counts[model] = counts.get(model, 0) + 1
        worker = f"{model}.sim" if counts[model] == 1 else f"{model}.sim{counts[model]}"
        configs.append(UnitConfig(
            model=model, seed=args.seed + i, host=host,
            pool_url=lbry_pool if model == "lbbox" else args.pool, worker=worker,
            speed=args.speed, hash_scale=args.hash_scale, rpc_port=args.rpc_port,
            http_port=args.http_port, ambient_c=args.ambient, ambient_drift_c=args.ambient_drift,
            serial=args.serial and model == "lv06", firmware=firmware[i]))
    return configs


def _firmware_per_unit(text: str | None, models: list[str]) -> list[str | None]:
    """``--firmware`` -> one generation name (or None: stock) per unit; ValueError names choices."""
    if not text:
        return [None] * len(models)
    items = [t.strip() for t in text.split(",") if t.strip()]
    if items and all("=" in t for t in items):
        by_model = dict(t.split("=", 1) for t in items)
        unknown = sorted(set(by_model) - set(models))
        if unknown:
            raise ValueError(f"--firmware names models without a unit: {unknown}")
        chosen = [by_model.get(m) for m in models]
    elif len(items) == len(models):
        chosen = [None if t in ("stock", "default") else t for t in items]
    else:
        raise ValueError(f"--firmware lists {len(items)} generations for {len(models)} units "
                         "(or use MODEL=GENERATION pairs)")
    for model, name in zip(models, chosen):
        generation(model, name)       # ValueError with the choices
    return chosen


def describe(unit: SimulatedUnit) -> dict:
    return {"model": unit.profile.model, "firmware": unit.generation.name,
            "worker": unit.config.worker, "seed": unit.config.seed,
            "url": unit.url, "pool": unit.miner.pool_url, "hash_scale": unit.hash_scale,
            "difficulty_scale": unit.difficulty_scale, "serial": unit.serial_path}


def totals(unit: SimulatedUnit) -> dict:
    m = unit.miner
    return {"worker": unit.config.worker, "accepted": m.accepted, "rejected": m.rejected,
            "stale": m.stale, "hw_errors": int(unit.physics.hw_errors_chain.sum()),
            "hashes": m.hashes_done, "ticks": unit.stats.ticks, "late_ticks": unit.stats.late_ticks,
            "tick_lag_mean_s": unit.stats.lag_mean_s}


async def _run(args: argparse.Namespace, configs: list[UnitConfig]) -> int:
    clock = Clock(args.speed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with start_units(configs, clock=clock) as units:
        if args.json:
            print(json.dumps({"units": [describe(u) for u in units]}), flush=True)
        else:
            for u in units:
                d = describe(u)
                print(f"{d['url']:<40} {d['worker']:<10} seed {d['seed']:<4} pool {d['pool']}  "
                      f"difficulty_scale {d['difficulty_scale']:.4g}"
                      + (f"  serial {d['serial']}" if d["serial"] else ""), flush=True)
            print("pool difficulty D acts like real difficulty D / difficulty_scale on each unit",
                  flush=True)
        progress = progress_bar(int(args.duration) if args.duration else 1, "sim", unit="s",
                                enabled=args.duration is not None and not args.json)
        start = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            elapsed = time.monotonic() - start
            if args.duration is not None:
                advance_to(progress, min(int(elapsed), progress.total),
                           **{u.config.worker: u.miner.accepted for u in units})
                if elapsed >= args.duration:
                    break
        progress.close()
        result = [totals(u) for u in units]
    if args.json:
        print(json.dumps({"totals": result}))
    else:
        for t in result:
            print(f"{t['worker']:<10} accepted {t['accepted']:>7}  rejected {t['rejected']:>5}  "
                  f"stale {t['stale']:>4}  hw_errors {t['hw_errors']:>6}  hashes {t['hashes']:>10}")
    return 0


def sim_main(args: argparse.Namespace) -> int:
    try:
        configs = build_configs(args)
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from exc
    try:
        return asyncio.run(_run(args, configs))
    except OSError as exc:
        raise CommandError(f"cannot open a unit's port: {exc} (ports below 1024 need "
                           "privileges; try --http-port 8080)") from exc

