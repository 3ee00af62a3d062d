"""``asic-reservoir pool``: run the pool with default jobs until a duration or Ctrl-C, then
print totals (accepted, rejected by reason, sessions, shares/s); ``--json`` for machines.
Logs go to stderr; the summary is the only thing on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
import time

from asic_reservoir.cli import CommandError
from asic_reservoir.progress import advance_to, progress_bar
from asic_reservoir.drivers.stratum.work import LBRY_DIFFICULTY_FACTOR

from asic_reservoir.drivers.stratum import Pool, PoolConfig

log = logging.getLogger(__name__)

STATUS_EVERY_S = 30.0


def pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; use your LAN address for real miners)")
    parser.add_argument("--port", type=int, default=3333, help="SHA-256d listener port (default 3333)")
    parser.add_argument("--lbry-port", type=int, default=None, help="also run an LBRY listener here")
    parser.add_argument("--difficulty", type=float, default=1.0, help="share difficulty (fractions allowed)")
    parser.add_argument("--lbry-difficulty", type=float, default=None,
                        help="LBRY share difficulty (default: --difficulty), LBRY scale")
    parser.add_argument("--lbry-factor", type=float, default=LBRY_DIFFICULTY_FACTOR,
                        help="LBRY difficulty scale vs Bitcoin's (default 256)")
    parser.add_argument("--branches", type=int, default=0, help="random merkle branches in default jobs")
    parser.add_argument("--extranonce2-size", type=int, default=4)
    parser.add_argument("--refresh", type=float, default=30.0, help="seconds between default jobs")
    parser.add_argument("--honor-suggested-difficulty", action="store_true",
                        help="let miners set their difficulty with mining.suggest_difficulty")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="print totals as JSON")


def _config(args: argparse.Namespace) -> PoolConfig:
    return PoolConfig(host=args.host, port=args.port, lbry_port=args.lbry_port,
                      difficulty=args.difficulty, lbry_difficulty=args.lbry_difficulty,
                      lbry_difficulty_factor=args.lbry_factor, branches=args.branches,
                      extranonce2_size=args.extranonce2_size, refresh_s=args.refresh,
                      honor_suggested_difficulty=args.honor_suggested_difficulty)


async def _serve(config: PoolConfig, duration: float | None) -> dict:
    pool = Pool(config)
    await pool.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform / thread
            pass
    urls = [u for u in (pool.url, pool.lbry_url) if u]
    print(f"pool listening: {' '.join(urls)} (difficulty {config.difficulty:g})", file=sys.stderr, flush=True)
    try:
        await _wait(pool, stop, duration)
    finally:
        totals = pool.totals()
        await pool.stop()
    return totals


async def _wait(pool: Pool, stop: asyncio.Event, duration: float | None) -> None:
    """Until ``duration`` or a signal; a progress line (stderr) shows the share counts."""
    progress = progress_bar(int(math.ceil(duration)), "pool", unit="s") if duration else None
    start = time.monotonic()
    while not stop.is_set():
        left = math.inf if duration is None else duration - (time.monotonic() - start)
        if left <= 0:
            break
        try:
            await asyncio.wait_for(stop.wait(), min(left, 1.0 if progress else STATUS_EVERY_S))
        except asyncio.TimeoutError:
            pass
        t = pool.totals()
        fields = {"accepted": t["accepted"], "rejected": t["rejected"], "sessions": t["sessions"]}
        if progress is not None:
            advance_to(progress, min(int(time.monotonic() - start), progress.total), **fields)
        elif not stop.is_set():
            log.info("pool: %s", " ".join(f"{k}={v}" for k, v in fields.items()))
    if progress is not None:
        progress.close()


def _text(totals: dict) -> str:
    lines = [f"accepted   {totals['accepted']}",
             f"rejected   {totals['rejected']}"]
    for reason, n in sorted(totals["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:>8}  {reason}")
    lines += [f"blocks     {totals['block_candidates']} candidate(s)",
              f"sessions   {totals['sessions_total']} total",
              f"shares/s   {totals['shares_per_s']:.2f} over {totals['duration_s']:.1f} s"]
    return "\n".join(lines)


def pool_main(args: argparse.Namespace) -> int:
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("asic_reservoir.drivers.stratum").setLevel(logging.INFO)
    try:
        config = _config(args)
    except ValueError as exc:
        raise CommandError(str(exc), status=2) from exc
    try:
        totals = asyncio.run(_serve(config, args.duration))
    except OSError as exc:
        raise CommandError(f"cannot listen: {exc}") from exc
    print(json.dumps(totals, indent=2) if args.json else _text(totals))
    return 0
