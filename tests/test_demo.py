"""`asic-reservoir demo` end to end at its smallest size: real pool, simulated units, sockets."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from asic_reservoir.experiment.runs import RunReader
from asic_reservoir.experiment.simulated import (DEMO_BEST, DEMO_MODELS, PUBLISHED, REPORT_SEED,
                                                 TUNING_SEED, RecordingPool, SimulatedRecording)
from tests.support import main_here


def test_demo_json_has_every_unit_channel_baseline_and_control(tmp_path):
    # An earlier pass left a run file in the kept directory: the demo records afresh
    # (resuming it would fail on this one, and would mix two passes on a real one).
    (tmp_path / "lv06-best.db").write_bytes(b"an earlier, unrelated pass")
    (tmp_path / "lv06-best.db-wal").write_bytes(b"its stale log")
    proc = subprocess.run(
        [sys.executable, "-m", "asic_reservoir", "demo", "--steps", "100", "--runs", "1",
         "--json", "--quiet", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["task"] == "NARMA-10" and report["normalisation"] == "std"
    expected = {(m, PUBLISHED) for m in DEMO_MODELS} | set(DEMO_BEST.items()) | {
        (f"all {len(DEMO_MODELS) + len(DEMO_BEST)}", "states side by side")}
    found = {(unit, channel) for unit, chans in report["units"].items() for channel in chans}
    assert found == expected
    for unit, chans in report["units"].items():
        for channel, entry in chans.items():
            assert entry["runs"] == 1 and entry["nrmse_std"] is None     # one run: no spread
            assert math.isfinite(entry["nrmse_mean"]) and entry["nrmse_mean"] > 0
            assert set(entry["readouts"]) == {"hardware", "hardware + input"}
            assert set(entry["controls"]) >= {"input only", "shuffled states",
                                              "20 input delays", "filter bank + quadratic"}
            # over input only and over the strongest memory-matched control
            assert "input only" in entry["gains"] and len(entry["gains"]) == 2
            assert all(g["verdict"] == "too few runs" for g in entry["gains"].values())
            cap = entry["capacities"]["hardware"]
            assert cap["memory_capacity"]["runs"] == 1 and set(cap["ipc_by_degree"]) == {"1", "2"}
    assert set(report["baselines"]) >= {"mean", "ridge u(t)", "ridge 10 delays", "ESN-100"}
    assert report["capacities"]["ESN-100"]["memory_capacity"]["mean"] > 1
    # The run files are kept and complete.
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted(
        [f"{m}-published.db" for m in DEMO_MODELS] + [f"{m}-best.db" for m in DEMO_BEST]
        + [f"{next(iter(DEMO_BEST))}-repeat.db"])
    # the consistency test (one input replayed) joins the best channel's entry
    model, spec = next(iter(DEMO_BEST.items()))
    assert -1 <= report["units"][model][spec]["consistency"]["mean_r"] <= 1
    assert report["units"][model][spec]["consistency"]["run_pairs"] == 1
    # pre-registered: reported on fresh input series, the tuning seed stated beside them
    assert any(f"input series of seed {REPORT_SEED} (channels were chosen on seed "
               f"{TUNING_SEED}" in n for n in report["notes"])
    assert REPORT_SEED != TUNING_SEED


def test_demo_refuses_sizes_it_cannot_score(capsys):
    code, _out, err = main_here(capsys, "demo", "--steps", "10")
    assert code == 2 and "--steps >= 100" in err


def _tiny(path: Path, model: str = "lv06") -> SimulatedRecording:
    return SimulatedRecording(model, PUBLISHED, str(path), steps=3, seed=1, warmup_seconds=0.0)


def test_recording_pool_starts_the_ready_recording_of_highest_priority(tmp_path):
    recs = {name: _tiny(tmp_path / f"{name}.db") for name in "abc"}
    order: list[str] = []
    with RecordingPool(processes=1) as pool:
        pool.add(recs["a"], 0.0)             # starts at once: the only core is free
        pool.add(recs["b"], 1.0)
        pool.add(recs["c"], 5.0)             # queued after b, starts before it
        assert pool.pending == 3
        while pool.pending:
            order += [Path(r.path).stem for r in pool.wait()]
    assert order == ["a", "c", "b"]
    for rec in recs.values():
        with RunReader(rec.path) as reader:
            assert [row[0] for row in reader.steps(0)] == [0, 1, 2]


def test_recording_pool_raises_a_failed_recording(tmp_path):
    with RecordingPool(processes=1) as pool:
        pool.add(_tiny(tmp_path / "bad.db", model="no-such-model"))
        with pytest.raises(KeyError, match="no-such-model"):
            pool.wait()
