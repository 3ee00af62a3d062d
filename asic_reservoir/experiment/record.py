"""Record a NARMA-10 run file from units named by URL, with the toolkit as their pool.

Also the input series of every run and of the recorded controls (constant input, one
series replayed), which the analysis regenerates from the run file's seed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from asic_reservoir.analysis.tasks import narma
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.drivers.units import parse_unit_url
from asic_reservoir.experiment.channels import ChannelError, DelayLoop, parse_channels
from asic_reservoir.experiment.loop import (Experiment, ExperimentConfig, ExperimentError,
                                            ExperimentSummary, UnitLink, connect_unit, input_seed)
from asic_reservoir.experiment.runs import RunMeta, RunWriter

log = logging.getLogger(__name__)

NARMA_ORDER = 10

# ----------------------------------------------------------------------------- inputs

CONSTANT_INPUT = 0.25   # the mean of U[0, 0.5]: what the constant-input control drives


CONTROL_RECORDINGS = ("constant-input", "repeated-input")


def narma_inputs(seed: int, steps: int, control: str | None = None):
    """Deterministic NARMA-10 input series per run (resume regenerates the same one).

    With ``control="constant-input"`` the units are driven by a constant instead, while the
    task (and the readout's target) stays the NARMA series of the same seed: whatever the
    readout then scores is not from the hardware following the input. With
    ``"repeated-input"`` every run replays run 0's series: the consistency test.
    """

    def inputs(run: int) -> np.ndarray:
        u = narma(steps, NARMA_ORDER,
                  seed=input_seed(seed, 0 if control == "repeated-input" else run)).u
        return np.full_like(u, CONSTANT_INPUT) if control == "constant-input" else u
    return inputs


# ----------------------------------------------------------------------------- run

async def run_experiment(urls: Sequence[str], channel: str, out: str | Path, *, steps: int,
                         runs: int = 1, slots: int = 1, seed: int = 0,
                         step_seconds: float = 5.0, warmup_seconds: float = 0.0,
                         difficulty_scales: Sequence[float] = (1.0,), resume: bool = False,
                         pool: Any = None, clock: Clock | None = None,
                         pool_host: str = "127.0.0.1", pool_port: int = 0,
                         lbry_port: int = 0, progress: bool = True,
                         simulated: Sequence[dict] | None = None,
                         names: Sequence[str] | None = None,
                         workers: Sequence[str] | None = None, control: str | None = None,
                         loop: DelayLoop | None = None, mask_levels: int = 2,
                         extra: dict[str, Any] | None = None):
    """Record a NARMA-10 run file; starts a pool unless one is given.

    On ``resume`` the run file names the units; ``urls``, if given, are their addresses now
    (one per unit, in the file's order: units simulated afresh listen on new ports).

    ``control`` records a control instead (see :func:`narma_inputs`); ``loop`` makes the
    channel a closed-loop delay reservoir; ``mask_levels`` sets the mask's values; ``extra``
    joins the new file's metadata.
    """
    if control not in (None, *CONTROL_RECORDINGS):
        raise ExperimentError(f"unknown control {control!r}; recorded controls are "
                              f"{', '.join(CONTROL_RECORDINGS)}")
    if not resume and loop is not None and loop.r_lo is None and not warmup_seconds > 0:
        raise ExperimentError(f"delay loop: the response range of {loop.response} is "
                              f"calibrated in the warm-up; give a warm-up or the range")
    if resume:
        with RunWriter.resume(out) as finished:
            if finished.next_step() is None:   # nothing to run: leave units and ports alone
                log.info("run file %s is complete; nothing to resume", out)
                return ExperimentSummary(already_complete=True)
    clock = clock or (pool.clock if pool is not None else Clock())
    own_pool = pool is None
    if own_pool:
        pool = Pool(PoolConfig(host=pool_host, port=pool_port, lbry_port=lbry_port), clock=clock)
        await pool.start()
    links: list[UnitLink] = []
    writer: RunWriter | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:   # restores every unit on exit,
            # told of the error that ended the block (a failing restore must not hide it)
            if resume:
                writer = RunWriter.resume(out)
                meta = writer.meta
                urls = _resumed_urls(meta.units, urls)
                names = [u.name for u in meta.units]
                workers = [u.worker for u in meta.units]
                scales = [u.difficulty_scale for u in meta.units]
                simulated = [{"profile": u.profile, "seed": u.seed} if u.simulated else {}
                             for u in meta.units]
                stored_loop = meta.channel.get("delay_loop")
                channels = parse_channels(meta.channel["spec"], slots=meta.slots, mask=meta.mask,
                                          loop=DelayLoop(**stored_loop) if stored_loop else None)
                steps, runs, seed = meta.steps, meta.runs, meta.seed
                step_seconds = meta.step_seconds
                control = meta.extra.get("control")
            else:
                channels = parse_channels(channel, slots=slots, seed=seed, levels=mask_levels,
                                          loop=loop)
                if len(difficulty_scales) not in (1, len(urls)):
                    raise ExperimentError(f"give one --difficulty-scale or one per unit "
                                          f"({len(urls)}), got {len(difficulty_scales)}")
                scales = list(difficulty_scales) * (len(urls) if len(difficulty_scales) == 1 else 1)
                names = list(names) if names else _unit_names(urls)
            for i, url in enumerate(urls):
                sim = (simulated[i] if simulated else {}) or None
                worker = workers[i] if workers else f"ar.{names[i]}"
                links.append(await connect_unit(url, pool, name=names[i], worker=worker,
                                                difficulty_scale=scales[i], simulated=sim,
                                                stack=stack, taken=[x.worker for x in links]))
            for link in links:
                try:
                    channels.check(link.info)
                except ChannelError as exc:
                    raise ExperimentError(f"unit {link.name} ({link.info.model}, {link.url}): "
                                          f"{exc}") from exc
            if writer is None:
                meta = RunMeta(task="narma10", seed=seed, steps=steps, runs=runs, slots=slots,
                               units=[link.meta for link in links], channel=channels.describe(),
                               mask=[float(m) for m in channels.mask], clock_speed=clock.speed,
                               step_seconds=step_seconds,
                               difficulty_scale=float(scales[0]) if scales else 1.0,
                               extra=({"control": control} if control else {})
                               | ({"clock": "virtual"} if clock.is_virtual else {})
                               | (extra or {}),
                               created=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(clock.unix_time())))
                writer = RunWriter.create(out, meta)
            else:
                position = writer.next_step()
                writer.set_extra("resumed", writer.meta.extra.get("resumed", []) + [
                    {"at": list(position) if position else None,
                     "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}])
            experiment = Experiment(pool, links, channels, writer, clock,
                                    narma_inputs(seed, steps, control),
                                    ExperimentConfig(step_seconds=step_seconds,
                                                     warmup_seconds=warmup_seconds,
                                                     progress=progress))
            return await experiment.run()
    finally:
        if writer is not None:
            writer.close()
        if own_pool:
            await pool.stop()


def _resumed_urls(units: Sequence[Any], urls: Sequence[str]) -> list[str]:
    """The addresses a resumed run connects to: the file's, or ``urls`` in their place."""
    if not urls:
        return [u.url for u in units]
    if len(urls) != len(units):
        raise ExperimentError(f"the run file has {len(units)} units "
                              f"({', '.join(u.name for u in units)}); got {len(urls)} addresses")
    return list(urls)


def _unit_names(urls: Sequence[str]) -> list[str]:
    names: list[str] = []
    for url in urls:
        base = parse_unit_url(url).model
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}{n}"
        names.append(name)
    return names


