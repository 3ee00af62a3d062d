"""`asic-reservoir sweep`: a grid of virtual-time experiments on a local Dask cluster."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from asic_reservoir.cli.sweep import SweepError, grid


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


def test_sweep_runs_on_a_local_dask_cluster_and_reports(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "asic_reservoir", "sweep", "--units", "lv06",
         "--channels", "difficulty,fan", "--seeds", "0,1", "--steps", "100", "--workers", "2",
         "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    files = sorted(out.glob("*.db"))
    assert len(files) == 4                                     # 1 unit x 2 channels x 2 seeds
    for f in files:
        with sqlite3.connect(f) as conn:
            assert conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 100
    chans = report["units"]["lv06"]
    assert set(chans) == {"difficulty", "fan"}
    for entry in chans.values():
        assert entry["runs"] == 2                              # the two seeds' runs together
    assert "ridge 10 delays" in report["baselines"]
