"""`asic-reservoir` command line.

Each subcommand lives next to the code it drives; this module only dispatches. A command
module ``M`` named in :data:`COMMANDS` defines ``<name>_arguments(parser)`` and
``<name>_main(args) -> int``, raising :class:`~asic_reservoir.cli.CommandError` for a
failure its user should read. Modules are imported only when their command runs, so
``--help`` stays fast and one broken command cannot take the others down.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from asic_reservoir import __version__
from asic_reservoir.cli import CommandError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("asic_reservoir.cli.experiment", "NARMA-10 end to end on the bundled simulator, with baselines"),
    "run": ("asic_reservoir.cli.experiment", "run a reservoir task on units named by URL, into a run file"),
    "analyze": ("asic_reservoir.cli.experiment", "score a run file: readout, baselines, controls"),
    "export": ("asic_reservoir.cli.experiment", "export a run file's tables to CSV"),
    "sweep": ("asic_reservoir.cli.sweep", "a grid of simulated experiments on Dask, one report"),
    "pool": ("asic_reservoir.cli.pool", "run the Stratum v1 pool (SHA-256d and LBRY listeners)"),
    "sim": ("asic_reservoir.cli.sim", "run simulated S9 / LV06 / LB-Box units on loopback"),
    "probe": ("asic_reservoir.cli.units", "identify a unit and read one telemetry record"),
    "scan": ("asic_reservoir.cli.units", "find units in an address range you name"),
    "set": ("asic_reservoir.cli.settings", "change a unit's settings, verified by read-back"),
    "tpf": ("asic_reservoir.cli.tpf", "evaluate the 'probability filter' (early-round share prediction)"),
    "puf": ("asic_reservoir.cli.puf", "fingerprint units: enroll, identify, verify, evaluate"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asic-reservoir",
        description="Mining ASICs as physical reservoirs: pool, drivers, simulator, experiments.",
        epilog="commands:\n" + "\n".join(f"  {n:<9} {h}" for n, (_, h) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"asic-reservoir {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="command")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    # Split global options from the command and its own arguments.
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    top_args = top.parse_args(argv[:split + 1])
    name = top_args.command
    module_name, help_text = COMMANDS[name]
    logging.basicConfig(
        level=logging.WARNING - 10 * min(top_args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        module = importlib.import_module(module_name)
        add_arguments = getattr(module, f"{name}_arguments")
        run = getattr(module, f"{name}_main")
    except (ImportError, AttributeError) as exc:
        if isinstance(exc, ImportError) and exc.name and not module_name.startswith(exc.name):
            raise  # a real missing dependency, not a command that has not landed
        print(f"asic-reservoir {name}: not yet available in this version", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"asic-reservoir {name}", description=help_text)
    add_arguments(parser)
    args = parser.parse_args(argv[split + 1:])
    try:
        return int(run(args) or 0)
    except CommandError as exc:
        print(f"asic-reservoir {name}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"asic-reservoir {name}: interrupted", file=sys.stderr)
        return 130


