"""`asic-reservoir sweep`: a grid of virtual-time experiments on a local Dask cluster."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from asic_reservoir.experiment.sweep import SweepError, grid
from asic_reservoir.experiment.runs import RunReader


def test_grid_is_the_full_product_and_refuses_bad_specs() -> None:
    tasks = grid(["lv06", "s9"], ["difficulty", "fan"], ["", "invert=1"], [1, 2], [0, 1])
    # difficulty takes no 'invert': 2 models x 3 channel encodings x 2 slot counts x 2 seeds
    assert len(tasks) == 2 * 3 * 2 * 2
    assert len({t.name for t in tasks}) == len(tasks)          # one run file per task
    assert {t.spec for t in tasks} == {"fan:invert=1", "fan", "difficulty"}
    with pytest.raises(SweepError, match="unknown model"):
        grid(["s19"], ["difficulty"])
    with pytest.raises(SweepError, match="nonsense"):
        grid(["lv06"], ["nonsense"])


def _sweep(out: Path, *args: str) -> tuple[dict, list[Path]]:
    """Run ``asic-reservoir sweep`` of the LV06 on a 2-worker local Dask cluster; its JSON
    report and the run files it wrote."""
    pytest.importorskip("dask.distributed")
    proc = subprocess.run(
        [sys.executable, "-m", "asic_reservoir", "sweep", "--units", "lv06", *args,
         "--workers", "2", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), sorted(out.glob("*.db"))


def test_sweep_runs_on_a_local_dask_cluster_and_reports(tmp_path: Path) -> None:
    report, files = _sweep(tmp_path / "runs", "--channels", "difficulty,fan", "--seeds", "0,1",
                           "--steps", "100")
    assert len(files) == 4                                     # 1 unit x 2 channels x 2 seeds
    for f in files:
        with sqlite3.connect(f) as conn:
            assert conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 100
    chans = report["units"]["lv06"]
    assert set(chans) == {"difficulty", "fan"}
    for entry in chans.values():
        assert entry["runs"] == 2                              # the two seeds' runs together
    assert "ridge 10 delays" in report["baselines"]


def test_grid_scans_the_closed_loop_over_gains_and_thetas() -> None:
    tasks = grid(["lv06"], ["frequency"], slots=[4], gains=[0.0, 0.3], thetas=[0.25, 1.0])
    assert len(tasks) == 4 and len({t.name for t in tasks}) == 4
    assert len({t.label for t in tasks}) == 4           # the report keeps the points apart
    by = {(t.theta, t.gain): t for t in tasks}
    assert by[(1.0, 0.3)].step == 4.0 and by[(0.25, 0.0)].step == 1.0
    assert by[(1.0, 0.3)].loop.gain == 0.3 and by[(0.25, 0.0)].loop.gain == 0.0
    assert grid(["lv06"], ["frequency"])[0].loop is None         # no gain: open loop
    with pytest.raises(SweepError, match="actuator must be a unit setting"):
        grid(["lv06"], ["difficulty"], gains=[0.5])
    with pytest.raises(SweepError, match="theta must be a positive"):
        grid(["lv06"], ["frequency"], gains=[0.5], thetas=[0.0])


def test_sweep_scans_gain_and_theta_of_a_closed_loop_on_dask(tmp_path: Path) -> None:
    report, files = _sweep(tmp_path / "runs", "--channels", "frequency", "--slots", "2",
                           "--gains", "0,0.5", "--thetas", "1.5", "--steps", "80")
    assert len(files) == 2
    loops = []
    for f in files:
        with RunReader(f) as reader:
            assert reader.meta.step_seconds == pytest.approx(3.0)      # slots x theta
            assert reader.meta.slots == 2
            loops.append(reader.meta.channel["delay_loop"]["gain"])
        with sqlite3.connect(f) as conn:
            fed = [v for (v,) in conn.execute(
                "SELECT value FROM commands WHERE command = 'feedback'")]
        assert len(fed) == 2 * 80                     # one fed-back response per slot
        assert max(fed) > min(fed)                    # the measured response moved
    assert sorted(loops) == [0.0, 0.5]
    chans = report["units"]["lv06"]
    assert set(chans) == {"frequency theta=1.5s gain=0 x2 slots",
                          "frequency theta=1.5s gain=0.5 x2 slots"}
    assert "all 2" not in report["units"]       # scan points stay apart
