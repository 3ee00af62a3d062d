"""Enrollment store for fingerprints: one SQLite file, one transaction per write.

A crash mid-write leaves either the whole enrollment or none of it (SQLite's journal),
so a fleet enrollment interrupted at unit 13 keeps units 1-12 intact.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enrollments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    unit_url TEXT NOT NULL,
    challenge_version TEXT NOT NULL,
    feature_names TEXT NOT NULL,
    features TEXT NOT NULL,
    conditions TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS enrollments_by_model ON enrollments (model, challenge_version);
"""


class StoreError(RuntimeError):
    """The enrollment store is missing, corrupt, or from another schema version."""


@dataclass(frozen=True)
class Enrollment:
    name: str
    model: str
    unit_url: str
    challenge_version: str
    feature_names: tuple[str, ...]
    features: np.ndarray
    conditions: dict
    created: float


class EnrollmentStore:
    """Reference responses by unit name, model and challenge version."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._db:
                self._db.executescript(_SCHEMA)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StoreError(f"{self.path}: enrollment store schema {row[0]}, "
                                     f"this toolkit reads schema {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a readable enrollment store ({exc})") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "EnrollmentStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enroll(self, name: str, model: str, unit_url: str, challenge_version: str,
               feature_names: tuple[str, ...], features: np.ndarray,
               conditions: dict | None = None) -> None:
        """Add one reference response for ``name`` (several per unit are averaged)."""
        values = np.asarray(features, dtype=float)
        if values.shape != (len(feature_names),) or not np.all(np.isfinite(values)):
            raise ValueError(f"enrollment of {name!r}: need {len(feature_names)} finite features")
        with self._db:
            self._db.execute(
                "INSERT INTO enrollments (name, model, unit_url, challenge_version, feature_names,"
                " features, conditions, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, model, unit_url, challenge_version, json.dumps(list(feature_names)),
                 json.dumps(values.tolist()), json.dumps(conditions or {}), time.time()))

    def names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT name FROM enrollments ORDER BY name")]

    def enrollments(self, model: str | None = None,
                    challenge_version: str | None = None) -> list[Enrollment]:
        query, args = "SELECT name, model, unit_url, challenge_version, feature_names, features," \
                      " conditions, created FROM enrollments WHERE 1=1", []
        if model is not None:
            query, args = query + " AND model = ?", args + [model]
        if challenge_version is not None:
            query, args = query + " AND challenge_version = ?", args + [challenge_version]
        try:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
            return [Enrollment(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])),
                               np.asarray(json.loads(r[5]), dtype=float), json.loads(r[6]), r[7])
                    for r in rows]
        except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path}: unreadable enrollment ({exc})") from exc
