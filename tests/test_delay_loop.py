"""The closed-loop delay reservoir: multi-level masks, the slot value with feedback, and the
loop closing through the real pool, HTTP driver and simulated LV06 in virtual time."""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
import pytest

from asic_reservoir.analysis.actuation import saturation
from asic_reservoir.analysis.states import StatesError, states
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.cli.experiment import loop_options, run_arguments
from asic_reservoir.experiment.record import run_experiment
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.experiment.channels import ChannelError, DelayLoop, make_mask, parse_channels
from asic_reservoir.experiment.feedback import ResponseLine, calibrate
from asic_reservoir.experiment.loop import ExperimentError
from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.simulator import UnitConfig, start_units
from tests.support import recorded_steps

LEVELS4 = {-1.0, -1 / 3, 1 / 3, 1.0}


def test_masks_are_multi_level_and_seeded():
    m = make_mask(12, seed=3, levels=4)
    assert {round(v, 9) for v in m} <= {round(v, 9) for v in LEVELS4}
    assert len(np.unique(m)) >= 3 and (m > 0).any() and (m < 0).any()
    assert np.array_equal(m, make_mask(12, seed=3, levels=4))          # the seed fixes it
    assert any(not np.array_equal(m, make_mask(12, seed=s, levels=4)) for s in range(4, 8))
    assert set(make_mask(12, seed=3)) <= {-1.0, 1.0}                   # default: binary
    five = make_mask(40, seed=1, levels=5)
    assert {round(v, 9) for v in five} <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    with pytest.raises(ChannelError, match="levels"):
        make_mask(4, seed=0, levels=1)


def test_gain_zero_is_the_open_loop_channel_and_commands_are_clipped():
    open_ = parse_channels("frequency", slots=6, seed=2, levels=4)
    closed = parse_channels("frequency", slots=6, seed=2, levels=4, loop=DelayLoop(gain=0.0))
    for u in np.linspace(0, 0.5, 11):
        for k in range(6):
            for r in (-0.5, 0.0, 0.3):
                assert closed.slot_value(u, k, r) == open_.slot_values(u)[k]
    strong = parse_channels("frequency", slots=6, seed=2, levels=4, loop=DelayLoop(gain=10.0))
    assert strong.slot_value(0.25, 0, 0.5) == 0.5 and strong.slot_value(0.25, 0, -0.5) == 0.0
    x = 0.3 / 0.5
    k = 1
    expected = 0.5 * min(1.0, max(0.0, 0.5 + 0.4 * 0.2 + strong.mask[k] * (x - 0.5)))
    mild = parse_channels("frequency", slots=6, seed=2, levels=4, loop=DelayLoop(gain=0.4))
    assert mild.slot_value(0.3, k, 0.2) == pytest.approx(expected, abs=1e-15)


def test_delay_loop_refusals():
    with pytest.raises(ChannelError, match="unit setting"):
        parse_channels("difficulty", slots=2, loop=DelayLoop(gain=0.5))
    with pytest.raises(ChannelError, match="both"):
        DelayLoop(gain=0.5, r_lo=40.0)
    with pytest.raises(ChannelError, match="r_hi > r_lo"):
        DelayLoop(gain=0.5, r_lo=40.0, r_hi=40.0)
    with pytest.raises(ChannelError, match="did not move"):
        calibrate([50.0] * 10)
    with pytest.raises(ChannelError, match="no range"):
        ResponseLine.for_unit(DelayLoop(gain=0.5), 4, None)


def test_response_line_reads_back_exactly_tau_slots_earlier():
    line = ResponseLine.for_unit(DelayLoop(gain=1.0, r_lo=40.0, r_hi=60.0), slots=3,
                                 calibration=None)
    assert line.delay == 4
    for g in range(10):
        if g >= 4:
            assert line.feedback(g) == pytest.approx((g - 4) / 20.0 - 0.5)
        else:
            assert line.feedback(g) == 0.0
        if g != 6:                                     # slot 6's poll failed
            line.record(g, {"chip_temp_c": 40.0 + g, "power_w": 3.0})
    assert line.feedback(10) == 0.0 and line.missing == 5   # 4 without history + slot 6


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run_arguments(parser)
    return parser.parse_args(["narma10", "--out", "x.db", *argv])


def test_run_flags():
    loop, levels, step = loop_options(_args("--slots", "8", "--theta", "0.5", "--gain", "0.7",
                                            "--response-range", "50,62"))
    assert loop == DelayLoop(gain=0.7, r_lo=50.0, r_hi=62.0) and levels == 4 and step == 4.0
    assert loop_options(_args("--slots", "3")) == (None, 2, 5.0)
    with pytest.raises(ValueError, match="not both"):
        loop_options(_args("--theta", "1", "--step-seconds", "4"))
    with pytest.raises(ValueError, match="needs --gain"):
        loop_options(_args("--response-range", "1,2"))


# --------------------------------------------------------------------- through the sockets

async def _lab() -> tuple[Clock, Pool, UnitConfig]:
    """A virtual clock, a started seeded pool and a live-clock LV06 (AxeOS 2.15) for it."""
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, lbry_port=0, seed=1), clock=clock)
    await pool.start()
    config = UnitConfig(model="lv06", seed=12, noise_seed=12, host="127.0.0.1",
                        pool_url=pool.url, worker="ar.lv06", rpc_port=0, http_port=0,
                        firmware="axeos-2.15")
    return clock, pool, config


async def _record(tmp_path, name: str, loop: DelayLoop | None, *, slots: int = 3,
                  theta: float = 1.0, steps: int = 14, warmup: float = 60.0):
    clock, pool, config = await _lab()
    path = tmp_path / f"{name}.db"
    try:
        async with start_units([config], clock=clock) as units:
            summary = await run_experiment(
                [units[0].url], "frequency", path, steps=steps, slots=slots,
                step_seconds=slots * theta, warmup_seconds=warmup, pool=pool, clock=clock,
                progress=False, difficulty_scales=[units[0].difficulty_scale], names=["lv06"],
                simulated=[{"profile": "lv06", "seed": 12}], loop=loop, mask_levels=4, seed=5)
    finally:
        await pool.stop()
    return path, summary


def _by_slot(reader: RunReader, n_slots: int):
    """Per loop slot g: commanded frequency, fed-back value, response read, slot input."""
    freq, fed, temp = {}, {}, {}
    for step, slot, name, value in reader.commands(0, "lv06"):
        g = step * n_slots + slot
        if name == "frequency_mhz":
            freq[g] = value
        elif name == "feedback":
            fed[g] = value
    for step, slot, _ns, data in reader.telemetry(0, "lv06"):
        temp[step * n_slots + slot] = data["chip_temp_c"]
    u = {s[0]: s[1] for s in reader.steps(0)}
    return freq, fed, temp, u


@pytest.mark.virtual_time
async def test_command_depends_on_the_response_exactly_tau_earlier(tmp_path):
    n, gain = 3, 0.8
    path, summary = await _record(tmp_path, "closed", DelayLoop(gain=gain))
    assert summary.steps_written == 14 and summary.marked == 0
    with RunReader(path) as r:
        lo, hi = r.meta.extra["delay_loop_range"]["lv06"]     # calibrated in the warm-up
        assert r.meta.channel["delay_loop"]["gain"] == gain
        mask = np.asarray(r.meta.mask)
        assert len(np.unique(mask)) >= 2 and set(np.round(mask, 9)) <= set(
            np.round(sorted(LEVELS4), 9))
        freq, fed, temp, u = _by_slot(r, n)
        effects = r.effects(0, "lv06")
        sat = saturation(r, 0, "lv06")
    assert lo < hi and len(freq) == len(fed) == 14 * n and len(temp) == 14 * n
    norm = {g: (t - lo) / (hi - lo) - 0.5 for g, t in temp.items()}
    tau = n + 1
    clipped = 0
    for g in range(14 * n):
        want = norm[g - tau] if g >= tau else 0.0
        assert fed[g] == pytest.approx(want, abs=1e-12)
        drive = 0.5 + gain * want + mask[g % n] * (u[g // n] / 0.5 - 0.5)
        clipped += not 0 <= drive <= 1
        a = min(1.0, max(0.0, drive))
        assert freq[g] == pytest.approx(round(400.0 + a * 175.0, 3), abs=1e-9)
    # the analysis rebuilds the same drives from the run file and counts the clipped ones
    assert sat.slots == 14 * n and sat.clipped == clipped
    assert sat.outside == sum(abs(fed[g]) > 0.5 for g in range(14 * n))
    # the fed-back values follow tau = N + 1 slots exactly, not a slot more or less
    g = np.arange(tau + 1, 14 * n - 1)
    for other in (tau - 1, tau + 1):
        assert max(abs(fed[i] - norm[i - other]) for i in g) > 0.05
    # every write was verified by read-back and applied
    assert effects and all(e[5] == "applied" for e in effects)
    assert summary.feedback_missing == tau


@pytest.mark.virtual_time
async def test_gain_zero_records_the_open_loop_commands(tmp_path):
    closed, _ = await _record(tmp_path, "zero", DelayLoop(gain=0.0), steps=8)
    open_, _ = await _record(tmp_path, "open", None, steps=8)
    with RunReader(closed) as a, RunReader(open_) as b:
        fa, fed, _, _ = _by_slot(a, 3)
        fb, none, _, _ = _by_slot(b, 3)
        assert a.meta.mask == b.meta.mask
    assert fa == fb and len(fa) == 24 and not none and len(fed) == 24
    with RunReader(closed) as a, RunReader(open_) as b:
        assert saturation(a, 0, "lv06").clipped == 0 and saturation(b, 0, "lv06") is None


@pytest.mark.virtual_time
async def test_strong_feedback_stays_inside_the_envelope(tmp_path):
    path, summary = await _record(tmp_path, "strong",
                                  DelayLoop(gain=40.0, r_lo=55.0, r_hi=56.0), warmup=0.0)
    assert summary.steps_written == 14
    with RunReader(path) as r:
        freq, fed, _, _ = _by_slot(r, 3)
        effects = r.effects(0, "lv06")
        assert "delay_loop_range" not in r.meta.extra          # the range was given
    f = np.array(list(freq.values()))
    assert f.min() >= 400.0 and f.max() <= 575.0                # the LV06's safe range
    assert np.isin(f[4:], (400.0, 575.0)).mean() > 0.8          # clipped, not refused
    assert all(e[5] == "applied" for e in effects)


@pytest.mark.virtual_time
async def test_closed_loop_without_a_range_needs_a_warmup(tmp_path):
    with pytest.raises(ExperimentError, match="warm-up"):
        await _record(tmp_path, "nowarm", DelayLoop(gain=0.5), warmup=0.0, steps=2)
    assert not (tmp_path / "nowarm.db").exists()           # refused before anything ran


@pytest.mark.virtual_time
async def test_resumed_closed_loop_keeps_its_loop_and_response_range(tmp_path):
    clock, pool, config = await _lab()
    path = tmp_path / "resume.db"
    common = dict(pool=pool, clock=clock, progress=False, names=["lv06"],
                  simulated=[{"profile": "lv06", "seed": 12}])
    try:
        async with start_units([config], clock=clock) as units:
            common["difficulty_scales"] = [units[0].difficulty_scale]
            first = asyncio.ensure_future(run_experiment(
                [units[0].url], "frequency", path, steps=12, slots=3, step_seconds=3.0,
                warmup_seconds=60.0, loop=DelayLoop(gain=0.5), mask_levels=4, seed=5,
                **common))
            while recorded_steps(path) < 5:                   # interrupt mid-run
                assert not first.done(), first.result()
                await asyncio.sleep(1.0)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            with RunReader(path) as r:
                killed_at = r.count("steps")
                stored = r.meta.extra["delay_loop_range"]["lv06"]
            summary = await run_experiment([], "", path, steps=0, resume=True, **common)
    finally:
        await pool.stop()
    assert 5 <= killed_at < 12 and summary.steps_written == 12 - killed_at
    with RunReader(path) as r:
        assert r.meta.channel["delay_loop"] == {"gain": 0.5, "bias": 0.5, "scale": 1.0,
                                                "response": "chip_temp_c"}
        assert r.meta.extra["delay_loop_range"]["lv06"] == stored    # not re-calibrated
        freq, fed, temp, _ = _by_slot(r, 3)
    lo, hi = stored
    start = killed_at * 3                             # first slot after the resume
    for g in range(start, 36):
        want = 0.0 if g < start + 4 else (temp[g - 4] - lo) / (hi - lo) - 0.5
        assert fed[g] == pytest.approx(want, abs=1e-12)


@pytest.mark.virtual_time
async def test_analysis_reads_only_the_node_features_asked_for(tmp_path):
    path, _ = await _record(tmp_path, "nodes", DelayLoop(gain=0.3), steps=60)
    opts = dict(capacities=False, check_leakage=False)
    report = analyze_files([path], AnalysisOptions(features=("tel.chip_temp_c",), **opts))
    entry = next(e for e in report.entries if e.unit == "lv06")
    assert entry.readouts["hardware"].n == 1
    with RunReader(path) as r:
        sat = saturation(r, 0, "lv06")
    assert entry.saturation.clipped.values == (sat.clipped_fraction,)     # a user sees it
    assert f"{100 * sat.clipped_fraction:.1f} % (1) of commands clipped" in report.table()
    assert report.to_json()["units"]["lv06"][entry.channel]["saturation"] == {
        "clipped_fraction": [sat.clipped_fraction], "outside_fraction": [sat.outside_fraction]}
    with RunReader(path) as r:
        full = states(r, 0, ["lv06"])
    kept = full.select(("tel.chip_temp_c",))
    assert 0 < len(kept.names) < len(full.names)
    assert all(n.split("/", 2)[-1].startswith("tel.chip_temp_c") for n in kept.names)
    with pytest.raises(StatesError, match="not scored"):
        analyze_files([path], AnalysisOptions(features=("no-such-feature",), **opts))


@pytest.mark.virtual_time
async def test_slow_loop_calibrates_where_it_reads(tmp_path):
    """At theta = 71.5 s (the LV06's heatsink constant) the firmware's fan loop pulls the
    chip back to its target within a step: calibrated on readings at a step's end, the
    range (59.6-60.2 C here) missed every mid-slot reading the loop fed back and 90 % of
    the commands clipped. Calibrated at the loop's own poll point (with the feedback off:
    the loop then spreads the response somewhat wider), about a quarter clip."""
    n, theta, gain, steps = 4, 71.5, 0.6, 12
    path, summary = await _record(tmp_path, "slow", DelayLoop(gain=gain), slots=n, theta=theta,
                                  steps=steps, warmup=8 * n * theta)
    assert summary.steps_written == steps and summary.marked == 0
    with RunReader(path) as r:
        lo, hi = r.meta.extra["delay_loop_range"]["lv06"]
        _, fed, temp, _ = _by_slot(r, n)
        sat = saturation(r, 0, "lv06")
    temps = np.array(list(temp.values()))
    assert sat.slots == steps * n and len(fed) == steps * n
    assert ((temps >= lo) & (temps <= hi)).mean() >= 0.3, (lo, hi, temps)   # was 0 %
    assert sat.outside_fraction <= 0.6 and sat.clipped_fraction <= 0.5, sat      # were 90 %
