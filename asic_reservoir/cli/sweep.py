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
import itertools
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from asic_reservoir.analysis.readout import ReadoutError
from asic_reservoir.analysis.report import dumps
from asic_reservoir.analysis.states import StatesError
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.experiment.simulated import (DEMO_STEP_SECONDS, SimulatedRecording,
                                                 record_simulated, warmup_seconds)
from asic_reservoir.experiment.channels import (LOOP_MASK_LEVELS, ChannelError, DelayLoop,
                                                parse_channels)
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.experiment.runs import RunFileError
from asic_reservoir.simulator.profiles import MODELS

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class SweepError(RuntimeError):
    """A sweep cannot start (bad grid, no Dask) or a task failed."""


@dataclass(frozen=True)
class SweepTask:
    """One grid point: a simulated unit driven through one channel encoding; with a
    ``gain``, a closed-loop delay reservoir on it (chip temperature fed back, the 4-level
    mask ``run --gain`` uses); with a ``theta``, steps of ``slots x theta`` seconds."""

    model: str
    channel: str
    encoding: str = ""           # channel options, e.g. "invert=1" ("" = the defaults)
    slots: int = 1
    seed: int = 0
    steps: int = 300
    runs: int = 1
    gain: float | None = None    # None: open loop
    theta: float | None = None   # None: steps of step_seconds
    step_seconds: float = DEMO_STEP_SECONDS
    warmup_seconds: float | None = None     # None: simulated.warmup_seconds of the step

    @property
    def spec(self) -> str:
        return f"{self.channel}:{self.encoding}" if self.encoding else self.channel

    @property
    def loop(self) -> DelayLoop | None:
        return DelayLoop(gain=self.gain) if self.gain is not None else None

    @property
    def step(self) -> float:
        return self.slots * self.theta if self.theta is not None else self.step_seconds

    @property
    def label(self) -> str:
        """The channel as the report shows it (theta and gain set points of a scan apart)."""
        return self.spec + "".join(
            f" {key}={value:g}{unit}" for key, value, unit in
            (("theta", self.theta, "s"), ("gain", self.gain, "")) if value is not None)

    @property
    def name(self) -> str:
        safe = self.spec.replace("+", "-").replace(":", "_").replace("=", "").replace(",", "_")
        loop = "".join(f"_{key}{value:g}" for key, value in (("t", self.theta), ("g", self.gain))
                       if value is not None)
        return f"{self.model}_{safe}_s{self.slots}{loop}_seed{self.seed}"


def grid(models: Sequence[str], channels: Sequence[str], encodings: Sequence[str] = ("",),
         slots: Sequence[int] = (1,), seeds: Sequence[int] = (0,),
         gains: Sequence[float | None] = (None,), thetas: Sequence[float | None] = (None,),
         **size: Any) -> list[SweepTask]:
    """Every combination, checked before anything runs.

    An encoding a channel does not take is skipped for that channel (``invert=1`` applies to
    ``fan`` but not to ``difficulty``); a channel that takes none of them fails the sweep, and
    so does a gain on a channel that cannot close the loop (the pool difficulty) or a theta
    that is not a positive duration.
    """
    for theta in thetas:
        if theta is not None and not (math.isfinite(theta) and theta > 0):
            raise SweepError(f"theta must be a positive number of seconds, got {theta}")
    for model in models:
        if model not in MODELS:
            raise SweepError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    valid: list[tuple[str, str]] = []
    for channel in channels:
        errors = []
        for enc in encodings or ("",):
            spec = SweepTask("lv06", channel, enc).spec
            try:
                parse_channels(spec)
            except ChannelError as exc:
                errors.append(f"{spec}: {exc}")
                continue
            valid.append((channel, enc))
        if errors and not any(c == channel for c, _ in valid):
            raise SweepError("; ".join(errors))
        for err in errors:
            log.info("sweep: skipped %s", err)
    for (channel, enc), gain in itertools.product(valid, gains):
        if gain is None:
            continue
        task = SweepTask("lv06", channel, enc, gain=gain)
        try:
            parse_channels(task.spec, loop=task.loop)
        except ChannelError as exc:
            raise SweepError(f"{task.spec} with gain {gain:g}: {exc}") from None
    tasks = [SweepTask(model, channel, enc, int(n), int(seed), gain=gain, theta=theta, **size)
             for model, (channel, enc), n, seed, gain, theta
             in itertools.product(models, valid, slots, seeds, gains, thetas)]
    if not tasks:
        raise SweepError("empty grid")
    return tasks


def record(task: SweepTask, outdir: str) -> str:
    """Run one task in virtual time; returns its run file (the Dask task function)."""
    loop = task.loop
    return record_simulated(SimulatedRecording(
        task.model, task.spec, str(Path(outdir) / f"{task.name}.db"), task.steps,
        runs=task.runs, slots=task.slots, seed=task.seed, noise_seed=task.seed,
        step_seconds=task.step,
        warmup_seconds=(task.warmup_seconds if task.warmup_seconds is not None
                        else warmup_seconds(task.step)),
        loop=loop, mask_levels=LOOP_MASK_LEVELS if loop is not None else 2))


def _dask_client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    try:
        from dask.distributed import Client, LocalCluster   # optional dependency
    except ImportError:
        raise SweepError("sweep needs Dask: pip install 'asic-reservoir[dask]'") from None
    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host=LOOPBACK, dashboard_address=None)
    return Client(cluster), cluster


def run_sweep(tasks: Sequence[SweepTask], outdir: str | Path, scheduler: str | None = None,
              workers: int | None = None) -> list[tuple[str, SweepTask]]:
    """Run every task on Dask; returns (run file, task) pairs in grid order."""
    Path(outdir).mkdir(parents=True, exist_ok=True)
    client, cluster = _dask_client(scheduler, workers)
    try:
        futures = client.map(record, list(tasks), outdir=str(Path(outdir).resolve()),
                             pure=False)
        paths = client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return list(zip(paths, tasks))


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
        print(f"asic-reservoir sweep: {exc}", file=sys.stderr)
        return 1
    report.notes.append(f"{len(done)} tasks on Dask, run files in {args.out}; "
                        f"{time.monotonic() - start:.0f} s wall")
    print(dumps(report) if args.json else report.table())
    return 0
