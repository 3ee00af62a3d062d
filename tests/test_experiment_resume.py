"""Kill a real `asic-reservoir run` process with SIGKILL mid-run, resume it, lose nothing."""

from __future__ import annotations

import signal

import numpy as np

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.experiment.record import narma_inputs
from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.simulator import UnitConfig, start_units
from tests.support import finish, free_port, main_here, recorded_steps, start_cli, wait_until

SPEED = 20.0
STEPS = 60


async def test_sigkill_then_resume_loses_no_step(tmp_path):
    port = free_port()
    path = tmp_path / "run.db"
    config = UnitConfig(model="lv06", seed=12, host="127.0.0.1",
                        pool_url=f"stratum+tcp://127.0.0.1:{port}", worker="ar.lv06",
                        speed=SPEED, rpc_port=0, http_port=0, noise_seed=12)
    common = ["--speed", str(SPEED), "--pool-port", str(port), "--lbry-port", "0", "--quiet"]
    async with start_units([config], clock=Clock(SPEED)) as (unit,):
        first = await start_cli("run", "narma10", "--unit", unit.url, "--channel",
                                "difficulty", "--steps", str(STEPS), "--step-seconds", "2",
                                "--seed", "5", "--difficulty-scale", repr(unit.difficulty_scale),
                                "--out", str(path), *common)
        # until a few steps are on disk (fails with its stderr if the run exits first)
        await wait_until(lambda: recorded_steps(path) >= 12, 120, proc=first)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert first.returncode == -signal.SIGKILL
        killed_at = recorded_steps(path)
        assert 12 <= killed_at < STEPS
        with RunReader(path) as r:                # the killed file is intact and consistent
            assert [s[0] for s in r.steps(0)] == list(range(killed_at))

        second = await start_cli("run", "narma10", "--resume", "--out", str(path), *common)
        out, err = await finish(second, 120)
        assert second.returncode == 0, err
        assert f"{STEPS - killed_at} steps written" in out

    with RunReader(path) as r:
        steps = r.steps(0)
        assert [s[0] for s in steps] == list(range(STEPS))       # every step exactly once
        assert r.count("steps") == STEPS
        # The resumed part continues the same input series.
        np.testing.assert_array_equal([s[1] for s in steps], narma_inputs(5, STEPS)(0))
        starts = [s[4] for s in steps]
        assert all(a < b for a, b in zip(starts, starts[1:killed_at]))
        assert len(r.meta.extra["resumed"]) == 1 and r.meta.extra["resumed"][0]["at"] == [0, killed_at]
        for step in (killed_at - 1, killed_at, STEPS - 1):     # both sides have contents
            assert any(row[0] == step for row in r.commands(0, "lv06"))
            assert any(row[0] == step for row in r.telemetry(0, "lv06"))
        # Nothing is left half-written: every table refers only to finished steps.
        for table in ("slots", "commands", "shares", "telemetry"):
            orphan = r.query(f"SELECT COUNT(*) FROM {table} t WHERE NOT EXISTS "
                             f"(SELECT 1 FROM steps s WHERE s.run = t.run AND s.step = t.step)")
            assert orphan[0][0] == 0, table


def test_resume_of_a_finished_or_foreign_file(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 10)
    code, _out, err = main_here(capsys, "run", "narma10", "--resume", "--out", str(bad),
                                "--pool-port", "0", "--lbry-port", "0", "--quiet")
    assert code == 1 and "not a run file" in err
    code, _out, err = main_here(capsys, "run", "narma10", "--out", str(tmp_path / "x.db"),
                                "--quiet")
    assert code == 2 and "--unit" in err
