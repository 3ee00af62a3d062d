"""The run file: atomic steps, concurrent reading, resume bookkeeping, bad files, CSV export."""

from __future__ import annotations

import csv
import json
import sqlite3
import threading

import pytest

from asic_reservoir.experiment import runs
from asic_reservoir.experiment.runs import (CommandRow, RunFileCorruptError, RunFileError,
                                 RunFileVersionError, RunMeta, RunReader, RunWriter, ShareRow,
                                 SlotRow, StepRecord, TelemetryRow, UnitMeta)


def _meta(steps: int = 5, runs_: int = 2) -> RunMeta:
    return RunMeta(task="narma10", seed=7, steps=steps, runs=runs_, slots=2,
                   units=[UnitMeta(name="s9", url="s9://127.0.0.1:1", model="s9",
                                   simulated=True, seed=3, difficulty_scale=1e-6)],
                   channel={"channels": ["difficulty"]}, mask=[1.0, -0.5], clock_speed=50.0)


def _step(run: int, step: int, marks: dict | None = None) -> StepRecord:
    return StepRecord(
        run=run, step=step, u=0.1 * step, t_start_ns=step * 1000, t_end_ns=step * 1000 + 999,
        slots=[SlotRow(k, 0.5 + k, step * 1000 + 500 * k, step * 1000 + 500 * k + 499)
               for k in range(2)],
        commands=[CommandRow("s9", 0, "difficulty", 2.5 + step)],
        shares=[ShareRow("s9", 1, step * 1000 + 600, "j1", 0xDEADBEEF, 2, 3.5, 2.0, True)],
        telemetry=[TelemetryRow("s9", 0, step * 1000 + 10,
                                {"chip_temp_c": 60.0 + step, "power_w": float("nan")})],
        marks=marks or {})


def test_round_trip_and_resume_point(tmp_path):
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta()) as w:
        assert w.next_step() == (0, 0)
        for s in range(5):
            w.write_step(_step(0, s))
        assert w.last_step() == (0, 4)
        assert w.next_step() == (1, 0)
        w.write_step(_step(1, 0, marks={"s9": "disconnected"}))
    with RunWriter.resume(path) as w:
        assert w.next_step() == (1, 1)
        assert w.meta.units[0].difficulty_scale == 1e-6
    with RunReader(path) as r:
        assert r.meta.mask == [1.0, -0.5] and r.meta.clock_speed == 50.0
        assert r.runs() == [0, 1]
        assert [row[0] for row in r.steps(0)] == [0, 1, 2, 3, 4]
        assert r.steps(1)[0][2:4] == ("marked", "s9: disconnected")
        assert r.marks(1) == [(0, "s9", "disconnected")]
        assert r.shares(0, "s9")[2][3] == 0xDEADBEEF
        tel = list(r.telemetry(0, "s9"))
        assert tel[3][3] == {"chip_temp_c": 63.0, "power_w": None}   # NaN stored as missing
        assert r.count("slots") == 12 and r.count("commands", run=0) == 5


def test_a_closed_run_is_one_file_even_after_reads(tmp_path):
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta()) as w:
        w.write_step(_step(0, 0))
    with RunReader(path) as r:
        assert r.steps(0)[0][0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.db"]


def test_closing_while_a_reader_follows_keeps_wal_and_loses_nothing(tmp_path):
    path = tmp_path / "run.db"
    written, close, closed = threading.Event(), threading.Event(), threading.Event()

    def write() -> None:                   # SQLite connections stay in their own thread
        w = RunWriter.create(path, _meta())
        w.write_step(_step(0, 0))
        written.set()
        close.wait()
        w.close()
        closed.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert written.wait(10.0)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.execute("BEGIN")
    con.execute("SELECT count(*) FROM steps").fetchone()         # holds a read snapshot
    close.set()
    assert closed.wait(10.0)               # closing must not wait for the reader
    con.close()
    writer.join()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with RunReader(path) as r:
        assert [row[0] for row in r.steps(0)] == [0]


def test_finished_run_has_no_next_step(tmp_path):
    with RunWriter.create(tmp_path / "r.db", _meta(steps=1, runs_=1)) as w:
        w.write_step(_step(0, 0))
        assert w.next_step() is None


def test_failed_step_leaves_nothing_behind(tmp_path):
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta()) as w:
        w.write_step(_step(0, 0))
        with pytest.raises(sqlite3.IntegrityError):
            w.write_step(_step(0, 0))          # duplicate step: whole transaction rolls back
        w.write_step(_step(0, 1))
    with RunReader(path) as r:
        assert r.count("steps") == 2 and r.count("shares") == 2 and r.count("telemetry") == 2


def test_readable_while_written(tmp_path):
    path = tmp_path / "run.db"
    w = RunWriter.create(path, _meta())
    w.write_step(_step(0, 0))
    reader = RunReader(path)
    assert reader.count("steps") == 1
    w.write_step(_step(0, 1))             # writer keeps going while the reader is open
    assert reader.count("steps") == 2
    reader.close()
    w.close()


def test_existing_file_is_not_overwritten(tmp_path):
    path = tmp_path / "run.db"
    RunWriter.create(path, _meta()).close()
    with pytest.raises(RunFileError, match="--resume"):
        RunWriter.create(path, _meta())


def test_a_run_file_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    """Killed while creating: no run file at the path (a reader would take half of one for
    a damaged file); the next create starts afresh."""
    path = tmp_path / "run.db"

    def killed(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        RunWriter.create(path, _meta())
    assert not path.exists()
    with pytest.raises(RunFileError):
        RunReader(path)
    monkeypatch.undo()
    with RunWriter.create(path, _meta()) as writer:
        writer.write_step(_step(0, 0))
    with RunReader(path) as reader:
        assert reader.meta.seed == 7 and reader.count("steps") == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".creating")] == []


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "run.db"
    meta = _meta()
    meta.schema_version = runs.SCHEMA_VERSION + 1
    meta.toolkit_version = "9.9.9"
    RunWriter.create(path, meta).close()
    with pytest.raises(RunFileVersionError, match="schema 2 .*9.9.9"):
        RunReader(path)
    with pytest.raises(RunFileVersionError):
        RunWriter.resume(path)


@pytest.mark.parametrize("content", [b"", b"hello world\n" * 20, b"SQLite format 3\x00" + b"\x00" * 10])
def test_garbage_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.db"
    path.write_bytes(content)
    with pytest.raises(RunFileCorruptError, match="not a run file"):
        RunReader(path)


def test_missing_file_and_foreign_sqlite(tmp_path):
    with pytest.raises(RunFileError, match="no such run file"):
        RunReader(tmp_path / "nope.db")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    with pytest.raises(RunFileCorruptError, match="not a run file"):
        RunReader(other)


def _checkpointed(tmp_path, n_steps: int = 40):
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta(steps=n_steps, runs_=1)) as w:
        for s in range(n_steps):
            w.write_step(_step(0, s))
    return path


def test_truncated_file_is_refused(tmp_path):
    path = _checkpointed(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileCorruptError, match="truncated"):
        RunReader(path)


def test_damaged_pages_are_refused(tmp_path):
    path = _checkpointed(tmp_path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(page, len(data), 7):     # scribble over every page after the first
        data[i] = 0xA5
    path.write_bytes(bytes(data))
    with pytest.raises(RunFileCorruptError, match="damaged"):
        RunReader(path)


def test_export_csv(tmp_path):
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta()) as w:
        for s in range(3):
            w.write_step(_step(0, s))
    files = runs.export_csv(path, tmp_path / "csv")
    assert sorted(f.name for f in files) == sorted(f"{t}.csv" for t in
                                                   (*runs.TABLES, *runs.OPTIONAL_TABLES))
    with (tmp_path / "csv" / "telemetry.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["chip_temp_c"]) for r in rows] == [60.0, 61.0, 62.0]
    assert rows[0]["power_w"] == ""
    with (tmp_path / "csv" / "shares.csv").open() as fh:
        shares = list(csv.DictReader(fh))
    assert len(shares) == 3 and int(shares[0]["nonce"]) == 0xDEADBEEF
    with (tmp_path / "csv" / "meta.csv").open() as fh:
        meta = {r["key"]: json.loads(r["value"]) for r in csv.DictReader(fh)}
    assert meta["task"] == "narma10" and meta["units"][0]["url"] == "s9://127.0.0.1:1"


def test_cli_export_and_clear_errors_for_bad_files(tmp_path, capsys):
    from asic_reservoir.cli.main import main
    path = tmp_path / "run.db"
    with RunWriter.create(path, _meta()) as w:
        w.write_step(_step(0, 0))
    assert main(["export", str(path), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "shares.csv").exists()
    capsys.readouterr()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\x00" * 4096)
    assert main(["analyze", str(bad)]) == 1
    assert "not a run file" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.db"), str(tmp_path / "o2")]) == 1
    assert "no such run file" in capsys.readouterr().err
