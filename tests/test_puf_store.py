"""Enrollment store: round trips, bad files, and a crash mid-write (real SIGKILL)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from asic_reservoir.puf.store import EnrollmentStore, StoreError

NAMES = ("a", "b", "c")


def test_round_trip_and_mean_reference(tmp_path):
    with EnrollmentStore(tmp_path / "e.db") as store:
        store.enroll("u1", "lv06", "lv06://127.0.0.1", "v1", NAMES, np.array([1.0, 2, 3]))
        store.enroll("u1", "lv06", "lv06://127.0.0.1", "v1", NAMES, np.array([3.0, 2, 1]))
        store.enroll("u2", "lv06", "lv06://127.0.0.2", "v1", NAMES, np.array([0.0, 0, 0]))
        store.enroll("s", "s9", "s9://127.0.0.3", "v1", NAMES, np.array([9.0, 9, 9]))
    with EnrollmentStore(tmp_path / "e.db") as store:
        rows = store.enrollments("lv06", "v1")
        assert [r.name for r in rows] == ["u1", "u1", "u2"]
        np.testing.assert_allclose(rows[1].features, [3, 2, 1])
        assert rows[0].feature_names == NAMES and rows[2].unit_url == "lv06://127.0.0.2"
        assert store.names() == ["s", "u1", "u2"]
        assert store.enrollments("s9", "v2") == []


def test_rejects_bad_features_and_bad_files(tmp_path):
    with EnrollmentStore(tmp_path / "e.db") as store:
        with pytest.raises(ValueError, match="finite"):
            store.enroll("u", "lv06", "x", "v1", NAMES, np.array([1.0, np.nan, 2]))
        with pytest.raises(ValueError):
            store.enroll("u", "lv06", "x", "v1", NAMES, np.array([1.0]))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        EnrollmentStore(junk)
    other = tmp_path / "other.db"
    EnrollmentStore(other).close()
    db = sqlite3.connect(other)
    with db:
        db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.close()
    with pytest.raises(StoreError, match="schema 99"):
        EnrollmentStore(other)


WRITER = """
import sys, numpy as np
from asic_reservoir.puf.store import EnrollmentStore
store = EnrollmentStore(sys.argv[1])
names = tuple(f"f{i}" for i in range(200))
i = 0
print("ready", flush=True)
while True:
    store.enroll(f"unit{i % 50}", "s9", "s9://127.0.0.1", "v1", names, np.full(200, float(i)))
    i += 1
    print(i, flush=True)
"""


def test_store_survives_kill_mid_write(tmp_path):
    path = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    while int(proc.stdout.readline()) < 20:    # 20 enrollments committed, more under way
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with EnrollmentStore(path) as store:
        rows = store.enrollments("s9", "v1")
        assert len(rows) >= 20
        for row in rows:  # every committed enrollment is whole
            assert row.features.shape == (200,) and np.all(row.features == row.features[0])
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store.enroll("after", "s9", "s9://127.0.0.1", "v1", tuple(f"f{i}" for i in range(200)),
                     np.zeros(200))
