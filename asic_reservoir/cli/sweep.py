"""`asic-reservoir sweep`: a grid of simulated NARMA-10 experiments as independent Dask tasks.

The grid is units x channels x encodings x slots x seeds, and for a closed-loop delay
reservoir (``asic-reservoir run --gain``) x feedback gains x node durations theta. Each task
starts its own pool and one simulated unit on loopback in virtual time (its own event loop,
limited by the CPU only), records one run file, and returns its path; the run files are then
scored together into one report (a scan's points each on their own). Dask is optional
(``pip install 'asic-reservoir[dask]'``): a local cluster by default,
``--scheduler ADDR`` for an existing one (whose workers must share the output directory).
"""

from __future__ import annotations

import argparse
import time

from asic_reservoir.analysis.readout import ReadoutError
from asic_reservoir.analysis.report import dumps
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.analysis.states import StatesError
from asic_reservoir.cli import CommandError
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.experiment.runs import RunFileError
from asic_reservoir.experiment.sweep import SweepError, grid, run_sweep
from asic_reservoir.simulator.profiles import MODELS


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", default="lv06", help="simulated models, comma-separated "
                                                        f"({', '.join(MODELS)})")
    parser.add_argument("--channels", default="difficulty",
                        help="channels, comma-separated (difficulty, difficulty-log, frequency, "
                             "fan, duty, work; + combines)")
    parser.add_argument("--encodings", default="", help="channel option sets, separated by ';' "
                                                        "(e.g. 'invert=1;' tries both)")
    parser.add_argument("--slots", default="1", help="virtual-node slot counts, comma-separated")
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated")
    parser.add_argument("--gains", default="",
                        help="closed-loop feedback gains, comma-separated (as run --gain: the "
                             "chip temperature fed back on a 4-level mask; 0 = the same timing "
                             "and mask open loop; default: no loop)")
    parser.add_argument("--thetas", default="",
                        help="virtual-node durations in seconds, comma-separated (a step is "
                             "slots x theta; default: 5 s steps)")
    parser.add_argument("--steps", type=int, default=300, help="steps per run (300)")
    parser.add_argument("--runs", type=int, default=1, help="runs per task (1)")
    parser.add_argument("--out", required=True, help="directory for the run files")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="an existing Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, help="local cluster worker processes")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def sweep_main(args: argparse.Namespace) -> int:
    try:
        encodings = [e.strip() for e in args.encodings.split(";")] if args.encodings else [""]
        tasks = grid(_csv(args.units), _csv(args.channels), encodings,
                     [int(x) for x in _csv(args.slots)], [int(x) for x in _csv(args.seeds)],
                     [float(x) for x in _csv(args.gains)] or [None],
                     [float(x) for x in _csv(args.thetas)] or [None],
                     steps=args.steps, runs=args.runs)
        start = time.monotonic()
        done = run_sweep(tasks, args.out, scheduler=args.scheduler, workers=args.workers)
        scan = any(t.gain is not None or t.theta is not None for t in tasks)
        report = analyze_files([p for p, _ in done], AnalysisOptions(joint=not scan),
                               labels={p: t.label for p, t in done})
    except (SweepError, ValueError, ExperimentError, RunFileError, StatesError, ReadoutError,
            OSError) as exc:
        raise CommandError(str(exc)) from exc
    report.notes.append(f"{len(done)} tasks on Dask, run files in {args.out}; "
                        f"{time.monotonic() - start:.0f} s wall")
    print(dumps(report) if args.json else report.table())
    return 0
