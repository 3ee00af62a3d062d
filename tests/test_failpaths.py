"""What a user hits when a run goes wrong, through the real CLI process and the units' sockets:
Ctrl-C, over-temperature, a unit that cannot be restored, resuming finished or half-done files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sqlite3
from typing import Any

import numpy as np
import pytest

from asic_reservoir.experiment.record import narma_inputs, run_experiment
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.experiment.loop import ExperimentError, connect_unit
from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.simulator import SimulatedUnit, UnitConfig, start_units
from tests.support import finish, free_port, main_here, recorded_steps, start_cli, wait_until

SPEED = 20.0
NOWHERE = "stratum+tcp://127.0.0.1:9"     # the units' own pool: nothing listens there
RESTORED = ("frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct", "pool_url", "pool_user")


def lv06(seed: int, *, http_port: int = 0, ambient_c: float = 25.0,
         pool_url: str = NOWHERE) -> UnitConfig:
    return UnitConfig(model="lv06", seed=seed, host="127.0.0.1", pool_url=pool_url,
                      worker=f"home.{seed}", speed=SPEED, rpc_port=None, http_port=http_port,
                      ambient_c=ambient_c, noise_seed=seed,
                      firmware="axeos-2.15")   # live clock, fan and pause


def _restored(unit: SimulatedUnit, before: dict[str, Any]) -> dict[str, tuple]:
    """Settings that differ from ``before`` (empty when every setting is back)."""
    now = unit.settings()
    return {k: (before[k], now[k]) for k in RESTORED if now[k] != before[k]}


def _check_file(path, run: int = 0) -> int:
    """The run file passes its own checks, its steps are 0..k-1 and nothing is orphaned."""
    with RunReader(path) as r:
        steps = [s[0] for s in r.steps(run)]
        assert steps == list(range(len(steps)))
        for table in ("slots", "commands", "shares", "telemetry"):
            orphan = r.query(f"SELECT COUNT(*) FROM {table} t WHERE NOT EXISTS "
                             f"(SELECT 1 FROM steps s WHERE s.run = t.run AND s.step = t.step)")
            assert orphan[0][0] == 0, table
        return len(steps)


def _run_args(units, path, *, channel: str, steps: int, runs: int = 1,
              port: int | None = None) -> list[str]:
    args = ["run", "narma10", "--channel", channel, "--steps", str(steps), "--runs", str(runs),
            "--step-seconds", "5", "--seed", "3", "--out", str(path), "--speed", str(SPEED),
            "--difficulty-scale", repr(units[0].difficulty_scale), "--pool-port",
            str(port or free_port()), "--lbry-port", "0", "--quiet"]
    for unit in units:
        args += ["--unit", unit.url]
    return args


def _sim_args(path, *units: str, channel: str, steps: int, runs: int = 1) -> list[str]:
    """``run`` on ``sim:`` units: the command simulates them itself, in virtual time."""
    args = ["-v", "run", "narma10", "--channel", channel, "--steps", str(steps), "--runs",
            str(runs), "--step-seconds", "5", "--seed", "3", "--out", str(path), "--quiet"]
    for unit in units:
        args += ["--unit", unit]
    return args


def _restores_logged(err: str, units: int) -> None:
    """Each unit's driver wrote its settings back and read them back (``-v`` log): no
    failed or skipped restore."""
    assert len(re.findall(r"unit lv06://127\.0\.0\.1:\d+: restoring \[", err)) == units, err
    assert "restore did not take" not in err and "restoring settings" not in err, err
    assert "safe mode" not in err, err


async def _interrupt(args: list[str], path, after_steps: int) -> tuple[int, str, str]:
    """Start the command, send it SIGINT once ``after_steps`` steps are on file: exit code,
    stdout, stderr."""
    proc = await start_cli(*args)
    await wait_until(lambda: recorded_steps(path) >= after_steps, 120, interval=0.01,
                     proc=proc)
    proc.send_signal(signal.SIGINT)
    out, err = await finish(proc, 60)
    return proc.returncode, out, err


def test_ctrl_c_exits_130_after_restoring_and_leaves_a_resumable_file(tmp_path, capsys):
    # A real SIGINT to the command in a process of its own; its units are sim: units it
    # simulates itself in virtual time (the units it restores end with it: the restored
    # values themselves are checked on units that outlive the run in
    # test_cancelled_run_restores_every_unit_and_resumes). The resumes need no second
    # process: the command's main runs here.
    path = tmp_path / "run.db"
    steps = 100                      # ~13 ms of CPU per step: the signal lands mid-run
    code, out, err = asyncio.run(_interrupt(
        _sim_args(path, "sim:lv06:41", "sim:lv06:42", channel="frequency+fan", steps=steps),
        path, 6))
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err
    _restores_logged(err, 2)         # written back before the process exited
    done = _check_file(path)
    assert 6 <= done < steps

    code, out, err = main_here(capsys, "run", "narma10", "--resume", "--out", str(path),
                               "--quiet")
    assert code == 0, err
    assert f"{steps - done} steps written" in out
    # in virtual time the run's duration is simulated: 5 s steps, not this host's seconds
    assert f"{(steps - done) * 5:.1f} s simulated" in out
    assert _check_file(path) == steps
    with RunReader(path) as r:
        np.testing.assert_array_equal([s[1] for s in r.steps(0)], narma_inputs(3, steps)(0))
        assert [x["at"] for x in r.meta.extra["resumed"]] == [[0, done]]
        assert r.meta.extra["sim_units"] == ["sim:lv06:41", "sim:lv06:42"]

    # Resuming the finished file does nothing and says so.
    code, out, err = main_here(capsys, "run", "narma10", "--resume", "--out", str(path),
                               "--quiet")
    assert code == 0, err
    assert "already complete" in out and "nothing to do" in out
    with RunReader(path) as r:
        assert r.count("steps") == steps and len(r.meta.extra["resumed"]) == 1


def test_run_refuses_sim_units_it_cannot_simulate(tmp_path, capsys):
    out = str(tmp_path / "x.db")
    code, _, err = main_here(capsys, "run", "narma10", "--unit", "sim:lv6:1", "--out", out)
    assert code == 2 and "sim:MODEL:SEED" in err and "'sim:lv6:1'" in err
    code, _, err = main_here(capsys, "run", "narma10", "--unit", "sim:lv06:1", "--unit",
                             "lv06://127.0.0.1:9", "--out", out)
    assert code == 2 and "cannot share a run with units named by URL" in err
    code, _, err = main_here(capsys, "run", "narma10", "--unit", "lv06://127.0.0.1:9",
                             "--ambient", "30", "--out", out)
    assert code == 2 and "--ambient sets the room of sim: units" in err
    assert not (tmp_path / "x.db").exists()


def _lv06_virtual(seed: int, *, ambient_c: float = 25.0, pool_url: str = NOWHERE) -> UnitConfig:
    return UnitConfig(model="lv06", seed=seed, host="127.0.0.1", pool_url=pool_url,
                      worker=f"home.{seed}", rpc_port=None, http_port=0, ambient_c=ambient_c,
                      noise_seed=seed, firmware="axeos-2.15")


@pytest.mark.virtual_time
async def test_cancelled_run_restores_every_unit_and_resumes(tmp_path):
    # Ctrl-C cancels the command's main task (asyncio.run and run_virtual alike): the same
    # cancellation here, on units that outlive the run, so the values themselves are checked.
    path = tmp_path / "run.db"
    steps = 40
    clock = Clock.virtual()
    async with start_units([_lv06_virtual(41), _lv06_virtual(42)], clock=clock) as units:
        before = [u.settings() for u in units]
        task = asyncio.create_task(run_experiment(
            [u.url for u in units], "frequency+fan", path, steps=steps, seed=3, clock=clock,
            progress=False, difficulty_scales=[units[0].difficulty_scale]))
        await wait_until(lambda: recorded_steps(path) >= 6, 600, interval=1.0, task=task)
        # mid-run the units mine for the toolkit's pool at the channel's settings
        assert all(_restored(u, b) for u, b in zip(units, before))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for unit, b in zip(units, before):   # written back before the run returned
            assert _restored(unit, b) == {}
            # the home pool runs again after the reboot the toolkit asked for
            await wait_until(lambda: unit.reading().pool_url == NOWHERE and not unit.booting,
                             timeout=30)
            r = unit.reading()
            assert r.frequency_mhz == b["frequency_mhz"] and r.fan_auto
        done = _check_file(path)
        assert 6 <= done < steps
        summary = await run_experiment([], "frequency+fan", path, steps=steps, resume=True,
                                       clock=clock, progress=False)
        assert summary.steps_written == steps - done
        assert all(_restored(u, b) == {} for u, b in zip(units, before))
    assert _check_file(path) == steps
    with RunReader(path) as r:
        np.testing.assert_array_equal([s[1] for s in r.steps(0)], narma_inputs(3, steps)(0))
        assert [x["at"] for x in r.meta.extra["resumed"]] == [[0, done]]


# A warm room (40 C) and an experiment that holds the LV06's fan at 20-40 %: the chip crosses
# the toolkit's limit (ESP-Miner's 75 C throttle less a 5 C margin) in ~2 min.
HOT_CHANNEL = "fan:lo_pct=20:hi_pct=40"
HOT_STEPS = 60


def _stopped_hot(path) -> int:
    """The file of a run stopped by the temperature limit: valid, partial, and its hottest
    filed reading below the limit (the stopping reading is not filed as a step)."""
    done = _check_file(path)
    assert 0 < done < HOT_STEPS
    with RunReader(path) as r:
        hottest = max(t[3]["chip_temp_c"] for t in r.telemetry(0, "lv06"))
    assert 60 < hottest < 70
    return done


def test_over_temperature_stops_the_command_and_it_resumes_when_cool(tmp_path, capsys, caplog):
    # sim: units need no second process: the command's main runs here
    caplog.set_level(logging.INFO, logger="asic_reservoir.drivers.units")
    path = tmp_path / "hot.db"
    code, out, err = main_here(capsys, *_sim_args(path, "sim:lv06:12", channel=HOT_CHANNEL,
                                                  steps=HOT_STEPS), "--ambient", "40")
    assert code == 1, (out, err)
    assert "stopping:" in err and "chip temperature" in err and ">= limit 70 C" in err
    assert "Traceback" not in err
    _restores_logged(caplog.text, 1)          # fan back on auto, not over a safe mode
    done = _stopped_hot(path)

    # The room cools down; the same unit finishes the run.
    code, out, err = main_here(capsys, "run", "narma10", "--resume", "--out", str(path),
                               "--ambient", "25", "--quiet")
    assert code == 0, err
    assert f"{HOT_STEPS - done} steps written" in out
    assert _check_file(path) == HOT_STEPS


@pytest.mark.virtual_time
async def test_over_temperature_restores_the_unit_before_its_firmware_must_act(tmp_path):
    path = tmp_path / "hot.db"
    clock = Clock.virtual()
    async with start_units([_lv06_virtual(12, ambient_c=40.0)], clock=clock) as (unit,):
        before = unit.settings()
        with pytest.raises(ExperimentError, match=r"stopping:.*chip temperature.*>= limit 70 C"):
            await run_experiment([unit.url], HOT_CHANNEL, path, steps=HOT_STEPS, seed=3,
                                 clock=clock, progress=False,
                                 difficulty_scales=[unit.difficulty_scale])
        assert _restored(unit, before) == {}      # fan back on auto, pool back home
        assert not unit.overheated                # stopped before the firmware had to
    done = _stopped_hot(path)
    with pytest.raises(ExperimentError, match="has 1 units.*got 2 addresses"):
        await run_experiment(["lv06://127.0.0.1:9"] * 2, HOT_CHANNEL, path, steps=HOT_STEPS,
                             resume=True, clock=clock, progress=False)
    # the room cools; the unit (a new address now) finishes the run
    async with start_units([_lv06_virtual(12)], clock=clock) as (unit,):
        before = unit.settings()
        summary = await run_experiment([unit.url], HOT_CHANNEL, path, steps=HOT_STEPS,
                                       resume=True, clock=clock, progress=False)
        assert summary.steps_written == HOT_STEPS - done
        assert _restored(unit, before) == {}
    assert _check_file(path) == HOT_STEPS


async def _unplug(unit: SimulatedUnit) -> None:
    """The unit's management API goes away (web server down); it keeps hashing."""
    for server in unit._servers:
        await server.stop()


async def test_unit_unreachable_at_exit_fails_the_run_with_its_error(tmp_path):
    path = tmp_path / "run.db"
    steps = 24
    # units already mining on the toolkit's pool port: no reboot to point them, so restoring
    # an unreachable one fails at once instead of waiting out a boot
    port = free_port()
    home = f"stratum+tcp://127.0.0.1:{port}"
    async with start_units([lv06(51, pool_url=home), lv06(52, pool_url=home)],
                           clock=Clock(SPEED)) as units:
        before = [u.settings() for u in units]
        proc = await start_cli(*_run_args(units, path, channel="frequency+fan", steps=steps,
                                          port=port))
        await wait_until(lambda: recorded_steps(path) >= 4, 120, proc=proc)
        await _unplug(units[1])
        out, err = await finish(proc)
        # nothing else went wrong: the restore failure is the error, with the unit named
        assert proc.returncode == 1, (out, err)
        assert "asic-reservoir run:" in err and f"127.0.0.1:{units[1].http_port}" in err
        assert "Traceback" not in err
        assert _restored(units[0], before[0]) == {}       # the other unit is restored anyway
        assert _restored(units[1], before[1])             # this one could not be
    assert _check_file(path) == steps                     # every step is on file ...
    with RunReader(path) as r:
        marked = [m for m in r.marks(0) if m[1] == "lv062"]
        assert len(marked) >= 1                           # ... the unreachable one marked


async def test_ctrl_c_with_a_unit_unreachable_keeps_the_interrupt(tmp_path):
    path = tmp_path / "run.db"
    port = free_port()
    home = f"stratum+tcp://127.0.0.1:{port}"
    async with start_units([lv06(61, pool_url=home), lv06(62, pool_url=home)],
                           clock=Clock(SPEED)) as units:
        before = [u.settings() for u in units]
        proc = await start_cli(*_run_args(units, path, channel="frequency+fan", steps=200,
                                          port=port))
        await wait_until(lambda: recorded_steps(path) >= 4, 120, proc=proc)
        await _unplug(units[1])
        await wait_until(lambda: recorded_steps(path) >= 6, 120, proc=proc)
        proc.send_signal(signal.SIGINT)
        out, err = await finish(proc, 60)
        # the interrupt is what the user sees; the restore failure is logged beside it
        assert proc.returncode == 130, err
        assert "interrupted" in err and "restoring settings after an error failed" in err
        assert _restored(units[0], before[0]) == {}
    assert 6 <= _check_file(path) < 200


def test_multi_run_file_killed_at_a_run_boundary_resumes_the_next_run(tmp_path, capsys):
    path = tmp_path / "two.db"
    steps = 12
    code, out, err = main_here(capsys, *_sim_args(path, "sim:lv06:71", channel="difficulty",
                                                  steps=steps, runs=2))
    assert code == 0, err
    with RunReader(path) as r:
        run1_first = r.steps(1)
    # A kill at the boundary leaves run 0 whole and nothing of run 1 (one transaction
    # per step): cut the file back to exactly that.
    with sqlite3.connect(path) as db:
        for table in ("steps", "slots", "commands", "shares", "telemetry", "marks"):
            db.execute(f"DELETE FROM {table} WHERE run = 1")
    assert _check_file(path, 0) == steps and _check_file(path, 1) == 0

    # the file names its sim: units; naming them again is refused before anything runs
    code, out, err = main_here(capsys, "run", "narma10", "--resume", "--unit", "sim:lv06:71",
                               "--out", str(path))
    assert code == 2 and "leave out --unit" in err
    code, out, err = main_here(capsys, "run", "narma10", "--resume", "--out", str(path),
                               "--quiet")
    assert code == 0, err
    assert f"{steps} steps written" in out
    assert _check_file(path, 0) == steps and _check_file(path, 1) == steps
    with RunReader(path) as r:
        # run 1 gets run 1's own input series, as in the uninterrupted file
        assert [s[1] for s in r.steps(1)] == [s[1] for s in run1_first]
        np.testing.assert_array_equal([s[1] for s in r.steps(1)], narma_inputs(3, steps)(1))
        assert r.meta.extra["resumed"][0]["at"] == [1, 0]


@pytest.mark.virtual_time
async def test_duty_channel_pauses_inside_each_slot_and_leaves_the_unit_hashing(tmp_path):
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0), clock=clock)
    await pool.start()
    seen: list[bool] = []
    try:
        async with start_units([_lv06_virtual(81, pool_url=pool.url)], clock=clock) as (unit,):
            async def watch() -> None:
                while True:
                    seen.append(unit.paused)
                    await asyncio.sleep(0.01)
            watcher = asyncio.create_task(watch())
            try:
                summary = await run_experiment([unit.url], "duty", tmp_path / "duty.db", steps=12,
                                               step_seconds=10.0, pool=pool, clock=clock,
                                               progress=False,
                                               difficulty_scales=[unit.difficulty_scale])
            finally:
                watcher.cancel()
            assert not unit.paused and not unit.reading().paused    # resumed at the end
    finally:
        await pool.stop()
    assert summary.steps_written == 12 and summary.marked == 0
    resumes = sum(1 for a, b in zip(seen, seen[1:]) if a and not b)
    assert any(seen) and resumes >= 5          # paused inside slots, resumed for the next
    with RunReader(tmp_path / "duty.db") as r:
        duties = [c[3] for c in r.commands(0, "lv06") if c[2] == "duty"]
        inputs = [s[1] for s in r.steps(0)]
    assert len(duties) == 12 and all(0 <= d <= 1 for d in duties)
    # the hashing fraction follows the input: more input, longer hashing
    assert np.corrcoef(duties, inputs)[0, 1] > 0.99


class _AcceptAndClose:
    """Something listens on the unit's port but hangs up on every request."""

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._hang_up, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @staticmethod
    async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()


async def test_connect_unit_fails_clearly_when_the_port_hangs_up(tmp_path):
    pool = Pool(PoolConfig(host="127.0.0.1", port=0), clock=Clock(SPEED))
    await pool.start()
    try:
        async with _AcceptAndClose() as port:
            with pytest.raises(ExperimentError, match=f"lv06://127.0.0.1:{port}"):
                await asyncio.wait_for(connect_unit(f"lv06://127.0.0.1:{port}", pool,
                                                    name="lv06", worker="ar.lv06", timeout=1.0),
                                       60)
    finally:
        await pool.stop()


@pytest.mark.virtual_time
async def test_connect_unit_times_out_when_the_pool_never_accepts_the_unit():
    # The pool refuses the worker name (an allowlist): the unit is pointed at it, connects,
    # is never authorised; connect_unit gives up after its session timeout and the unit's
    # own pool is restored when the stack closes.
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, workers={"someone.else"}), clock=clock)
    await pool.start()
    try:
        async with start_units([_lv06_virtual(91)], clock=clock) as (unit,):
            before = unit.settings()
            async with contextlib.AsyncExitStack() as stack:
                with pytest.raises(ExperimentError, match="did not connect to the pool.*2 s"):
                    await connect_unit(unit.url, pool, name="lv06", worker="ar.lv06",
                                       session_timeout=2.0, stack=stack)
                assert unit.settings()["pool_url"] == pool.url     # it was pointed there
            assert _restored(unit, before) == {}
    finally:
        await pool.stop()
