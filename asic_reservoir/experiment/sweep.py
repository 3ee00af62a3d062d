"""A grid of simulated NARMA-10 experiments run as independent Dask tasks.

The grid is units x channels x encodings x slots x seeds, and for a closed-loop delay
reservoir x feedback gains x node durations theta. Each task starts its own pool and one
simulated unit on loopback in virtual time (its own event loop, limited by the CPU only) and
records one run file. Dask is optional: a local cluster by default, or an existing scheduler
(whose workers must share the output directory).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from asic_reservoir.experiment.channels import (LOOP_MASK_LEVELS, ChannelError, DelayLoop,
                                                parse_channels)
from asic_reservoir.experiment.simulated import (DEMO_STEP_SECONDS, SimulatedRecording,
                                                 record_simulated, warmup_seconds)
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
    # dashboard_address=None still serves Dask's HTTP endpoints on port 8787 (a second
    # cluster on the host then warns that it is taken): a free loopback port instead.
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host=LOOPBACK, dashboard_address=f"{LOOPBACK}:0")
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
