"""``asic-reservoir probe`` and ``asic-reservoir scan``: find units and read them once.

``scan`` talks only to the range the user names, refuses ranges larger than a /16
unless ``--force`` is given, and bounds its concurrency and per-host time.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from asic_reservoir.cli import CommandError
from asic_reservoir.progress import progress_bar
from asic_reservoir.drivers.capture import capture, write_capture
from asic_reservoir.drivers.errors import UnitError
from asic_reservoir.drivers.units import HTTP_PORT, RPC_PORT, Identity, identify_ports, open_unit

MAX_PREFIX_V4 = 16      # larger ranges need --force
MAX_HOSTS_V6 = 65536
DEFAULT_PORTS = (HTTP_PORT, RPC_PORT)


def _ports(text: str) -> list[int]:
    try:
        ports = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"ports must be comma-separated integers: {text!r}") from None
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports must be in 1..65535: {text!r}")
    return ports


# ----------------------------------------------------------------------- probe

def probe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="HOST (identified automatically) or a unit URL "
                                       "(s9://HOST[:RPC][?http=P], lv06://HOST[:HTTP], "
                                       "lbbox://HOST[:HTTP][?rpc=P], auto://HOST)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rpc-port", type=int, default=RPC_PORT, help="RPC port for a bare HOST")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT, help="HTTP port for a bare HOST")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--try-writes", action="store_true",
                        help="write the current frequency back and verify it (only where "
                             "that is harmless: not on the S9 or the LB-Box)")
    parser.add_argument("--capture", type=Path, metavar="FILE",
                        help="record the raw reply of every read-only GET endpoint and RPC "
                             "report command of the unit in FILE (JSON); reads only")


async def _probe(args: argparse.Namespace) -> dict[str, Any]:
    url = args.target if "://" in args.target else \
        f"auto://{args.target}?rpc={args.rpc_port}&http={args.http_port}"
    unit = await open_unit(url, timeout=args.timeout)
    if getattr(args, "capture", None) is not None:
        try:
            ident = await unit.identify()
            document = {**await capture(unit), "identity": asdict(ident)}
        finally:
            await unit.close()
        write_capture(document, args.capture)
        return document
    try:
        ident = await unit.identify()
        reading = await unit.telemetry()
        writes = await unit.probe_writes() if getattr(args, "try_writes", False) else None
        caps = await unit.capabilities()        # after the write: what it showed is learned
    finally:
        await unit.close()
    out = {"url": unit.name, "identity": asdict(ident), "capabilities": asdict(caps),
           "telemetry": reading.to_dict()}
    if writes is not None:
        out["write_probe"] = writes
    return out


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    return f"{value}{unit}"


def _print_probe(result: dict[str, Any]) -> None:
    ident, t = result["identity"], result["telemetry"]
    print(f"{result['url']}")
    print(f"  model      {ident['model']} ({ident['name'] or '?'}) firmware {t['firmware'] or ident['firmware'] or '?'}")
    print(f"  evidence   {ident['evidence']}")
    print(f"  hashrate   {_fmt(t['hashrate_ghs'], ' GH/s')} (avg {_fmt(t['hashrate_avg_ghs'], ' GH/s')})")
    print(f"  temps      chip {_fmt(t['chip_temp_c'], ' C')} board {_fmt(t['board_temp_c'], ' C')} "
          f"VR {_fmt(t['vr_temp_c'], ' C')}")
    for chain in t["chains"]:
        print(f"  chain {chain['index']:<4} chips {_fmt(chain['chips'])} chip {_fmt(chain['chip_temp_c'], ' C')} "
              f"board {_fmt(chain['board_temp_c'], ' C')} {_fmt(chain['frequency_mhz'], ' MHz')} "
              f"{_fmt(chain['hashrate_ghs'], ' GH/s')} hw {_fmt(chain['hw_errors'])}")
    print(f"  power      {_fmt(t['power_w'], ' W')} in {_fmt(t['voltage_mv'], ' mV')} "
          f"{_fmt(t['current_ma'], ' mA')} core {_fmt(t['core_voltage_mv'], ' mV')}")
    print(f"  frequency  {_fmt(t['frequency_mhz'], ' MHz')}  fans {t['fan_rpm'] or '-'} rpm "
          f"{_fmt(t['fan_pct'], ' %')}")
    print(f"  shares     accepted {_fmt(t['accepted'])} rejected {_fmt(t['rejected'])} "
          f"hw errors {_fmt(t['hw_errors'])} pool diff {_fmt(t['pool_difficulty'])}")
    print(f"  pool       {t['pool_url'] or '-'} as {t['pool_user'] or '-'}")
    if t.get("overheat"):
        print(f"  OVERHEAT   {t['overheat']}")
    caps = result["capabilities"]
    flags = [k for k in ("frequency", "voltage", "fan", "pause") if caps[k]]
    print(f"  actuators  difficulty{''.join(', ' + f for f in flags)}"
          f"{' (frequency needs restart)' if caps['frequency_needs_restart'] else ''}")


def _print_capture(result: dict[str, Any], path: Path) -> None:
    http = [f"{p} {r.get('status', 'error')}" for p, r in result["http"].items()]
    rpc = [f"{c} {'error' if 'error' in r else 'ok'}" for c, r in result["rpc"].items()]
    print(f"{result['url']} ({result['model']}): {len(http)} HTTP and {len(rpc)} RPC replies "
          f"written to {path}")
    for line in http + rpc:
        print(f"  {line}")


def probe_main(args: argparse.Namespace) -> int:
    if getattr(args, "capture", None) is not None and args.try_writes:
        raise CommandError("--capture only reads; it does not combine with --try-writes",
                           status=2)
    try:
        result = asyncio.run(_probe(args))
    except (UnitError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    if getattr(args, "capture", None) is not None:
        if args.json:
            print(json.dumps({"url": result["url"], "capture": str(args.capture)}))
        else:
            _print_capture(result, args.capture)
        return 0
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_probe(result)
    return 0


# ------------------------------------------------------------------------ scan

def scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cidr", help="address range to scan, e.g. 192.168.1.0/24 (only this range)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--ports", type=_ports, default=list(DEFAULT_PORTS),
                        help="comma-separated ports to try on every host (default 80,4028)")
    parser.add_argument("--concurrency", type=int, default=64, help="hosts probed at once")
    parser.add_argument("--timeout", type=float, default=1.5, help="seconds per connection")
    parser.add_argument("--force", action="store_true", help="allow ranges larger than a /16")


def scan_hosts(cidr: str, force: bool = False) -> list[str]:
    """Addresses of the range the user named; refuses oversized ranges without ``force``."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise ValueError(f"not an address range: {cidr!r} ({exc})") from None
    if not force:
        if net.version == 4 and net.prefixlen < MAX_PREFIX_V4:
            raise ValueError(f"{net} has {net.num_addresses} addresses (more than a /16); "
                             "pass --force to scan it")
        if net.version == 6 and net.num_addresses > MAX_HOSTS_V6:
            raise ValueError(f"{net} is too large to scan; pass --force")
    hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
    return [str(h) for h in hosts]


async def scan(hosts: list[str], ports: list[int], *, concurrency: int = 64,
               timeout: float = 1.5, progress: tqdm | None = None) -> list[Identity]:
    """Identify every host concurrently (bounded); hosts where nothing answers are left out."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    found: list[Identity] = []

    async def one(host: str) -> None:
        async with gate:
            try:
                ident = await asyncio.wait_for(identify_ports(host, ports, timeout=timeout),
                                               timeout * 4 + 1)
            except (asyncio.TimeoutError, UnitError, OSError):
                ident = None
        if ident is not None:
            found.append(ident)
        if progress is not None:
            progress.set_postfix(found=len(found), refresh=False)
            progress.update(1)

    await asyncio.gather(*(one(h) for h in hosts))
    order = {h: i for i, h in enumerate(hosts)}
    return sorted(found, key=lambda ident: order[ident.host])


def scan_main(args: argparse.Namespace) -> int:
    try:
        hosts = scan_hosts(args.cidr, args.force)
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from exc
    progress = progress_bar(len(hosts), f"scan {args.cidr}", unit="host", enabled=not args.json)
    try:
        found = asyncio.run(scan(hosts, args.ports, concurrency=args.concurrency,
                                 timeout=args.timeout, progress=progress))
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from exc
    finally:
        progress.close()
    if args.json:
        print(json.dumps([{**asdict(i), "url": i.url} for i in found], indent=2))
    else:
        for ident in found:
            print(f"{ident.host:<16} {ident.model:<6} {ident.url:<44} {ident.evidence}")
        print(f"{len(found)} unit(s) in {args.cidr}", file=sys.stderr)
    return 0
