"""``asic-reservoir puf``: enroll, identify, verify, and evaluate a fleet."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from asic_reservoir.cli import CommandError
from asic_reservoir.drivers.clock import run_virtual
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.puf.fleet import (FleetOptions, evaluate_simulated_fleet, evaluate_units,
                                      read_simulated_unit, read_unit)
from asic_reservoir.puf.identify import Challenge, PufError, Response, enroll, identify, verify
from asic_reservoir.puf.store import EnrollmentStore, StoreError
from asic_reservoir.simulator.names import parse_sim_unit

DEFAULT_STORE = "puf-enrollments.db"
ACTIONS = ("enroll", "identify", "verify")   # on sim: units each draws its own reads
UNIT_HELP = ("unit URL (lv06://host, s9://host, ...), or sim:MODEL:SEED for a unit this "
             "command simulates itself in virtual time (e.g. sim:lv06:21)")


def puf_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="action")

    def unit_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", default=DEFAULT_STORE, help=f"enrollment store ({DEFAULT_STORE})")
        p.add_argument("--speed", type=float, default=1.0,
                       help="experiment clock speed (simulated units started with that --speed)")
        p.add_argument("--difficulty-scale", type=float, default=1.0,
                       help="pool difficulty multiplier (simulated units: their hash_scale)")
        p.add_argument("--pool-host", default="127.0.0.1",
                       help="address the pool listens on (the unit must reach it)")
        p.add_argument("--pool-port", type=int, default=0, help="SHA-256d pool port (0: any)")
        p.add_argument("--lbry-port", type=int, default=0, help="LBRY pool port (0: any)")
        p.add_argument("--steps-per-phase", type=int, default=6,
                       help="challenge steps per phase (default 6; must match enrollment)")
        p.add_argument("--seed", type=int, default=0,
                       help="sim: units: seed of the reads' sensor noise and ambient (enroll, "
                            "identify and verify never share a read; change it for another)")
        p.add_argument("--json", action="store_true", help="JSON output")

    p = sub.add_parser("enroll", help="read a unit and store its reference response")
    p.add_argument("--unit", required=True, metavar="URL", help=UNIT_HELP)
    p.add_argument("--name", required=True)
    p.add_argument("--reads", type=int, default=2,
                   help="challenge reads to enroll (default 2: lets identification weigh each "
                        "feature by how much the unit varies from read to read)")
    unit_options(p)
    p = sub.add_parser("identify", help="rank enrolled units by distance to a fresh read")
    p.add_argument("--unit", required=True, metavar="URL", help=UNIT_HELP)
    unit_options(p)
    p = sub.add_parser("verify", help="accept or reject a unit's claimed name")
    p.add_argument("--unit", required=True, metavar="URL", help=UNIT_HELP)
    p.add_argument("--name", required=True)
    p.add_argument("--far", type=float, default=0.01, help="target false-accept rate (0.01)")
    unit_options(p)
    p = sub.add_parser("evaluate", help="PUF metrics over a simulated fleet")
    p.add_argument("--fleet", default="sim:20", help="sim:N (N simulated units)")
    p.add_argument("--unit", action="append", metavar="URL",
                   help="evaluate these units instead of a simulated fleet (repeat; one model)")
    p.add_argument("--difficulty-scale", type=float, default=1.0,
                   help="with --unit: pool difficulty multiplier (simulated units: hash_scale)")
    p.add_argument("--pool-host", default="127.0.0.1",
                   help="with --unit: address the pool listens on (the units must reach it)")
    p.add_argument("--model", default="lv06", choices=("s9", "lv06", "lbbox"))
    p.add_argument("--reads", type=int, default=5, help="re-reads per unit after enrollment")
    p.add_argument("--ambient-drift", type=float, default=3.0,
                   help="re-reads at ambient 25 +- this many degrees C")
    p.add_argument("--steps-per-phase", type=int, default=6)
    p.add_argument("--far", type=float, default=0.01,
                   help="FAR target of the verify rule whose achieved FAR/FRR on held-out "
                        "reads is reported (0.01)")
    p.add_argument("--speed", type=float, default=None,
                   help="with --unit: the --speed the simulated units were started with "
                        "(default 1; sim:N runs in virtual time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="JSON output")


def _read(args: argparse.Namespace, reads: int) -> list[Response]:
    """Challenge reads of ``--unit``: a unit simulated here in virtual time, or one on the
    network read in wall time (times ``--speed``)."""
    challenge = Challenge().shortened(args.steps_per_phase)
    unit = parse_sim_unit(args.unit)
    if unit is not None:
        return run_virtual(read_simulated_unit(unit, challenge, reads, seed=args.seed,
                                               stream=ACTIONS.index(args.action),
                                               progress=not args.json))
    return asyncio.run(read_unit(args.unit, challenge, reads,
                                 name=getattr(args, "name", None) or "unit", speed=args.speed,
                                 difficulty_scale=args.difficulty_scale,
                                 pool_host=args.pool_host, pool_port=args.pool_port,
                                 lbry_port=args.lbry_port, progress=not args.json))


def _print(args: argparse.Namespace, data: dict, lines: list[str]) -> None:
    print(json.dumps(data, indent=2, default=float) if args.json else "\n".join(lines))


def puf_main(args: argparse.Namespace) -> int:
    try:
        if args.action == "evaluate":
            return _evaluate_main(args)
        if args.action == "enroll" and args.reads < 1:
            raise PufError("--reads must be >= 1")
        responses = _read(args, args.reads if args.action == "enroll" else 1)
        response = responses[0]
        with EnrollmentStore(args.store) as store:
            if args.action == "enroll":
                for r in responses:
                    enroll(store, args.name, args.unit, r)
                _print(args, {"enrolled": args.name, "model": response.model,
                              "challenge": response.challenge_version, "reads": len(responses),
                              "features": len(response.feature_names)},
                       [f"enrolled {args.name} ({response.model}, challenge "
                        f"{response.challenge_version}, {len(responses)} reads, "
                        f"{len(response.feature_names)} features)"])
            elif args.action == "identify":
                ranked = identify(store, response)
                _print(args, {"candidates": [asdict(c) for c in ranked]},
                       ["rank  name                 distance  confidence"] +
                       [f"{i + 1:>4}  {c.name:<20} {c.distance:8.3f}  {c.confidence:9.3f}"
                        for i, c in enumerate(ranked)])
            else:
                v = verify(store, response, args.name, args.far)
                _print(args, asdict(v),
                       [f"{'ACCEPT' if v.accepted else 'REJECT'} {v.name}: distance "
                        f"{v.distance:.3f} vs threshold {v.threshold:.3f} (FAR {v.far_target:g})"])
                return 0 if v.accepted else 1
    except (PufError, StoreError, ExperimentError, ValueError) as exc:
        raise CommandError(f"{args.action}: {exc}", status=2) from exc
    return 0


def _evaluate_main(args: argparse.Namespace) -> int:
    challenge = Challenge().shortened(args.steps_per_phase)
    if args.unit:
        result = asyncio.run(evaluate_units(
            args.unit, challenge, reads=args.reads, speed=args.speed or 1.0,
            difficulty_scale=args.difficulty_scale, pool_host=args.pool_host, seed=args.seed,
            verify_far=args.far,
            progress=not args.json))
        where = f"{len(args.unit)} units"
    else:
        kind, _, count = args.fleet.partition(":")
        if kind != "sim" or not count.isdigit() or int(count) < 2:
            raise PufError(f"--fleet must be sim:N with N >= 2, got {args.fleet!r}")
        opts = FleetOptions(devices=int(count), reads=args.reads,
                            ambient_drift_c=args.ambient_drift, model=args.model,
                            seed=args.seed, challenge=challenge, verify_far=args.far)
        result = run_virtual(evaluate_simulated_fleet(opts, progress=not args.json))
        where = f"{result['fleet']}, ambient +-{opts.ambient_drift_c:g} C"
    m = result["metrics"]

    def iv(d: dict, pct: bool = True) -> str:
        k = 100 if pct else 1
        return f"{k * d['value']:.2f} [{k * d['low']:.2f}, {k * d['high']:.2f}]"
    b, v = m["bits"], m["verify"]
    _print(args, result, [
        f"PUF evaluation: {where}, {result['model']}, {result['reads']} re-reads each after "
        f"{result['enroll_reads']} enrollment reads, challenge {result['challenge_steps']} "
        f"steps, {result['features']} features",
        f"  rank-1 identification  {iv(m['rank1_accuracy'])} %",
        f"  EER                    {iv(m['eer'])} %",
        f"  FAR / FRR at EER       {iv(m['far_at_threshold'])} % / {iv(m['frr_at_threshold'])} %",
        f"  verify (FAR target {100 * v['far_target']:g} %, threshold {v['threshold']:.3f}) on "
        f"held-out reads: FAR {iv(v['far'])} % of {v['impostor_claims']} impostor claims, "
        f"FRR {iv(v['frr'])} % of {v['genuine_claims']} genuine claims",
        f"  decidability d'        {m['decidability']:.2f}",
        f"  genuine distance       {m['genuine_mean']:.3f} +- {m['genuine_std']:.3f}",
        f"  impostor distance      {m['impostor_mean']:.3f} +- {m['impostor_std']:.3f}",
        f"  bits ({b['n_bits']}): uniqueness {b['uniqueness']:.1f} %, reliability "
        f"{b['reliability']:.1f} %, uniformity {b['uniformity']:.1f} %, bit-aliasing "
        f"{b['bit_aliasing_mean']:.1f} % [{b['bit_aliasing_min']:.1f}, {b['bit_aliasing_max']:.1f}]",
        "  (95% intervals: Wilson for rates; the wider of Wilson and a bootstrap over "
        "devices for EER and verify FAR/FRR)"])
    return 0
