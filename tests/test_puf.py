"""Fingerprinting through the simulator's real sockets: enroll, identify, verify, CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import numpy as np
import pytest

from asic_reservoir.puf import identify as puf
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.puf.store import EnrollmentStore
from asic_reservoir.drivers.stratum import Pool, PoolConfig
from asic_reservoir.simulator import UnitConfig, start_units
from asic_reservoir.simulator.profiles import PROFILES
from asic_reservoir.simulator.unit import auto_hash_scale
from tests.support import main_here, run_cli

SPEED = 100.0
CHALLENGE = puf.Challenge(version="test", phases=((0.25, 5), (0.5, 5), (0.0, 5)),
                          step_seconds=10.0, slots=2)


def lv06(seed: int, pool_url: str, worker: str, ambient: float = 25.0) -> UnitConfig:
    return UnitConfig(model="lv06", seed=seed, host="127.0.0.1", pool_url=pool_url, worker=worker,
                      speed=SPEED, hash_scale=auto_hash_scale(PROFILES["lv06"], 3000 / SPEED),
                      rpc_port=None, http_port=0, ambient_c=ambient, firmware="axeos-2.15")


async def read(pool: Pool, clock: Clock, tmp_path, seeds, tag, ambient=25.0, noise_base=None):
    """One challenge read of each seed's LV06; ``noise_base`` fixes every unit's sensor
    noise stream (``noise_base + seed``), so a read is repeatable in virtual time."""
    configs = [dataclasses.replace(lv06(s, pool.url, f"{tag}.{s}", ambient),
                                   noise_seed=None if noise_base is None else noise_base + s)
               for s in seeds]
    async with start_units(configs, clock=clock) as units:
        return await asyncio.gather(*[
            puf.read_response(u.url, CHALLENGE, pool, clock, tmp_path / f"{tag}-{s}.db",
                              name=f"d{s}", worker=u.config.worker,
                              difficulty_scale=u.difficulty_scale)
            for s, u in zip(seeds, units)])


@pytest.mark.virtual_time
async def test_enroll_identify_and_verify_simulated_units(tmp_path):
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, seed=7), clock=clock)
    await pool.start()
    enrolled_seeds = [11, 12, 13, 14, 15]
    try:   # every read has its own fixed noise: the verdicts below are the same every run
        first = await read(pool, clock, tmp_path, enrolled_seeds, "e1", 24.0, noise_base=1000)
        second = await read(pool, clock, tmp_path, enrolled_seeds, "e2", 26.0, noise_base=2000)
        later = await read(pool, clock, tmp_path, [12, 99], "t", 27.0, noise_base=3000)
    finally:
        await pool.stop()
    assert first[0].model == "lv06" and len(first[0].feature_names) > 5
    with EnrollmentStore(tmp_path / "store.db") as store:
        for resp in first + second:
            puf.enroll(store, resp.conditions['unit'], "lv06://sim", resp)
        ranked = puf.identify(store, later[0])
        assert ranked[0].name == "d12", ranked  # the same seed re-read is recognised
        assert ranked[0].distance < ranked[1].distance
        assert puf.verify(store, later[0], "d12", far=0.05).accepted
        # Seed 99 was never enrolled: claiming each enrolled name in turn, it is rejected for
        # most. Not for all: a single-chip LV06 has only a handful of varying parameters
        # (sensor offsets, leakage, thermal resistance, fan tolerance), so two units can be
        # close, and a threshold set from 10 impostor pairs cannot promise better than ~1/11.
        claims = [puf.verify(store, later[1], f"d{s}", far=0.05) for s in enrolled_seeds]
        assert sum(c.accepted for c in claims) <= 2, claims
        assert all(c.threshold == claims[0].threshold for c in claims)
        # two different seeds are told apart: each enrollment read is nearest its own unit
        for resp in second:
            assert puf.identify(store, resp)[0].name == resp.conditions['unit']
        with pytest.raises(puf.PufError, match="not enrolled"):
            puf.verify(store, later[1], "d99")


def test_a_read_missing_a_feature_is_judged_on_the_features_it_has(tmp_path):
    """A step too small for a time constant leaves that feature nan in one read (about one
    simulated LV06 read in six): identify and verify compare on the rest, as enroll does,
    instead of ranking every unit at distance nan."""
    names = ("s0.power_w.level", "s1.fan0_rpm.level", "s1.chip_temp_c.tau", "s1.power_w.ratio")
    rng = np.random.default_rng(0)
    centres = {"a": [10.0, 4000, 12, 0.6], "b": [11.0, 4300, 15, 0.7], "c": [12.0, 4600, 18, 0.8]}

    def response(unit: str, nan_at: tuple[int, ...] = ()) -> puf.Response:
        values = np.array(centres[unit]) * (1 + 0.002 * rng.standard_normal(len(names)))
        values[list(nan_at)] = np.nan
        return puf.Response("lv06", "test", names, values, {"unit": unit})

    with EnrollmentStore(tmp_path / "store.db") as store:
        for unit in centres:
            for _ in range(2):
                puf.enroll(store, unit, "lv06://sim", response(unit))
        read = response("b", nan_at=(2,))
        ranked = puf.identify(store, read)
        assert [c.name for c in ranked][0] == "b" and all(np.isfinite(c.distance) for c in ranked)
        verdict = puf.verify(store, read, "b", far=0.5)
        assert np.isfinite(verdict.distance) and verdict.accepted
        with pytest.raises(puf.PufError, match="no features"):
            puf.identify(store, response("b", nan_at=(0, 1, 2, 3)))


@pytest.mark.virtual_time
async def test_back_to_back_reads_of_a_unit_that_restarts_for_its_pool(tmp_path):
    """Each read points the LV06 at the toolkit's pool (a restart: pool settings load at
    boot) and restores its own pool (another restart). The second read used to meet the
    unit still booting from the first one's restore and fail as unreachable."""
    clock = Clock.virtual()
    pool = Pool(PoolConfig(host="127.0.0.1", port=0, seed=1), clock=clock)
    await pool.start()
    own = "stratum+tcp://127.0.0.1:9"              # the unit's own pool: nothing listens
    config = dataclasses.replace(lv06(21, own, "own.lv06"), speed=1.0, noise_seed=21)
    try:
        async with start_units([config], clock=clock) as (unit,):
            for i in range(2):
                response = await puf.read_response(
                    unit.url, CHALLENGE, pool, clock, tmp_path / f"r{i}.db", name="d21",
                    worker=f"puf.{i}", difficulty_scale=unit.difficulty_scale)
                assert response.feature_names and response.conditions["unit"] == "d21"
                assert not unit.booting and unit.settings()["pool_url"] == own
                assert unit.reading().pool_user == "own.lv06"   # restored and running
    finally:
        await pool.stop()


async def cli(*args: str) -> tuple[int, str, str]:
    return await run_cli("puf", *args, timeout=180)


def test_cli_fingerprints_units_it_simulates_itself(tmp_path, capsys):
    """sim:MODEL:SEED units are simulated by the command in its own virtual-time loop, with
    their noise fixed by --seed: the reads, and so every verdict below, are the same on an
    idle or a loaded host. They need no second process: the command's ``main`` runs here,
    except for one identify in a process of its own, which must print the same digits."""
    common = ["--store", str(tmp_path / "sim.db"), "--steps-per-phase", "6", "--json"]

    def cli(*args: str) -> tuple[int, str, str]:
        return main_here(capsys, "puf", *args)
    names = ("alpha", "beta", "gamma")
    units = [f"sim:lv06:{seed}" for seed in (21, 22, 23)]
    for name, unit in zip(names, units):   # two reads each: the metric learns each unit's noise
        code, out, err = cli("enroll", "--unit", unit, "--name", name, *common)
        assert code == 0, err
        report = json.loads(out)
        assert (report["enrolled"], report["model"], report["reads"]) == (name, "lv06", 2)
    code, out, err = cli("identify", "--unit", units[1], *common)
    assert code == 0, err
    ranked = json.loads(out)["candidates"]
    assert ranked[0]["name"] == "beta" and {c["name"] for c in ranked} == set(names), ranked
    assert ranked[0]["distance"] < ranked[1]["distance"] < ranked[2]["distance"]
    code, again, err = asyncio.run(run_cli("puf", "identify", "--unit", units[1], *common))
    assert code == 0 and again == out                        # deterministic, digit for digit
    code, out, err = cli("identify", "--unit", units[1], "--seed", "1", *common)
    assert code == 0 and out != again                        # another seed: another read...
    assert json.loads(out)["candidates"][0]["name"] == "beta"   # ...of the same unit
    code, out, err = cli("verify", "--unit", units[1], "--name", "beta", *common)
    verdict = json.loads(out)
    assert code == 0 and verdict["accepted"] and verdict["distance"] <= verdict["threshold"], err
    farthest = ranked[-1]["name"]
    code, out, err = cli("verify", "--unit", units[1], "--name", farthest, *common)
    verdict = json.loads(out)
    assert code == 1 and not verdict["accepted"], (verdict, err)
    assert verdict["distance"] > verdict["threshold"]
    code, out, err = cli("verify", "--unit", units[1], "--name", "delta", *common)
    assert code == 2 and "not enrolled" in err
    code, out, err = cli("identify", "--unit", "sim:lv6:22", *common)
    assert code == 2 and "sim:MODEL:SEED" in err and "'sim:lv6:22'" in err


async def test_cli_reads_units_named_by_url_in_another_process(tmp_path):
    """The same commands against units served by another process over real sockets, read in
    wall time x100. How close a read comes to its enrollment depends on how promptly this
    host runs both processes, so only what holds on any host is asserted here: the exit code
    follows the verdict, identification ranks every enrolled unit, an unreachable unit is a
    clear error (the verdicts themselves are tested deterministically above)."""
    store = str(tmp_path / "cli.db")
    nowhere = "stratum+tcp://127.0.0.1:9"  # nothing listens: the units idle until pointed
    configs = [dataclasses.replace(lv06(seed, nowhere, f"cli.{seed}"), noise_seed=seed)
               for seed in (21, 22)]
    async with start_units(configs, clock=Clock(SPEED)) as units:
        common = ["--store", store, "--speed", str(SPEED), "--steps-per-phase", "2",
                  "--difficulty-scale", str(units[0].difficulty_scale), "--json"]
        names = ("alpha", "beta")
        for name, unit in zip(names, units):
            code, out, err = await cli("enroll", "--unit", unit.url, "--name", name, *common)
            assert code == 0, err
            report = json.loads(out)
            assert (report["enrolled"], report["model"], report["reads"]) == (name, "lv06", 2)
            assert report["features"] > 10
        code, out, err = await cli("identify", "--unit", units[1].url, *common)
        assert code == 0, err
        ranked = json.loads(out)["candidates"]
        assert sorted(c["name"] for c in ranked) == sorted(names)
        assert [c["distance"] for c in ranked] == sorted(c["distance"] for c in ranked)
        code, out, err = await cli("verify", "--unit", units[1].url, "--name", "beta", *common)
        verdict = json.loads(out)
        assert verdict["name"] == "beta" and code == (0 if verdict["accepted"] else 1), err
        assert verdict["accepted"] == (verdict["distance"] <= verdict["threshold"])
        for unit in units:                 # every read put the unit's own pool back
            assert unit.settings()["pool_url"] == nowhere
    code, out, err = await cli("identify", "--unit", "lv06://127.0.0.1:9", *common)
    assert code == 2 and "127.0.0.1:9" in err


@pytest.mark.virtual_time
async def test_evaluate_units_named_by_url(tmp_path):
    from asic_reservoir.puf.fleet import evaluate_units
    nowhere = "stratum+tcp://127.0.0.1:9"
    configs = [dataclasses.replace(lv06(seed, nowhere, f"ev.{seed}"), noise_seed=seed)
               for seed in (31, 32, 33)]
    async with start_units(configs, clock=Clock.virtual()) as units:
        result = await evaluate_units([u.url for u in units], CHALLENGE, reads=1, enroll_reads=2,
                                      speed=SPEED, difficulty_scale=units[0].difficulty_scale,
                                      progress=False)
    m = result["metrics"]
    assert result["model"] == "lv06" and m["devices"] == 3 and m["reads"] == 3
    assert 0 <= m["eer"]["low"] <= m["eer"]["value"] <= m["eer"]["high"] <= 1
    assert m["rank1_accuracy"]["value"] >= 2 / 3   # 3 units, re-read: chance is 1/3
    with pytest.raises(puf.PufError, match="two units"):
        await evaluate_units([units[0].url], CHALLENGE)


def test_cli_evaluates_a_simulated_fleet_deterministically(capsys):
    # units, their sensor noise and the pool are seeded from --seed and the fleet runs in
    # virtual time: two runs (one in a process of its own, one through the command's main
    # here) print the same result, digit for digit. Seed 0 draws a time constant (on the
    # 2.5 s telemetry grid) that repeats exactly across each unit's two enrollment reads:
    # the metric's resolution floor keeps it from dominating.
    args = ("evaluate", "--fleet", "sim:3", "--reads", "1", "--steps-per-phase", "6",
            "--seed", "0", "--json")
    code, out, err = asyncio.run(run_cli("puf", *args))
    assert code == 0, err
    code, again, err = main_here(capsys, "puf", *args)
    assert code == 0, err
    assert again == out
    result = json.loads(out)
    m = result["metrics"]
    assert (result["fleet"], result["model"], result["enroll_reads"]) == ("sim:3", "lv06", 2)
    assert m["devices"] == 3 and m["reads"] == 3 and result["features"] > 10
    assert m["rank1_accuracy"]["value"] >= 2 / 3          # chance is 1/3
    assert m["genuine_mean"] < m["impostor_mean"] / 2      # a unit is nearer itself than others
    code, out, err = main_here(capsys, "puf", "evaluate", "--fleet", "sim:1")
    assert code == 2 and "sim:N with N >= 2" in err


def test_challenge_uses_only_live_actuators():
    from asic_reservoir.drivers.telemetry import Capabilities
    c = puf.Challenge()
    s9 = Capabilities(frequency=True, frequency_needs_restart=True, fan=True,
                      fan_needs_restart=True)
    lv06 = Capabilities(frequency=True, fan=True, pause=True)
    lbbox = Capabilities(frequency=True, frequency_steps=(800.0, 1000.0))
    assert c.channel_spec(s9) == "difficulty"
    assert c.channel_spec(lv06) == "frequency+fan:lo_pct=60"
    assert c.channel_spec(lbbox) == "frequency"
    assert c.inputs().shape == (c.steps,) and c.shortened(3).steps == 3 * len(c.phases)
    with pytest.raises(puf.PufError):
        puf.Challenge(phases=((0.9, 4),))


def test_fleet_seeds_never_overlap_across_seed_values():
    from asic_reservoir.puf.fleet import MAX_FLEET, fleet_seeds
    from asic_reservoir.puf.identify import PufError

    fleets = [set(fleet_seeds(s, 150)) for s in range(6)]     # 150 > the old stride of 100
    assert all(len(f) == 150 for f in fleets)
    assert all(not (a & b) for i, a in enumerate(fleets) for b in fleets[i + 1:])
    assert max(fleet_seeds(0, MAX_FLEET)) < min(fleet_seeds(1, 1))
    with pytest.raises(PufError):
        fleet_seeds(-1, 5)
    with pytest.raises(PufError):
        fleet_seeds(0, MAX_FLEET + 1)
