"""The experiment loop: drive N units in lock-step, record everything, survive dropouts.

Each step of the input series is split into ``slots`` virtual-node slots on one clock (the
real clock, or the simulator's scaled clock shared with the pool). For every slot and unit
the loop applies the channel commands (pool difficulty / job through the pool, frequency /
fan through the unit's driver, pause duty on the LV06), polls the unit's telemetry near
the end of the slot, and files every pool share event into the slot whose window contains
its timestamp. A finished step is written to the run file in one transaction.

With a closed loop (``ChannelSet.loop``) each unit's command in a slot also carries its
own response read ``slots + 1`` slots earlier (:mod:`asic_reservoir.experiment.feedback`);
the response is normalised on a range calibrated in the warm-up, which runs the loop's
slots with the feedback off and reads the response at the loop's own poll point (kept in
the run file, so a resumed run uses the same one).

A unit that stops answering or leaves the pool is *marked* for that step (the reason is
recorded) and asked to rejoin; the experiment never stops for it. A unit that crosses its
safety envelope's temperature limit stops the experiment. Every unit's settings are put
back as they were when the experiment ends, also on error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.errors import OverTemperature, UnitError
from asic_reservoir.drivers.stratum import JobTemplate
from asic_reservoir.drivers.stratum.jobs import default_coinbase
from asic_reservoir.drivers.stratum.work import LBRY_DIFFICULTY_FACTOR
from asic_reservoir.drivers.units import open_unit
from asic_reservoir.experiment.channels import (
    ChannelError,
    ChannelSet,
    Command,
    DifficultyChannel,
    UnitInfo,
)
from asic_reservoir.experiment.feedback import ResponseLine, calibrate
from asic_reservoir.experiment.runs import (
    CommandRow,
    EffectRow,
    RunWriter,
    ShareRow,
    SlotRow,
    StepRecord,
    TelemetryRow,
    UnitMeta,
)
from asic_reservoir.progress import progress_bar

log = logging.getLogger(__name__)

POLL_AT = 0.5            # telemetry is requested mid-slot: the reply must land before the
                         # slot ends (a later one may show the next input and is not used)
REJOIN_EVERY_STEPS = 10  # re-point a unit that stays away from the pool this often
BASE_SHARE_RATE = 2.0    # shares per experiment second when the channel leaves difficulty alone
HASHRATE_POLL_S = 1.0    # experiment seconds between first telemetry reads until a hashrate shows


class ExperimentError(RuntimeError):
    """The experiment cannot start or must stop (unreachable unit, over-temperature...)."""


@dataclass
class UnitLink:
    """One unit under experiment: its driver, its pool worker and what channels know of it."""

    name: str
    url: str
    driver: Any                      # drivers.units.Unit
    worker: str
    info: UnitInfo
    meta: UnitMeta
    difficulty_scale: float = 1.0
    algorithm: str = "sha256d"
    sent: dict[str, float] = field(default_factory=dict)
    paused: bool = False
    absent_steps: int = 0
    last_temp: float | None = None
    verify_deadline_s: float | None = None   # how long a write may take to show (wall s)

    async def apply(self, pool: Any, commands: Sequence[Command], value: float) -> Any:
        """Send the commands that changed since the last slot (duty is handled by the loop).

        Returns the driver's verified :class:`ApplyResult` when settings were written."""
        settings: dict[str, Any] = {}
        for cmd in commands:
            if cmd.name == "duty" or self.sent.get(cmd.name) == cmd.value:
                continue
            if cmd.name == "difficulty":
                # clean=False: shares on the previous job stay valid at their difficulty,
                # as a pool that retargets a running miner does it.
                await pool.set_difficulty(cmd.value * self.difficulty_scale, worker=self.worker,
                                          clean=False)
            elif cmd.name == "work":
                cfg = pool.config
                size = cfg.extranonce1_size + cfg.extranonce2_size
                await pool.push_job(work_template(value, self.algorithm, size),
                                    worker=self.worker)
            elif cmd.name == "fan_pct":
                settings["fan_pct"] = cmd.value
                if "fan_auto" not in self.sent:
                    settings["fan_auto"] = False
            else:
                settings[cmd.name] = cmd.value
            self.sent[cmd.name] = cmd.value
        if not settings:
            return None
        result = await self.driver.apply(settings, deadline_s=self.verify_deadline_s)
        if getattr(result, "restarting", False):
            raise ExperimentError(f"unit {self.name}: {sorted(settings)} needs a miner restart "
                                  f"on this firmware; it cannot carry an input")
        self.sent["fan_auto"] = 0.0
        return result


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def work_template(value: float, algorithm: str, extranonce_size: int) -> Any:
    """A job whose coinbase carries the input value (``work`` channel)."""
    tag = b"u=" + f"{value:.6f}".encode()
    coinb1, coinb2 = default_coinbase(extranonce_size, 1, tag)
    return JobTemplate(coinb1=coinb1, coinb2=coinb2, algorithm=algorithm)


def flatten_telemetry(reading: Any) -> dict[str, float | None]:
    """A driver reading as a flat numeric row (NaN/inf become None: a missing value)."""
    row = reading.as_row() if hasattr(reading, "as_row") else dict(reading)
    out: dict[str, float | None] = {}
    for k, v in row.items():
        if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
            out[k] = float(v) if isinstance(v, bool) else None
        else:
            out[k] = float(v) if math.isfinite(v) else None
    if getattr(reading, "paused", None) is not None:
        out["paused"] = float(bool(reading.paused))
    return out


def _same_pool(a: str | None, b: str) -> bool:
    """Pool URLs equal up to the scheme (units report ``stratum+tcp://h:p`` or ``h:p``)."""
    def norm(u: str) -> str:
        return u.split("://", 1)[-1].rstrip("/").lower()
    return a is not None and norm(a) == norm(b)


async def point_at_pool(driver: Any, pool_url: str, worker: str) -> None:
    """Send the unit to ``pool_url`` as ``worker``; restart it when the change needs one."""
    result = await driver.point_at_pool(pool_url, worker)
    if result.pending_restart and not result.restarting:
        await driver.restart()


async def connect_unit(url: str, pool: Any, *, name: str, worker: str,
                       difficulty_scale: float = 1.0, timeout: float = 5.0,
                       session_timeout: float = 180.0,
                       stack: contextlib.AsyncExitStack | None = None,
                       simulated: dict[str, Any] | None = None,
                       taken: Sequence[str] = ()) -> UnitLink:
    """Open ``url``, identify it, point it at ``pool`` as ``worker`` and wait for its session.

    A unit already mining on ``pool`` keeps its worker name (unless another unit of the
    experiment uses it, ``taken``), which spares a restart. With ``stack``, the unit's
    settings are snapshotted *before* it is pointed at the pool and restored (pool
    included) when the stack closes.
    """
    try:
        driver = await open_unit(url, timeout=timeout, attempts=2)
    except (ValueError, UnitError, OSError) as exc:
        raise ExperimentError(f"unit {url}: {exc}") from exc
    if stack is not None:
        stack.push_async_callback(driver.close)
    try:
        ident = await driver.identify()
        if not driver.write_probe_refusal:     # harmless here: the current clock written back,
            await driver.probe_writes()        # read back; what it showed joins the capabilities
        caps = await driver.capabilities()
        algorithm = "lbry" if driver.model == "lbbox" else "sha256d"
        pool_url = pool.lbry_url if algorithm == "lbry" else pool.url
        if pool_url is None:
            raise ExperimentError(f"unit {url} mines {algorithm} but the pool has no "
                                  f"{algorithm} listener")
        if stack is not None:
            await stack.enter_async_context(driver.session())
        current = await driver.settings()
        if _same_pool(current.get("pool_url"), pool_url) and current.get("pool_user") \
                and current["pool_user"] not in taken:
            worker = current["pool_user"]      # already mining for us: keep its worker name
        else:
            log.info("unit %s: pointing at %s as %s", url, pool_url, worker)
            await point_at_pool(driver, pool_url, worker)
    except (UnitError, OSError, asyncio.TimeoutError) as exc:
        if stack is None:
            await driver.close()
        raise ExperimentError(f"unit {url} is unreachable or refused: {exc}") from exc
    except BaseException:
        if stack is None:
            await driver.close()
        raise
    try:
        await pool.wait_for_session(worker=worker, timeout=session_timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        if stack is None:
            await driver.close()
        raise ExperimentError(f"unit {url} did not connect to the pool at {pool_url} as "
                              f"{worker!r} within {session_timeout:g} s") from exc
    env = driver.envelope
    chips = 0
    hashrate = 0.0
    for _ in range(20):
        try:
            tel = await driver.telemetry()
        except (UnitError, OSError, asyncio.TimeoutError) as exc:
            if stack is None:
                await driver.close()
            raise ExperimentError(f"unit {url}: telemetry failed: {exc}") from exc
        chips = sum(c.chips or 0 for c in tel.chains)
        hashrate = tel.hashrate_ghs or 0.0
        if hashrate > 0:
            break
        await pool.clock.sleep(HASHRATE_POLL_S)    # experiment time: a 60 s firmware window
    freq_range = None
    if caps.frequency and not caps.frequency_needs_restart:
        freq_range = tuple(env.frequency_mhz)
        if caps.frequency_steps:
            freq_range = (min(caps.frequency_steps), max(caps.frequency_steps))
    info = UnitInfo(model=driver.model, hashrate_ghs=hashrate, frequency_range=freq_range,
                    frequency_steps=tuple(caps.frequency_steps), fan_range=tuple(env.fan_pct),
                    difficulty_factor=LBRY_DIFFICULTY_FACTOR if algorithm == "lbry" else 1.0,
                    capabilities=caps)
    sim = simulated or {}
    meta = UnitMeta(name=name, url=url, model=driver.model, firmware=ident.firmware,
                    worker=worker, profile=sim.get("profile", ""), seed=sim.get("seed"),
                    difficulty_scale=difficulty_scale, simulated=bool(sim), chips=chips,
                    capabilities=asdict(caps))
    if chips > 1:
        pool.set_chip_count(worker, chips)
    return UnitLink(name, url, driver, worker, info, meta, difficulty_scale, algorithm)


@dataclass
class ExperimentConfig:
    """Timing of an experiment, in experiment-clock seconds."""

    step_seconds: float = 5.0
    warmup_seconds: float = 0.0
    poll_at: float = POLL_AT
    telemetry: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.step_seconds > 0:
            raise ExperimentError(f"step_seconds must be > 0, got {self.step_seconds}")
        if not 0 < self.poll_at <= 1:
            raise ExperimentError(f"poll_at must be in (0, 1], got {self.poll_at}")


@dataclass
class ExperimentSummary:
    steps_written: int = 0
    marked: int = 0
    late_slots: int = 0
    late_polls: int = 0       # telemetry replies still outstanding when the step ended
    shares: int = 0
    early_shares: int = 0     # stamped while the previous step was being written
    wall_seconds: float = 0.0
    already_complete: bool = False   # the run file had every step: nothing was run
    feedback_missing: int = 0  # closed loop: slots whose delayed response was not there


class Experiment:
    """Runs the steps a :class:`RunWriter` still lacks, for the given units and channels.

    ``inputs(run)`` returns the input series of one run (length ``meta.steps``); it must be
    deterministic so that a resumed run continues the same series.
    """

    def __init__(self, pool: Any, units: Sequence[UnitLink], channels: ChannelSet,
                 writer: RunWriter, clock: Clock, inputs: Callable[[int], np.ndarray],
                 config: ExperimentConfig | None = None) -> None:
        if not units:
            raise ExperimentError("no units to run")
        self.pool = pool
        self.units = list(units)
        self.channels = channels
        self.writer = writer
        self.clock = clock
        self.inputs = inputs
        self.config = config or ExperimentConfig()
        self.summary = ExperimentSummary()
        self._by_worker = {u.worker: u for u in self.units}
        self._events: list[Any] = []
        self._queue: asyncio.Queue | None = None
        self._background: set[asyncio.Task] = set()
        self._slot = 0                              # slots run so far (the delay line's clock)
        self._lines: dict[str, ResponseLine] = {}   # closed loop: per unit
        self._warmup_responses: dict[str, list[float]] = {u.name: [] for u in self.units}
        for unit in self.units:
            try:
                channels.check(unit.info)
            except ChannelError as exc:
                raise ExperimentError(f"unit {unit.name} ({unit.info.model}): {exc}") from exc

    # ------------------------------------------------------------------ run
    async def run(self) -> ExperimentSummary:
        meta = self.writer.meta
        position = self.writer.next_step()
        if position is None:
            log.info("run file %s is complete", self.writer.path)
            self.summary.already_complete = True
            return self.summary
        todo = [(r, s) for r in range(meta.runs) for s in range(meta.steps)
                if (r, s) >= position]
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        progress = progress_bar(len(todo), "experiment", enabled=self.config.progress, unit="step")
        self._queue = self.pool.subscribe()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for unit in self.units:
                    await stack.enter_async_context(unit.driver.session())
                stack.push_async_callback(self._cleanup)
                series: dict[int, np.ndarray] = {}
                await self._base_difficulty()
                if self.config.warmup_seconds > 0:
                    await self._warmup(self.inputs(todo[0][0]))
                if self.channels.loop is not None:
                    self._open_lines()
                slot_len = self.config.step_seconds / self.channels.slots
                for unit in self.units:       # a write must show within a quarter slot
                    unit.verify_deadline_s = max(0.2, 0.25 * self.clock.wall_seconds(slot_len))
                pending: tuple[StepRecord, list[asyncio.Task]] | None = None
                for run, step in todo:
                    if run not in series:
                        series = {run: np.asarray(self.inputs(run), dtype=float)}
                        if len(series[run]) != meta.steps:
                            raise ExperimentError(f"input series of run {run} has "
                                                  f"{len(series[run])} steps, expected {meta.steps}")
                    pending = await self._step(run, step, float(series[run][step]), slot_len,
                                               pending)
                    self.summary.steps_written += 1
                    progress.set_postfix(self._progress_fields(wall0, loop.time()), refresh=False)
                    progress.update(1)
                if pending is not None:
                    await self._finish(*pending)
        finally:
            self.pool.unsubscribe(self._queue)
            progress.close()
            self.summary.wall_seconds = loop.time() - wall0
            self.summary.feedback_missing = sum(x.missing for x in self._lines.values())
        return self.summary

    def _open_lines(self) -> None:
        """One delay line per unit, on the response range given, stored in the run file, or
        calibrated in this warm-up (then stored, so a resumed run uses the same one)."""
        loop = self.channels.loop
        assert loop is not None
        stored = dict(self.writer.meta.extra.get("delay_loop_range", {}))
        for unit in self.units:
            found = stored.get(unit.name)
            if found is None and loop.r_lo is None:
                try:
                    found = calibrate(self._warmup_responses[unit.name])
                except ChannelError as exc:
                    raise ExperimentError(f"unit {unit.name}: {exc}") from exc
                stored[unit.name] = list(found)
            try:
                self._lines[unit.name] = ResponseLine.for_unit(
                    loop, self.channels.slots, tuple(found) if found is not None else None)
            except ChannelError as exc:
                raise ExperimentError(f"unit {unit.name}: {exc}") from exc
        if stored and stored != self.writer.meta.extra.get("delay_loop_range"):
            self.writer.set_extra("delay_loop_range", stored)
            log.info("delay loop: response ranges %s", stored)

    async def _base_difficulty(self) -> None:
        """Channels without a difficulty component still read shares: give each unit a
        fixed difficulty for ~BASE_SHARE_RATE shares per second at its nominal hashrate."""
        if any(isinstance(c, DifficultyChannel) for c in self.channels.channels):
            return
        for unit in self.units:
            if unit.info.hashrate_ghs > 0:
                d = DifficultyChannel(mode="log", rate=BASE_SHARE_RATE).base(unit.info)
                await self.pool.set_difficulty(d * unit.difficulty_scale, worker=unit.worker,
                                               clean=False)
                unit.sent["difficulty"] = d

    def _drain(self) -> None:
        """Take every share event the pool has stamped so far (the pool enqueues as it reads)."""
        assert self._queue is not None
        while not self._queue.empty():
            event = self._queue.get_nowait()
            if event.worker in self._by_worker:
                self._events.append(event)

    def _progress_fields(self, wall0: float, now: float) -> dict[str, object]:
        fields: dict[str, object] = {"shares/s": self.summary.shares / max(now - wall0, 1e-9)}
        temps = [u.last_temp for u in self.units if u.last_temp is not None]
        if temps:
            fields["temp"] = max(temps)
        if self.summary.marked:
            fields["marked"] = self.summary.marked
        return fields

    async def _warmup(self, u: np.ndarray) -> None:
        """Drive the units with the first inputs until the thermal state has settled.

        A closed loop without a given response range is calibrated here: the warm-up then
        runs the loop's own slots with the feedback off (masked input, same slot length)
        and reads the response at the loop's own poll point, so the range holds the
        readings the loop will feed back (read at a step's end instead, a slow theta
        calibrates on a chip the firmware's fan loop has pulled back to its target, and
        the run's mid-slot readings fall outside the range)."""
        end = self.clock.now() + self.config.warmup_seconds
        loop = self.channels.loop
        listen = loop is not None and loop.r_lo is None
        slot_len = self.config.step_seconds / self.channels.slots
        i = 0
        while self.clock.now() < end:
            x = float(u[i % len(u)])
            if listen:
                for v in self.channels.slot_values(x):
                    t0 = self.clock.now()
                    await self._apply_all(v)
                    await self.clock.sleep_until(t0 + self.config.poll_at * slot_len)
                    await asyncio.gather(*(self._listen(unit) for unit in self.units))
                    await self.clock.sleep_until(t0 + slot_len)
            else:
                await self._apply_all(self.channels.slot_values(x)[0])
                await self.clock.sleep(min(self.config.step_seconds, end - self.clock.now()))
            i += 1
        self._drain()
        self._events.clear()

    async def _apply_all(self, v: float) -> None:
        await asyncio.gather(*(self._guard(unit, unit.apply(
            self.pool, self.channels.commands(v, unit.info), v)) for unit in self.units))

    async def _listen(self, unit: UnitLink) -> None:
        assert self.channels.loop is not None
        reading = await self._guard(unit, unit.driver.telemetry())
        if reading is not None:
            self._check_temperature(unit, reading)
            value = flatten_telemetry(reading).get(self.channels.loop.response)
            if value is not None:
                self._warmup_responses[unit.name].append(value)

    async def _step(self, run: int, step: int, u: float, slot_len: float,
                    previous: tuple[StepRecord, list[asyncio.Task]] | None
                    ) -> tuple[StepRecord, list[asyncio.Task]]:
        """Run one step; returns its record, written after the next step's first commands.

        Slots have a fixed length and follow each other without gaps: a slot starts once
        its commands are sent (so its window starts when the previous one's command was
        replaced). Telemetry is read in the background at ``poll_at`` of each slot, so a slow
        reply never stretches a slot (it is filed under the slot it was requested in). The
        previous step is completed and written once this step's first commands are out,
        keeping replies and the database commit off the critical path.
        """
        values = self.channels.slot_values(u)
        rec = StepRecord(run=run, step=step, u=u, t_start_ns=0, t_end_ns=0)
        marks: dict[str, str] = {}
        polls: list[asyncio.Task] = []
        for k, v in enumerate(values):
            g, self._slot = self._slot, self._slot + 1
            drive = {unit.name: self._drive(unit, u, k, g, v, rec) for unit in self.units}
            t0 = self.clock.now()
            if rec.slots:
                rec.slots[-1].t_end_ns = int(t0 * 1e9)
            elif previous is not None:
                previous[0].slots[-1].t_end_ns = int(t0 * 1e9)
            self._check_sessions(marks)
            await asyncio.gather(*(self._command(unit, k, drive[unit.name], rec, marks)
                                   for unit in self.units))
            if self.clock.now() > t0 + 0.25 * slot_len:
                self.summary.late_slots += 1     # commands took a quarter of the slot
            if previous is not None:
                await self._finish(*previous)
                previous = None
            t1 = t0 + slot_len
            polls.extend(asyncio.create_task(self._timed(unit, k, drive[unit.name], t0, t1,
                                                         rec, marks, g))
                         for unit in self.units)
            rec.slots.append(SlotRow(k, v, int(t0 * 1e9), int(t1 * 1e9)))
            await self.clock.sleep_until(t1)
        rec.marks = marks
        return rec, polls

    async def _finish(self, rec: StepRecord, polls: list[asyncio.Task]) -> None:
        """Collect the step's telemetry, file its shares and commit it (its last slot's
        window is closed now: the next step's first commands are out)."""
        if polls:
            _done, late = await asyncio.wait(polls, timeout=0)
            if late:
                self.summary.late_polls += len(late)
                await asyncio.wait(late)
            for task in polls:
                task.result()      # re-raise a safety stop (over-temperature)
        rec.t_start_ns = rec.slots[0].t_start_ns
        rec.t_end_ns = rec.slots[-1].t_end_ns
        self._file_shares(rec)
        for unit in self.units:
            if unit.name in rec.marks:
                unit.absent_steps += 1
                if unit.absent_steps % REJOIN_EVERY_STEPS == 0:
                    self._spawn_rejoin(unit)
            else:
                unit.absent_steps = 0
        self.summary.marked += bool(rec.marks)
        self.writer.write_step(rec)

    def _check_sessions(self, marks: dict[str, str]) -> None:
        ready = {s.worker for s in self.pool.sessions.values() if s.authorized and s.subscribed}
        for unit in self.units:
            if unit.worker not in ready and unit.name not in marks:
                marks[unit.name] = "not connected to the pool"

    def _drive(self, unit: UnitLink, u: float, k: int, g: int, v: float,
               rec: StepRecord) -> float:
        """The unit's value for slot ``k`` (loop slot ``g``): the masked input ``v``, or in a
        closed loop that plus the response fed back (recorded as a ``feedback`` command)."""
        line = self._lines.get(unit.name)
        if line is None:
            return v
        r = line.feedback(g)
        rec.commands.append(CommandRow(unit.name, k, "feedback", r))
        return self.channels.slot_value(u, k, r)

    async def _command(self, unit: UnitLink, k: int, v: float, rec: StepRecord,
                       marks: dict[str, str]) -> None:
        commands = self.channels.commands(v, unit.info)
        for cmd in commands:
            rec.commands.append(CommandRow(unit.name, k, cmd.name, cmd.value))
        result = await self._guard(unit, unit.apply(self.pool, commands, v), marks)
        for o in getattr(result, "outcomes", ()):      # what each setting write did
            rec.effects.append(EffectRow(unit.name, k, o.key, _number(o.commanded),
                                         _number(o.effective if o.effective is not None
                                                 else o.setting), o.status, o.evidence))
        duty = next((c.value for c in commands if c.name == "duty"), None)
        if duty is not None and duty > 0 and unit.paused:
            await self._guard(unit, self._set_paused(unit, False), marks)

    async def _timed(self, unit: UnitLink, k: int, v: float, t0: float, t1: float,
                     rec: StepRecord, marks: dict[str, str], g: int = 0) -> None:
        """The timed actions inside a slot: the duty pause and the telemetry poll (whose
        reading a closed loop files as loop slot ``g``'s response)."""
        actions: list[tuple[float, str]] = []
        duty = next((c.value for c in self.channels.commands(v, unit.info) if c.name == "duty"),
                    None)
        if duty is not None and duty < 1:
            actions.append((t0 + duty * (t1 - t0), "pause"))
        if self.config.telemetry:
            actions.append((t0 + self.config.poll_at * (t1 - t0), "poll"))
        for when, action in sorted(actions):
            await self.clock.sleep_until(when)
            if action == "pause":
                await self._guard(unit, self._set_paused(unit, True), marks)
                continue
            reading = await self._guard(unit, unit.driver.telemetry(), marks)
            if reading is not None:
                self._check_temperature(unit, reading)
                unit.last_temp = reading.chip_temp_c
                row = flatten_telemetry(reading)
                rec.telemetry.append(TelemetryRow(unit.name, k, self.clock.now_ns(), row))
                if unit.name in self._lines:
                    self._lines[unit.name].record(g, row)

    async def _set_paused(self, unit: UnitLink, paused: bool) -> None:
        await (unit.driver.pause() if paused else unit.driver.resume())
        unit.paused = paused

    def _check_temperature(self, unit: UnitLink, reading: Any) -> None:
        try:
            unit.driver.check_temperature(reading)
        except OverTemperature as exc:
            raise ExperimentError(f"stopping: {exc}") from exc

    async def _guard(self, unit: UnitLink, awaitable: Any,
                     marks: dict[str, str] | None = None) -> Any:
        """Await a unit operation; a failure marks the unit for this step instead of raising."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a Ctrl-C
            # (cancellation) that lands as the operation completes, and the run goes on
            async with asyncio.timeout(max(unit.driver.timeout, 1.0) * 2):
                return await awaitable
        except (UnitError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            log.warning("unit %s: %s", unit.name, exc)
            if marks is not None:
                marks.setdefault(unit.name, f"{type(exc).__name__}: {exc}"[:300])
            unit.sent.clear()          # resend every setting once it answers again
            return None

    def _spawn_rejoin(self, unit: UnitLink) -> None:
        pool_url = self.pool.lbry_url if unit.algorithm == "lbry" else self.pool.url
        log.warning("unit %s: away for %d steps; pointing it at the pool again", unit.name,
                    unit.absent_steps)
        task = asyncio.ensure_future(self._guard(unit, point_at_pool(unit.driver, pool_url,
                                                                     unit.worker)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _file_shares(self, rec: StepRecord) -> None:
        """Move share events inside this step's slots into the record; keep later ones."""
        self._drain()
        start, end = rec.t_start_ns, rec.t_end_ns
        edges = np.array([s.t_start_ns for s in rec.slots[1:]], dtype=np.int64)
        keep: list[Any] = []
        for ev in self._events:
            if ev.clock_ns >= end:
                keep.append(ev)
                continue
            if ev.clock_ns < start:            # between the previous step's write and now
                self.summary.early_shares += 1
            slot = int(np.searchsorted(edges, ev.clock_ns, side="right"))
            unit = self._by_worker[ev.worker]
            scale = unit.difficulty_scale      # record difficulties in real-hardware units
            rec.shares.append(ShareRow(unit.name, slot, ev.clock_ns, ev.job_id, ev.nonce, ev.chip,
                                       ev.share_difficulty / scale, ev.pool_difficulty / scale,
                                       ev.accepted, ev.code, ev.version_bits))
            self.summary.shares += 1
        self._events = keep

    async def _cleanup(self) -> None:
        """Before the drivers restore settings: resume paused units, reset difficulties."""
        for unit in self.units:
            if unit.paused:
                await self._guard(unit, self._set_paused(unit, False))
            if "difficulty" in unit.sent:
                with contextlib.suppress(Exception):
                    await self.pool.set_difficulty(self.pool.difficulty(unit.algorithm),
                                                   worker=unit.worker)
            if "work" in unit.sent:       # back to the pool's own jobs
                with contextlib.suppress(Exception):
                    await self.pool.push_job(JobTemplate(algorithm=unit.algorithm),
                                             worker=unit.worker)


def input_seed(seed: int, run: int) -> int:
    """Seed of run ``run``'s input series (independent, reproducible streams)."""
    digest = hashlib.sha256(f"asic-reservoir input {seed} {run}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
