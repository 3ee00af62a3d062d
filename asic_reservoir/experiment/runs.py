"""The run file: one SQLite database (WAL) per experiment, one transaction per step.

Why SQLite: a run must survive the process being killed at any instant and still hold
every finished step (WAL with ``synchronous=NORMAL``: a committed step survives a killed
process; only an operating-system crash can lose the last few commits), be readable by an analysis process while the experiment is still
writing it, and be a single file a researcher can copy. WAL mode gives all three:
each :meth:`RunWriter.write_step` is one atomic commit, readers see a consistent
snapshot without blocking the writer, and a truncated or foreign file is detected on open.

Tables (``export`` writes one CSV per table):

- ``meta(key, value)``: JSON values — schema and toolkit version, creation time, units
  (URL, model, firmware, profile/seed of simulated ones, difficulty scale), channel
  configuration, virtual-node mask, clock speed, task, seed, steps/runs/slots.
- ``steps(run, step, u, status, reason, t_start_ns, t_end_ns)``: one row per finished
  step. ``status`` is ``ok`` or ``marked``; a marked step carries the reason.
- ``slots(run, step, slot, value, t_start_ns, t_end_ns)``: the masked input of each
  virtual-node slot and its window on the experiment clock.
- ``marks(run, step, unit, reason)``: which unit was unusable in which step and why.
- ``commands(run, step, slot, unit, command, value)``: what was sent to each unit.
- ``shares(run, step, slot, unit, clock_ns, job, nonce, chip, share_difficulty,
  pool_difficulty, accepted, code, version_bits)``: every pool share event.
- ``telemetry(run, step, slot, unit, clock_ns, data)``: one driver reading per row, the
  fields as a JSON object (wide records parse faster than one row per field, and the
  field set differs between models).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from asic_reservoir import __version__

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    run INTEGER NOT NULL, step INTEGER NOT NULL, u REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'marked')), reason TEXT NOT NULL DEFAULT '',
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL,
    PRIMARY KEY (run, step));
CREATE TABLE IF NOT EXISTS slots (
    run INTEGER NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL, value REAL NOT NULL,
    t_start_ns INTEGER NOT NULL, t_end_ns INTEGER NOT NULL,
    PRIMARY KEY (run, step, slot));
CREATE TABLE IF NOT EXISTS marks (
    run INTEGER NOT NULL, step INTEGER NOT NULL, unit TEXT NOT NULL, reason TEXT NOT NULL,
    PRIMARY KEY (run, step, unit));
CREATE TABLE IF NOT EXISTS commands (
    run INTEGER NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL, unit TEXT NOT NULL,
    command TEXT NOT NULL, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS shares (
    run INTEGER NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL, unit TEXT NOT NULL,
    clock_ns INTEGER NOT NULL, job TEXT, nonce INTEGER, chip INTEGER,
    share_difficulty REAL, pool_difficulty REAL, accepted INTEGER NOT NULL, code INTEGER,
    version_bits INTEGER);
CREATE TABLE IF NOT EXISTS telemetry (
    run INTEGER NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL, unit TEXT NOT NULL,
    clock_ns INTEGER NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS shares_by_step ON shares (run, step, slot);
CREATE INDEX IF NOT EXISTS telemetry_by_step ON telemetry (run, step, slot);
CREATE INDEX IF NOT EXISTS commands_by_step ON commands (run, step, slot);
CREATE TABLE IF NOT EXISTS effects (
    run INTEGER NOT NULL, step INTEGER NOT NULL, slot INTEGER NOT NULL, unit TEXT NOT NULL,
    command TEXT NOT NULL, commanded REAL, effective REAL, status TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '');
"""

TABLES = ("meta", "steps", "slots", "marks", "commands", "shares", "telemetry")
# Added after schema 1 shipped: created when a file is opened for writing, read as empty
# from files written before it (they recorded no read-backs).
OPTIONAL_TABLES = ("effects",)


class RunFileError(Exception):
    """A run file cannot be used; the message says which file and why."""


class RunFileVersionError(RunFileError):
    """The file was written by a toolkit with another run-file schema."""


class RunFileCorruptError(RunFileError):
    """The file is not a run file, or it is damaged or truncated."""


@dataclass
class UnitMeta:
    """What is recorded about one unit. ``name`` is the key used in every table."""

    name: str
    url: str
    model: str = ""
    firmware: str = ""
    worker: str = ""
    profile: str = ""          # simulated units: the simulator profile (model) used
    seed: int | None = None    # simulated units: the identity seed
    difficulty_scale: float = 1.0
    simulated: bool = False
    chips: int = 0             # chips the pool maps nonces onto (0: unknown)
    capabilities: dict[str, Any] = field(default_factory=dict)   # learned from the unit


@dataclass
class RunMeta:
    """Everything needed to interpret (and resume) a run."""

    task: str
    seed: int
    steps: int
    runs: int
    slots: int
    units: list[UnitMeta]
    channel: dict[str, Any]
    mask: list[float]
    clock_speed: float = 1.0
    step_seconds: float = 1.0
    difficulty_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    toolkit_version: str = __version__
    created: str = ""

    def to_rows(self) -> list[tuple[str, str]]:
        data = asdict(self)
        return [(k, json.dumps(v)) for k, v in data.items()]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]], path: str) -> "RunMeta":
        data = {k: json.loads(v) for k, v in rows}
        try:
            data["units"] = [UnitMeta(**u) for u in data["units"]]
            known = {f for f in cls.__dataclass_fields__}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (KeyError, TypeError) as exc:
            raise RunFileCorruptError(f"{path}: run metadata incomplete ({exc})") from exc

    def unit(self, name: str) -> UnitMeta:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)


@dataclass
class ShareRow:
    unit: str
    slot: int
    clock_ns: int
    job: str
    nonce: int
    chip: int | None
    share_difficulty: float
    pool_difficulty: float
    accepted: bool
    code: int | None = None
    version_bits: int | None = None


@dataclass
class TelemetryRow:
    unit: str
    slot: int
    clock_ns: int
    data: dict[str, float | None]


@dataclass
class CommandRow:
    unit: str
    slot: int
    command: str
    value: float


@dataclass
class EffectRow:
    """What a settings command did on the unit: the read-back verdict of the write."""

    unit: str
    slot: int
    command: str
    commanded: float | None
    effective: float | None
    status: str               # applied | pending_restart | not_applied
    evidence: str = ""


@dataclass
class SlotRow:
    slot: int
    value: float
    t_start_ns: int
    t_end_ns: int


@dataclass
class StepRecord:
    """One finished step: written atomically by :meth:`RunWriter.write_step`."""

    run: int
    step: int
    u: float
    t_start_ns: int
    t_end_ns: int
    slots: list[SlotRow] = field(default_factory=list)
    commands: list[CommandRow] = field(default_factory=list)
    shares: list[ShareRow] = field(default_factory=list)
    telemetry: list[TelemetryRow] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)   # unit -> reason
    effects: list[EffectRow] = field(default_factory=list)   # verified setting writes

    @property
    def status(self) -> str:
        return "marked" if self.marks else "ok"

    @property
    def reason(self) -> str:
        return "; ".join(f"{u}: {r}" for u, r in sorted(self.marks.items()))


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; store them as null (a missing reading), never as a crash."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_file(path: Path) -> None:
    if not path.exists():
        raise RunFileError(f"{path}: no such run file")
    if path.is_dir():
        raise RunFileError(f"{path}: is a directory, not a run file")
    with path.open("rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(SQLITE_MAGIC):
        raise RunFileCorruptError(f"{path}: not a run file (no SQLite header; empty, truncated "
                                  f"or another kind of file)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    n_pages = int.from_bytes(head[28:32], "big")
    # The header's page count is valid when the change counters agree (SQLite >= 3.7.0).
    if head[24:28] == head[92:96] and n_pages and path.stat().st_size < page_size * n_pages:
        raise RunFileCorruptError(
            f"{path}: truncated ({path.stat().st_size} bytes, header says "
            f"{page_size * n_pages}); the finished steps before the cut cannot be trusted")


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    uri = f"file:{path}?mode={'ro' if readonly else 'rw'}"
    conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def _read_meta(conn: sqlite3.Connection, path: Path) -> RunMeta:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise RunFileCorruptError(f"{path}: an SQLite file, but not a run file (no meta table)")
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.DatabaseError as exc:
        raise RunFileCorruptError(f"{path}: damaged run file ({exc})") from exc
    keys = dict(rows)
    if "schema_version" not in keys:
        raise RunFileCorruptError(f"{path}: run metadata has no schema version")
    version = json.loads(keys["schema_version"])
    if version != SCHEMA_VERSION:
        writer = json.loads(keys.get("toolkit_version", '"?"'))
        raise RunFileVersionError(
            f"{path}: run file schema {version} (written by asic-reservoir {writer}); this is "
            f"asic-reservoir {__version__}, which reads schema {SCHEMA_VERSION}")
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise RunFileCorruptError(f"{path}: run file lacks tables {missing}")
    return RunMeta.from_rows(rows, str(path))


def _integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        result = [r[0] for r in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        raise RunFileCorruptError(f"{path}: damaged run file ({exc})") from exc
    if result != ["ok"]:
        raise RunFileCorruptError(f"{path}: damaged run file ({'; '.join(result)})")


def remove_run_file(path: str | os.PathLike) -> None:
    """Delete a run file with its SQLite sidecars (``-wal``, ``-shm``), if there."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


class RunWriter:
    """Appends finished steps to a run file; each step is one transaction.

    Use :meth:`create` for a new file and :meth:`resume` to continue an interrupted one.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, meta: RunMeta) -> None:
        self._conn = conn
        self.path = path
        self.meta = meta

    @classmethod
    def create(cls, path: str | os.PathLike, meta: RunMeta, overwrite: bool = False) -> "RunWriter":
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise RunFileError(f"{path}: exists; pass --resume to continue it or choose "
                                   f"another --out")
            remove_run_file(path)
        meta.created = meta.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # Built under another name and renamed into place: a reader (or a resume after a
        # kill) finds either no run file or one with its schema and metadata, never half one.
        draft = path.with_name(path.name + ".creating")
        draft.unlink(missing_ok=True)
        conn = sqlite3.connect(str(draft), timeout=30.0, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.to_rows())
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(draft, path)
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return cls(conn, path, meta)

    @classmethod
    def resume(cls, path: str | os.PathLike) -> "RunWriter":
        path = Path(path)
        _check_file(path)
        conn = _connect(path, readonly=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            meta = _read_meta(conn, path)
            _integrity(conn, path)
            conn.executescript(_SCHEMA)      # adds tables newer than the file (effects)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, meta)

    def last_step(self) -> tuple[int, int] | None:
        """(run, step) of the last finished step, or None for an empty run."""
        row = self._conn.execute(
            "SELECT run, step FROM steps ORDER BY run DESC, step DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def next_step(self) -> tuple[int, int] | None:
        """Where to continue: the (run, step) after the last finished one; None when done."""
        last = self.last_step()
        if last is None:
            return (0, 0)
        run, step = last
        if step + 1 < self.meta.steps:
            return (run, step + 1)
        if run + 1 < self.meta.runs:
            return (run + 1, 0)
        return None

    def set_extra(self, key: str, value: Any) -> None:
        """Record an extra metadata item (e.g. resume events) in its own transaction."""
        self.meta.extra[key] = value
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('extra', ?)",
                               (json.dumps(self.meta.extra),))

    def write_step(self, rec: StepRecord) -> None:
        c = self._conn
        r, s = rec.run, rec.step
        with self._transaction():
            c.execute("INSERT INTO steps VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (r, s, float(rec.u), rec.status, rec.reason, rec.t_start_ns, rec.t_end_ns))
            c.executemany("INSERT INTO slots VALUES (?, ?, ?, ?, ?, ?)",
                          [(r, s, x.slot, x.value, x.t_start_ns, x.t_end_ns) for x in rec.slots])
            c.executemany("INSERT INTO marks VALUES (?, ?, ?, ?)",
                          [(r, s, u, why) for u, why in rec.marks.items()])
            c.executemany("INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)",
                          [(r, s, x.slot, x.unit, x.command, float(x.value))
                           for x in rec.commands])
            c.executemany("INSERT INTO effects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [(r, s, x.slot, x.unit, x.command, x.commanded, x.effective, x.status,
                            x.evidence) for x in rec.effects])
            c.executemany(
                "INSERT INTO shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r, s, x.slot, x.unit, x.clock_ns, x.job, x.nonce, x.chip, x.share_difficulty,
                  x.pool_difficulty, int(x.accepted), x.code, x.version_bits)
                 for x in rec.shares])
            c.executemany(
                "INSERT INTO telemetry VALUES (?, ?, ?, ?, ?, ?)",
                [(r, s, x.slot, x.unit, x.clock_ns,
                  json.dumps({k: _json_safe(v) for k, v in x.data.items()}))
                 for x in rec.telemetry])

    def _transaction(self) -> "_Txn":
        return _Txn(self._conn)

    def close(self) -> None:
        """Close the file as one self-contained file: WAL mode (so that readers can follow a
        run while it is written) ends here, or read-only readers would later leave ``-wal`` and
        ``-shm`` files beside it. A reader still open keeps WAL mode; nothing is lost either way."""
        try:
            self._conn.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError as exc:
            log.debug("%s: stays in WAL mode (%s)", self.path, exc)
        self._conn.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Txn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class RunReader:
    """Read-only view of a run file (safe while a writer is appending to it)."""

    def __init__(self, path: str | os.PathLike, check: bool = True) -> None:
        self.path = Path(path)
        _check_file(self.path)
        self._conn = _connect(self.path, readonly=True)
        try:
            self.meta = _read_meta(self._conn, self.path)
            if check:
                _integrity(self._conn, self.path)
            self._tables = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        except BaseException:
            self._conn.close()
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise RunFileCorruptError(f"{self.path}: damaged run file ({exc})") from exc

    def count(self, table: str, run: int | None = None) -> int:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}")
        where, params = ("WHERE run = ?", (run,)) if run is not None else ("", ())
        return int(self.query(f"SELECT COUNT(*) FROM {table} {where}", params)[0][0])

    def runs(self) -> list[int]:
        return [int(r[0]) for r in self.query("SELECT DISTINCT run FROM steps ORDER BY run")]

    def steps(self, run: int) -> list[tuple[int, float, str, str, int, int]]:
        """(step, u, status, reason, t_start_ns, t_end_ns) rows of one run, in order."""
        return self.query("SELECT step, u, status, reason, t_start_ns, t_end_ns FROM steps "
                          "WHERE run = ? ORDER BY step", (run,))

    def marks(self, run: int) -> list[tuple[int, str, str]]:
        return self.query("SELECT step, unit, reason FROM marks WHERE run = ? ORDER BY step",
                          (run,))

    def slots(self, run: int) -> list[tuple[int, int, float, int, int]]:
        return self.query("SELECT step, slot, value, t_start_ns, t_end_ns FROM slots "
                          "WHERE run = ? ORDER BY step, slot", (run,))

    def shares(self, run: int, unit: str) -> list[tuple]:
        """(step, slot, clock_ns, nonce, chip, share_difficulty, pool_difficulty, accepted)."""
        return self.query(
            "SELECT step, slot, clock_ns, nonce, chip, share_difficulty, pool_difficulty, "
            "accepted FROM shares WHERE run = ? AND unit = ? ORDER BY clock_ns", (run, unit))

    def telemetry(self, run: int, unit: str) -> Iterator[tuple[int, int, int, dict]]:
        """(step, slot, clock_ns, fields) per reading, in time order."""
        for step, slot, ns, data in self.query(
                "SELECT step, slot, clock_ns, data FROM telemetry WHERE run = ? AND unit = ? "
                "ORDER BY step, slot, clock_ns", (run, unit)):
            yield int(step), int(slot), int(ns), json.loads(data)

    def effects(self, run: int, unit: str) -> list[tuple[int, int, str, float | None, float | None, str, str]]:
        """(step, slot, command, commanded, effective, status, evidence) of each verified write."""
        if "effects" not in self._tables:
            return []
        return self.query("SELECT step, slot, command, commanded, effective, status, evidence "
                          "FROM effects WHERE run = ? AND unit = ? ORDER BY step, slot",
                          (run, unit))

    def commands(self, run: int, unit: str) -> list[tuple[int, int, str, float]]:
        return self.query("SELECT step, slot, command, value FROM commands "
                          "WHERE run = ? AND unit = ? ORDER BY step, slot", (run, unit))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_csv(path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write one CSV per table into ``out_dir``; telemetry is flattened to one column per field."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with RunReader(path) as reader:
        for table in (*TABLES, *(t for t in OPTIONAL_TABLES if t in reader._tables)):
            target = out / f"{table}.csv"
            cur = reader._conn.execute(f"SELECT * FROM {table}")
            header = [d[0] for d in cur.description]
            with target.open("w", newline="") as fh:
                w = csv.writer(fh)
                if table == "telemetry":
                    rows = cur.fetchall()
                    decoded = [json.loads(r[-1]) for r in rows]
                    fields = sorted({k for d in decoded for k in d})
                    w.writerow(header[:-1] + fields)
                    for r, d in zip(rows, decoded):
                        w.writerow(list(r[:-1]) + [_csv_value(d.get(k)) for k in fields])
                else:
                    w.writerow(header)
                    for r in cur:
                        w.writerow(r)
            written.append(target)
    return written


def _csv_value(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else v
