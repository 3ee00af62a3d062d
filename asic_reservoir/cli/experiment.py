"""`asic-reservoir run | analyze | export | demo`: experiments from the command line.

``run`` starts the toolkit's pool, points every unit at it, and records a NARMA-10 run
file; ``analyze`` scores a run file (readouts, controls, baselines); ``export`` writes its
tables as CSV; ``demo`` does all of it against the bundled simulator on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from asic_reservoir.analysis.readout import ReadoutError
from asic_reservoir.analysis.report import PlotsUnavailable, _pyplot, dumps
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.analysis.states import StatesError
from asic_reservoir.cli import CommandError
from asic_reservoir.drivers.clock import Clock, run_virtual
from asic_reservoir.drivers.errors import UnitError
from asic_reservoir.experiment.channels import LOOP_MASK_LEVELS, ChannelError, DelayLoop
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.experiment.record import CONTROL_RECORDINGS, run_experiment
from asic_reservoir.experiment.runs import RunFileError, export_csv
from asic_reservoir.experiment.simulated import (DEMO_STEP_SECONDS, REPORT_SEED, TUNING_SEED,
                                                 DemoSize, run_demo, run_simulated, sim_units_of)
from asic_reservoir.simulator.names import SimUnitName, parse_sim_unit


TASKS = ("narma10",)


# ----------------------------------------------------------------------------- run

def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=TASKS, help="reservoir task")
    parser.add_argument("--unit", action="append", metavar="URL",
                        help="unit URL (s9://HOST, lv06://HOST, lbbox://HOST, auto://HOST), or "
                             "sim:MODEL:SEED for a unit this command simulates itself in virtual "
                             "time (e.g. sim:lv06:21; all units of a run, then); repeat; not "
                             "needed with --resume (the run file names them; give URLs to "
                             "resume on units that moved to new addresses)")
    parser.add_argument("--channel", default="difficulty",
                        help="input channel(s): difficulty, difficulty-log, frequency, fan, duty, "
                             "work, combined with + (options after ':', e.g. fan:lo_pct=40)")
    parser.add_argument("--slots", type=int, default=1, help="virtual-node slots per step")
    parser.add_argument("--steps", type=int, default=1000, help="steps per run")
    parser.add_argument("--runs", type=int, default=1, help="independent runs (input series)")
    parser.add_argument("--step-seconds", type=float,
                        help="experiment seconds per step (default 5, or --slots x --theta)")
    parser.add_argument("--mask-levels", type=int,
                        help="values of the virtual-node mask, evenly spaced in [-1, 1] "
                             "(default 2: +-1; a closed loop defaults to 4)")
    loop = parser.add_argument_group(
        "closed-loop delay reservoir (Appeltant et al. 2011)",
        "feed each unit's measured response back into the channel: slot value = clip(bias + "
        "gain r + scale m_k (x - 1/2)), where r is the response polled in the middle of the "
        "slot slots + 1 slots earlier, i.e. read (slots + 1/2) x theta before the command")
    loop.add_argument("--gain", type=float,
                      help="feedback gain: closes the loop (0 = the open-loop channel)")
    loop.add_argument("--theta", type=float,
                      help="virtual-node duration in experiment seconds (the step is "
                           "slots x theta)")
    loop.add_argument("--response", default="chip_temp_c",
                      help="telemetry field fed back (default chip_temp_c)")
    loop.add_argument("--response-range", metavar="LO,HI",
                      help="response values mapped to -1/2 and +1/2 (default: the range "
                           "read mid-slot in the second half of the warm-up, which runs "
                           "the loop's slots with the feedback off)")
    loop.add_argument("--bias", type=float, default=0.5,
                      help="operating point, fraction of the channel's range (default 0.5)")
    loop.add_argument("--input-scale", type=float, default=1.0,
                      help="input scaling of the masked input (default 1)")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="experiment seconds of driving before the first recorded step")
    parser.add_argument("--seed", type=int, default=0, help="seed of inputs and mask")
    parser.add_argument("--out", required=True, help="run file (SQLite)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run file")
    parser.add_argument("--control", choices=CONTROL_RECORDINGS,
                        help="record a control instead: constant-input drives the units with a "
                             "constant while the readout is scored on the NARMA series (should "
                             "give ~1.0); repeated-input replays one series in every run "
                             "(consistency: how much of the state is response, how much noise)")
    parser.add_argument("--difficulty-scale", type=float, action="append",
                        help="multiply pool difficulties by this (simulated units: their "
                             "hash_scale); once for all units or once per unit")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="experiment clock speed (only for simulated units started with "
                             "the same --speed; sim: units run in virtual time)")
    parser.add_argument("--ambient", type=float, metavar="C",
                        help="sim: units: room temperature in degC (default 25; with --resume, "
                             "the room they resume in). They start mining on the run's own "
                             "pool (any free port), with sensor noise fixed by --seed")
    parser.add_argument("--pool-host", default="127.0.0.1", help="address the pool listens on")
    parser.add_argument("--pool-port", type=int, default=3333, help="SHA-256d pool port")
    parser.add_argument("--lbry-port", type=int, default=3334, help="LBRY pool port")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def run_main(args: argparse.Namespace) -> int:
    if not args.unit and not args.resume:
        raise CommandError("name at least one --unit URL", status=2)
    try:
        loop, levels, step_seconds = loop_options(args)
        sims = sim_units(args)
    except (ChannelError, ValueError) as exc:
        raise CommandError(str(exc), status=2) from exc
    options = dict(steps=args.steps, runs=args.runs, slots=args.slots, seed=args.seed,
                   step_seconds=step_seconds, loop=loop, mask_levels=levels,
                   warmup_seconds=args.warmup, resume=args.resume, progress=not args.quiet,
                   control=args.control)
    try:
        if sims is not None:
            summary = run_virtual(run_simulated(sims, args.channel, args.out,
                                                ambient_c=args.ambient or 25.0, **options))
        else:
            summary = asyncio.run(run_experiment(
                args.unit or [], args.channel, args.out,
                difficulty_scales=args.difficulty_scale or [1.0], clock=Clock(args.speed),
                pool_host=args.pool_host, pool_port=args.pool_port, lbry_port=args.lbry_port,
                **options))
    except (ExperimentError, ChannelError, RunFileError, UnitError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    if summary.already_complete:
        print(f"{args.out}: already complete, nothing to do")
        return 0
    print(f"{args.out}: {summary.steps_written} steps written, {summary.marked} marked, "
          f"{summary.shares} shares, {summary.late_slots} late slots, "
          f"{summary.wall_seconds:.1f} s" + (" simulated" if sims is not None else "")
          + (f", {summary.feedback_missing} slots without a delayed response"
             if loop is not None else ""))
    return 0


def sim_units(args: argparse.Namespace) -> list[SimUnitName] | None:
    """The ``sim:`` units of a run (from ``--unit``, or on ``--resume`` from the run file);
    None when the run is on units named by URL."""
    named = [parse_sim_unit(url) for url in args.unit or []]
    if any(named) and not all(named):
        raise ValueError("sim: units run in virtual time in this process: they cannot share "
                         "a run with units named by URL")
    if args.resume and (any(named) or (not named and sim_units_of(args.out))):
        if named:
            raise ValueError("a run of sim: units resumes on the units its file names: "
                             "leave out --unit")
        return []                      # run_simulated takes them from the file
    if any(named):
        return [n for n in named if n is not None]
    if args.ambient is not None:
        raise ValueError("--ambient sets the room of sim: units; this run has none")
    return None


def loop_options(args: argparse.Namespace) -> tuple[DelayLoop | None, int, float]:
    """The closed loop, mask levels and step seconds the ``run`` flags ask for."""
    if args.theta is not None and args.step_seconds is not None:
        raise ValueError("give --theta or --step-seconds, not both (the step is slots x theta)")
    if args.theta is not None and not args.theta > 0:
        raise ValueError(f"--theta must be > 0 s, got {args.theta}")
    step_seconds = (args.slots * args.theta if args.theta is not None
                    else args.step_seconds or 5.0)
    if args.gain is None:
        if args.response_range:
            raise ValueError("--response-range needs --gain (a closed loop)")
        return None, args.mask_levels or 2, step_seconds
    r_lo = r_hi = None
    if args.response_range:
        try:
            r_lo, r_hi = (float(x) for x in args.response_range.split(","))
        except ValueError:
            raise ValueError(f"--response-range wants LO,HI, got {args.response_range!r}") \
                from None
    levels = args.mask_levels or LOOP_MASK_LEVELS
    return (DelayLoop(gain=args.gain, bias=args.bias, scale=args.input_scale,
                      response=args.response, r_lo=r_lo, r_hi=r_hi), levels, step_seconds)


# ----------------------------------------------------------------------------- analyze


def analyze_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runfile", nargs="+", help="run file(s) written by `asic-reservoir run`")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--plots", metavar="DIR", help="write PNG plots here (needs matplotlib)")
    parser.add_argument("--unit", action="append", help="only these unit names")
    parser.add_argument("--washout", type=int, default=50, help="steps discarded per run")
    parser.add_argument("--features", action="append", metavar="PREFIX",
                        help="keep only hardware features starting with this (e.g. "
                             "tel.chip_temp_c, the node states of a closed loop); repeat")
    parser.add_argument("--range", action="store_true",
                        help="also print range-normalised NRMSE (labelled; not comparable)")


def analyze_main(args: argparse.Namespace) -> int:
    try:
        if args.plots:
            _pyplot()                  # fail before the analysis, not after it
        report = analyze_files(args.runfile, AnalysisOptions(washout=args.washout,
                                                             units=args.unit,
                                                             features=args.features),
                               plots=args.plots)
    except (RunFileError, StatesError, ReadoutError, PlotsUnavailable) as exc:
        raise CommandError(str(exc)) from exc
    print(dumps(report, args.range) if args.json else report.table(args.range))
    return 0


# ----------------------------------------------------------------------------- export

def export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runfile", help="run file")
    parser.add_argument("outdir", help="directory for one CSV per table")


def export_main(args: argparse.Namespace) -> int:
    try:
        files = export_csv(args.runfile, args.outdir)
    except (RunFileError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    for f in files:
        print(f)
    return 0


# ----------------------------------------------------------------------------- demo


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    d = DemoSize()
    parser.add_argument("--steps", type=int, default=d.steps, help=f"steps per run ({d.steps})")
    parser.add_argument("--runs", type=int, default=d.runs, help=f"runs per unit ({d.runs})")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    parser.add_argument("--keep", metavar="DIR", help="keep the run files in DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def demo_main(args: argparse.Namespace) -> int:
    size = DemoSize(steps=args.steps, runs=args.runs)
    if size.steps < 100 or size.runs < 1:
        raise CommandError("need --steps >= 100, --runs >= 1", status=2)
    with tempfile.TemporaryDirectory(prefix="asic-reservoir-demo-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            outputs = run_demo(size, workdir, progress=not args.quiet, fresh=True)
            report = analyze_files([p for p, _ in outputs],
                                   labels={str(p): spec for p, spec in outputs})
        except (ExperimentError, ChannelError, RunFileError, StatesError, ReadoutError,
                OSError) as exc:
            raise CommandError(str(exc)) from exc
        report.notes.append(
            f"simulated units on loopback in virtual time (one process per configuration), "
            f"{size.steps} steps of "
            f"{DEMO_STEP_SECONDS:g} s per run, {size.runs} runs; input series of seed "
            f"{REPORT_SEED} (channels were chosen on seed {TUNING_SEED}, never reported); "
            f"{time.monotonic() - start:.0f} s wall")
        print(dumps(report) if args.json else report.table())
    return 0
