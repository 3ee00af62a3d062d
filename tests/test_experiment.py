"""The experiment loop end to end through real sockets: pool, simulated units, drivers.

Small sizes (tens to hundreds of steps) in virtual time: pool, units and experiment share
one event loop whose clock jumps to the next event, so waits below are simulated seconds.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.analysis.runfiles import analyze_files, AnalysisOptions
from asic_reservoir.experiment.record import run_experiment
from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.analysis.states import StatesError, states
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.simulator import UnitConfig, start_units
from asic_reservoir.simulator.firmware.generations import DEMO_FIRMWARE
from tests.support import free_port, recorded_steps, wait_until

pytestmark = pytest.mark.virtual_time
SEEDS = {"s9": 11, "lv06": 12, "lbbox": 13}
AMBIENT_C = 25.0            # every simulated unit stands in a 25 C room


async def _setup(models):
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0, seed=1), clock=clock)
    await pool.start()
    # seeded noise: in virtual time every run of a test records the same file
    configs = [UnitConfig(model=m, seed=SEEDS[m], noise_seed=SEEDS[m], host="127.0.0.1",
                          pool_url=pool.lbry_url if m == "lbbox" else pool.url,
                          worker=f"ar.{m}", rpc_port=0, http_port=0,
                          ambient_c=AMBIENT_C, firmware=DEMO_FIRMWARE.get(m))
               for m in models]
    return clock, pool, configs


def _kwargs(units, clock, pool, **extra):
    base = dict(pool=pool, clock=clock, progress=False,
                difficulty_scales=[u.difficulty_scale for u in units],
                names=[u.config.model for u in units],
                simulated=[{"profile": u.config.model, "seed": u.config.seed} for u in units])
    base.update(extra)
    return base


async def test_published_encoding_through_sockets(tmp_path):
    clock, pool, configs = await _setup(["s9", "lbbox"])
    path = tmp_path / "run.db"
    try:
        async with start_units(configs, clock=clock) as units:
            summary = await run_experiment([u.url for u in units], "difficulty", path,
                                           steps=24, runs=1, step_seconds=5.0,
                                           **_kwargs(units, clock, pool))
    finally:
        await pool.stop()
    assert summary.steps_written == 24 and summary.shares > 0
    with RunReader(path) as r:
        meta = r.meta
        assert [u.model for u in meta.units] == ["s9", "lbbox"]
        assert meta.units[0].simulated and meta.units[0].seed == 11 and meta.units[0].chips == 189
        assert meta.extra["clock"] == "virtual" and meta.channel["spec"] == "difficulty"
        steps = r.steps(0)
        assert [s[0] for s in steps] == list(range(24))
        us = np.array([s[1] for s in steps])
        assert np.all((us >= 0) & (us <= 0.5))
        for unit in ("s9", "lbbox"):
            cmds = r.commands(0, unit)
            d = np.array([c[3] for c in cmds])
            # Published encoding: D * (u + eps) is the same constant D0 at every step.
            assert np.allclose(d * (us + 0.01), d[0] * (us[0] + 0.01), rtol=1e-9)
            shares = r.shares(0, unit)
            assert len(shares) > 24
            tel = list(r.telemetry(0, unit))
            assert len(tel) >= 22 and all("chip_temp_c" in t[3] for t in tel)
        # Every share sits inside the window of the slot it was filed under.
        windows = {(s, k): (t0, t1) for s, k, _v, t0, t1 in r.slots(0)}
        for step, slot, ns, *_ in r.shares(0, "s9"):
            t0, t1 = windows[(step, slot)]
            assert t0 <= ns < t1 or (slot == 0 and ns < t0)
        # S9 shares carry the chip derived from the nonce.
        assert {s[4] for s in r.shares(0, "s9")} <= set(range(189))
        sm = states(r, 0, ["s9"])
    assert sm.X.shape[0] == 24 and "s0/count" in sm.names
    # More input -> lower difficulty -> more shares per second (the published encoding's
    # only effect); per second because a loaded host may stretch steps.
    rate = sm.X[:, sm.names.index("s0/rate")]
    assert np.corrcoef(rate, sm.u)[0, 1] > 0.3      # ~0.8 on an idle host, ~10 shares/step


async def test_live_channel_settings_restored_and_states(tmp_path):
    clock, pool, configs = await _setup(["lv06"])
    path = tmp_path / "run.db"
    try:
        async with start_units(configs, clock=clock) as units:
            before = units[0].settings()
            await run_experiment([units[0].url], "frequency+fan", path, steps=16, slots=2,
                                 step_seconds=10.0, **_kwargs(units, clock, pool))
            after = units[0].settings()
    finally:
        await pool.stop()
    assert after["frequency_mhz"] == before["frequency_mhz"]
    assert after["fan_auto"] == before["fan_auto"] and after["fan_pct"] == before["fan_pct"]
    with RunReader(path) as r:
        cmds = r.commands(0, "lv06")
        freqs = [c[3] for c in cmds if c[2] == "frequency_mhz"]
        assert len(freqs) == 32 and min(freqs) >= 400 and max(freqs) <= 575
        tel = [t[3] for t in r.telemetry(0, "lv06")]
        sent = {(c[0], c[1]): c[3] for c in cmds if c[2] == "frequency_mhz"}
        read = [(s, k, t["frequency_mhz"]) for (s, k, _ns, t) in r.telemetry(0, "lv06")]
        # The unit reports the frequency commanded in that slot (AxeOS reports integers).
        assert all(abs(f - sent[(s, k)]) <= 0.5 for s, k, f in read)
        assert len(tel) == 32
        effects = r.effects(0, "lv06")                # every write verified by read-back
        assert effects and all(e[5] == "applied" for e in effects)
        assert all(abs(e[4] - e[3]) <= 1 for e in effects if e[2] == "frequency_mhz")
        learned = r.meta.units[0].capabilities["learned"]    # the harmless write-back, recorded
        assert any(line.startswith("frequency_mhz: the current value") and "running value "
                   "reported and equal" in line for line in learned), learned
        sm = states(r, 0)
    assert any(n.endswith("tel.power_w") for n in sm.names)
    assert sm.X.shape == (16, len(sm.names))


async def test_unit_sent_elsewhere_is_marked_and_pointed_back_by_the_toolkit(tmp_path):
    clock, pool, configs = await _setup(["lv06"])
    path = tmp_path / "run.db"
    steps = 40
    try:
        async with start_units(configs, clock=clock) as units:
            task = asyncio.create_task(run_experiment(
                [units[0].url], "difficulty", path, steps=steps, step_seconds=5.0,
                **_kwargs(units, clock, pool)))
            await wait_until(lambda: recorded_steps(path) >= 8, 600, 1.0, task=task)
            # Someone points the unit at another pool in its web UI and it reboots: it stays
            # away until the toolkit's own rejoin (every 10 absent steps) sends it back.
            units[0].apply(pool_url="stratum+tcp://127.0.0.1:9")
            await units[0].restart()
            away = recorded_steps(path)
            summary = await asyncio.wait_for(task, 600)
    finally:
        await pool.stop()
    assert summary.steps_written == steps
    with RunReader(path) as r:
        marks = r.marks(0)
        statuses = [s[2] for s in r.steps(0)]
    assert marks and all(m[1] == "lv06" for m in marks)
    assert statuses[-1] == "ok"                   # back at work by the end
    first = statuses.index("marked")
    assert first >= away - 1 and statuses[first:first + 10] == ["marked"] * 10
    assert sum("not connected to the pool" in m[2] for m in marks) >= 9
    assert statuses.count("marked") == len(marks) < steps - away


async def test_unreachable_unit_and_channel_refusal(tmp_path):
    clock, pool, configs = await _setup(["s9"])
    closed = free_port()
    try:
        with pytest.raises(ExperimentError, match="unreachable"):
            await run_experiment([f"lv06://127.0.0.1:{closed}"], "difficulty",
                                 tmp_path / "a.db", steps=5, pool=pool, clock=clock,
                                 progress=False)
        async with start_units(configs, clock=clock) as units:
            with pytest.raises(ExperimentError, match="restart"):
                await run_experiment([units[0].url], "frequency", tmp_path / "b.db", steps=5,
                                     **_kwargs(units, clock, pool))
    finally:
        await pool.stop()
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


async def test_run_file_readable_while_written_and_analysis(tmp_path):
    clock, pool, configs = await _setup(["lv06"])
    path = tmp_path / "run.db"
    seen = []
    try:
        async with start_units(configs, clock=clock) as units:
            task = asyncio.create_task(run_experiment(
                [units[0].url], "frequency", path, steps=120, step_seconds=5.0,
                **_kwargs(units, clock, pool)))
            while not task.done():
                await asyncio.sleep(10.0)        # two steps
                seen.append(recorded_steps(path))
            await task
    finally:
        await pool.stop()
    growing = [n for n in seen if 0 < n < 120]
    assert len(set(growing)) >= 2                # saw several partial states of the file
    report = analyze_files([path], AnalysisOptions(washout=10, esn_sizes=(20,)))
    entry = report.entries[0]
    assert entry.unit.startswith("lv06") and entry.channel == "frequency"
    for name in ("hardware", "hardware + input"):
        assert 0 < entry.readouts[name].mean < 1.5
    assert set(entry.controls) >= {"input only", "shuffled states"}
    assert set(report.baselines) >= {"mean", "ridge u(t)", "ridge 10 delays", "ESN-20"}


async def test_commands_that_do_not_take_effect_are_recorded_and_flagged(tmp_path):
    clock, pool, configs = await _setup(["lv06"])
    path = tmp_path / "run.db"
    try:
        async with start_units(configs, clock=clock) as units:
            unit = units[0]
            real_apply = unit.apply

            def acks_but_keeps_its_clock(**changes):   # answers 200, never stores the clock
                changes.pop("frequency_mhz", None)
                return real_apply(**changes)

            unit.apply = acks_but_keeps_its_clock
            await run_experiment([unit.url], "frequency", path, steps=30, step_seconds=5.0,
                                 **_kwargs(units, clock, pool))
    finally:
        await pool.stop()
    with RunReader(path) as r:
        effects = [e for e in r.effects(0, "lv06") if e[2] == "frequency_mhz"]
        # every write reads back the old clock; only commands that happen to be 485 pass
        assert effects and all(e[4] == 485 for e in effects)
        assert all(e[5] == "not_applied" and "reads 485" in e[6]
                   for e in effects if abs(e[3] - 485) > 1)
        assert sum(e[5] == "not_applied" for e in effects) > 0.8 * len(effects)
    with pytest.raises(StatesError, match="frequency not scored: .* did not take effect"):
        analyze_files([path], AnalysisOptions(washout=5, esn_sizes=(20,)))


async def test_work_channel_writes_the_input_into_the_coinbase(tmp_path):
    clock, pool, configs = await _setup(["lv06"])
    path = tmp_path / "run.db"
    tags: set[bytes] = set()

    async def watch(miner) -> None:          # what the miner is hashing, as the run goes
        while True:
            job = miner.job
            if job is not None and b"u=" in job.coinb2:
                tags.add(job.coinb2[job.coinb2.index(b"u="):][:10])
            await asyncio.sleep(0.5)

    try:
        async with start_units(configs, clock=clock) as units:
            watcher = asyncio.create_task(watch(units[0].miner))
            await run_experiment([units[0].url], "work", path, steps=10, step_seconds=5.0,
                                 **_kwargs(units, clock, pool))
            watcher.cancel()
            await asyncio.sleep(0.3)
            after = units[0].miner.job
    finally:
        await pool.stop()
    with RunReader(path) as r:
        inputs = {f"u={s[1]:.6f}".encode()[:10] for s in r.steps(0)}
        jobs = {row[0] for row in r.query("SELECT job FROM shares WHERE accepted = 1")}
        rejected = r.query("SELECT COUNT(*) FROM shares WHERE accepted = 0")[0][0]
    # The miner hashed coinbases carrying the step inputs, and the pool accepted the shares.
    assert len(tags) >= 3 and tags <= inputs
    assert len(jobs) >= 2 and rejected <= len(jobs)
    assert b"u=" not in after.coinb2                 # the pool's own jobs again afterwards


async def test_constant_input_control_scores_like_the_mean(tmp_path):
    """Driven by a constant, the unit carries nothing about the task: hardware-only ~1.0,
    reported as the 'constant input' control beside the real run of the same channel."""
    clock, pool, configs = await _setup(["lv06"])
    real, ctl = tmp_path / "real.db", tmp_path / "ctl.db"
    try:
        async with start_units(configs, clock=clock) as units:
            for path, control in ((real, None), (ctl, "constant-input")):
                await run_experiment([units[0].url], "fan", path, steps=150, step_seconds=5.0,
                                     control=control, **_kwargs(units, clock, pool))
    finally:
        await pool.stop()
    with RunReader(ctl) as r:
        assert r.meta.extra["control"] == "constant-input"
        assert {u for _step, u, *_ in r.steps(0)} == {0.25}
        assert len({c[3] for c in r.commands(0, "lv06") if c[2] == "fan_pct"}) == 1
    report = analyze_files([real, ctl], AnalysisOptions(washout=10, esn_sizes=(20,)))
    assert len(report.entries) == 1
    entry = report.entries[0]
    constant = entry.controls["constant input"]
    assert constant.mean > 0.85
    with pytest.raises(ExperimentError, match="control"):
        await run_experiment(["lv06://127.0.0.1:9"], "fan", tmp_path / "x.db", steps=5,
                             control="zero-input")


def test_analyze_plots_nrmse_against_slots(tmp_path):
    """Runs of one unit and channel at several slot counts give an NRMSE-vs-slots plot."""
    pytest.importorskip("matplotlib")
    from asic_reservoir.analysis.runfiles import _plot_slot_sweeps
    from asic_reservoir.analysis.readout import Summary
    from asic_reservoir.analysis.report import Entry
    entries = {n: Entry("lv06", f"fan x{n} slots", {"hardware": Summary(1.0 / n, 0.01, 3)})
               for n in (1, 2, 4)}
    lone = {1: Entry("s9", "difficulty", {"hardware": Summary(0.9, 0.02, 3)})}
    _plot_slot_sweeps(tmp_path, {("lv06", "fan"): entries, ("s9", "difficulty"): lone},
                      {"ridge u(t)": Summary(0.9, 0.02, 3)})
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["lv06_fan_nrmse_vs_slots.png"]
    assert (tmp_path / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_lbbox_duty_channel_sleeps_on_the_sleep_plan(tmp_path):
    """The LB-Box pauses by selecting its sleep plan (level 3) and wakes on the plan it ran."""
    clock, pool, configs = await _setup(["lbbox"])
    path = tmp_path / "run.db"
    seen: list[bool] = []
    try:
        async with start_units(configs, clock=clock) as (unit,):
            async def watch() -> None:
                while True:
                    seen.append(unit.reading().paused)
                    await asyncio.sleep(0.5)
            watcher = asyncio.create_task(watch())
            try:
                summary = await run_experiment([unit.url], "duty", path, steps=8, step_seconds=20.0,
                                               **_kwargs(units=[unit], clock=clock, pool=pool))
            finally:
                watcher.cancel()
            assert not unit.reading().paused and unit.settings()["frequency_mhz"] == 1000.0
    finally:
        await pool.stop()
    assert summary.steps_written == 8 and summary.marked == 0
    assert sum(1 for a, b in zip(seen, seen[1:]) if a and not b) >= 4   # slept and woke up
    with RunReader(path) as r:
        duties = [c[3] for c in r.commands(0, "lbbox") if c[2] == "duty"]
    assert len(duties) == 8 and all(0 <= d <= 1 for d in duties)
