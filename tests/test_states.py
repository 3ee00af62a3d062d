"""States from a handmade run file: every feature checked against numbers computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from asic_reservoir.experiment.runs import (RunMeta, RunReader, RunWriter, ShareRow, SlotRow, StepRecord,
                                 TelemetryRow, UnitMeta)
from asic_reservoir.analysis.states import StatesError, states

S = 1_000_000_000  # ns per second


def _write(path, marks_at: int | None = None, nan_at: int | None = None) -> None:
    meta = RunMeta(task="narma10", seed=1, steps=4, runs=1, slots=2,
                   units=[UnitMeta(name="a", url="s9://127.0.0.1:1", chips=4),
                          UnitMeta(name="b", url="lv06://127.0.0.1:2")],
                   channel={}, mask=[1.0, -1.0])
    with RunWriter.create(path, meta) as w:
        for t in range(4):
            t0 = 2 * t * S
            slots = [SlotRow(0, 0.1, t0, t0 + S), SlotRow(1, 0.4, t0 + S, t0 + 2 * S)]
            shares = []
            # Unit a: t+1 accepted shares in slot 0 at 0.1 s spacing, on chip t % 4;
            # one rejected share in slot 1.
            for i in range(t + 1):
                shares.append(ShareRow("a", 0, t0 + (i + 1) * S // 10, "j", 0b1011 << (8 * i),
                                       t % 4, 8.0, 2.0, True))
            shares.append(ShareRow("a", 1, t0 + S + S // 2, "j", 1, 0, 1.0, 2.0, False, 23))
            temp = float("nan") if t == nan_at else 50.0 + 2 * t
            tel = [TelemetryRow("a", 0, t0 + 1, {"temp": temp, "model": "s9",
                                                 "frequency_mhz": 500.0 + t,
                                                 "accepted": 10.0 * t, "vr": None}),
                   TelemetryRow("a", 1, t0 + S + 1, {"temp": 50.0 + 2 * t + 1,
                                                     "frequency_mhz": 500.0 + t,
                                                     "accepted": 10.0 * t + 5}),
                   TelemetryRow("b", 0, t0 + 1, {"temp": 30.0, "fan": 100.0 - t}),
                   # answered after slot 1 ended (the next step had started): not used
                   TelemetryRow("b", 1, t0 + 2 * S + 5, {"temp": 99.0, "fan": 0.0})]
            w.write_step(StepRecord(0, t, 0.1 * t, t0, t0 + 2 * S, slots, [], shares, tel,
                                    {"a": "dropped"} if t == marks_at else {}))


def test_share_and_telemetry_features(tmp_path):
    path = tmp_path / "run.db"
    _write(path)
    with RunReader(path) as r:
        sm = states(r, units=["a"], drop_constant=False)
    assert sm.X.shape[0] == 4 and sm.slots == 2 and sm.n_marked == 0
    col = {n: sm.X[:, i] for i, n in enumerate(sm.names)}
    assert col["s0/count"].tolist() == [1, 2, 3, 4]
    assert col["s1/count"].tolist() == [0, 0, 0, 0]
    assert col["s0/rate"].tolist() == [1, 2, 3, 4]                 # slots last 1 s
    assert col["s1/rejected"].tolist() == [1, 1, 1, 1]
    assert col["s0/work_rate"].tolist() == [2.0, 4.0, 6.0, 8.0]   # sum pool difficulty / 1 s
    assert col["s0/first_delay"] == pytest.approx([0.1] * 4)
    # Step 1 slot 0: shares at 2.1 s, 2.2 s after the last share at 0.1 s -> gaps 2.0, 0.1.
    assert col["s0/gap_mean"][1] == pytest.approx(1.05)
    assert col["s0/gap_std"][1] == pytest.approx(0.95)
    assert col["s0/age_end"][1] == pytest.approx(3.0 - 2.2)
    assert col["s1/age_end"][1] == pytest.approx(4.0 - 2.2)
    assert col["s0/excess_log2"].tolist() == [2.0] * 4             # share 8 at pool 2
    assert col["s0/nonce_popcount"].tolist() == [3.0] * 4
    for chip in range(4):
        assert col[f"s0/chip{chip}"].tolist() == [(t + 1) * (t % 4 == chip) for t in range(4)]
    assert col["s0/tel.temp"].tolist() == [50, 52, 54, 56]
    assert col["s1/tel.temp"].tolist() == [51, 53, 55, 57]
    assert col["s0/tel.temp.d"].tolist() == [0, 1, 1, 1]         # change since previous slot
    assert col["s1/tel.temp.d"].tolist() == [1, 1, 1, 1]
    assert not any("model" in n for n in sm.names)                 # strings are not features
    # Echoes of commands are the input, not a state; counters enter as changes only;
    # a field the unit never reports is dropped without a NaN note.
    assert not any("frequency_mhz" in n for n in sm.names)
    assert "s0/tel.accepted" not in col and col["s0/tel.accepted.d"].tolist() == [0, 5, 5, 5]
    assert not any("vr" in n for n in sm.names) and not sm.notes
    np.testing.assert_allclose(sm.u, [0.0, 0.1, 0.2, 0.3])


def test_combined_units_per_slot_and_constant_columns(tmp_path):
    path = tmp_path / "run.db"
    _write(path)
    with RunReader(path) as r:
        both = states(r)
        per_slot = states(r, units=["b"], per="slot")
    assert any(n.startswith("a/s0/") for n in both.names)
    assert any(n.startswith("b/s0/tel.fan") for n in both.names)
    assert not any(n.endswith("tel.temp") and n.startswith("b/") for n in both.names)  # constant
    assert per_slot.X.shape[0] == 8
    # Unit b has one reading per step (slot 0); slot 1 carries it forward.
    fan = per_slot.X[:, per_slot.names.index("tel.fan")]
    assert fan.tolist() == [100, 100, 99, 99, 98, 98, 97, 97]
    assert any("4 telemetry readings arrived after their slot ended" in n for n in per_slot.notes)


def test_marked_steps_and_nan_telemetry_are_reported(tmp_path):
    path = tmp_path / "run.db"
    _write(path, marks_at=2, nan_at=1)
    with RunReader(path) as r:
        sm = states(r, units=["a"])
        other = states(r, units=["b"])
    assert sm.valid.tolist() == [True, True, False, True] and sm.n_marked == 1
    assert other.n_marked == 0                                   # the mark was unit a's
    assert any("1 of 4 steps marked" in n for n in sm.notes)
    assert any("NaN" in n for n in sm.notes)
    temp = sm.X[:, sm.names.index("s0/tel.temp")]
    assert temp.tolist() == [50, 51, 54, 56]    # NaN: last good reading (step 0, slot 1)
    assert np.all(np.isfinite(sm.X))


def test_bad_requests(tmp_path):
    path = tmp_path / "run.db"
    _write(path)
    with RunReader(path) as r:
        with pytest.raises(StatesError, match="no unit 'zz'"):
            states(r, units=["zz"])
        with pytest.raises(StatesError, match="no finished steps"):
            states(r, run=3)
        with pytest.raises(StatesError, match="per must be"):
            states(r, per="chip")


def test_no_later_reading_fills_the_rows_before_a_fields_first_reading(tmp_path):
    path = tmp_path / "run.db"
    meta = RunMeta(task="narma10", seed=1, steps=5, runs=1, slots=1,
                   units=[UnitMeta(name="a", url="s9://127.0.0.1:1")], channel={}, mask=[1.0])
    with RunWriter.create(path, meta) as w:
        for t in range(5):
            t0 = t * S
            tel = [TelemetryRow("a", 0, t0 + 1, {"temp": 40.0 + t})] if t >= 2 else []
            shares = [ShareRow("a", 0, t0 + S // 2, "j", 1, 0, 4.0, 2.0, True)] * (t % 2 + 1)
            w.write_step(StepRecord(0, t, 0.1 * t, t0, t0 + S, [SlotRow(0, 0.1 * t, t0, t0 + S)],
                                    [], shares, tel, {}))
    with RunReader(path) as r:
        sm = states(r)
    temp = sm.X[:, sm.names.index("s0/tel.temp")]
    assert sm.valid.tolist() == [False, False, True, True, True]
    assert 42.0 not in temp[:2].tolist()            # the old back-fill put step 2's value here
    assert temp[2:].tolist() == [42, 43, 44]
    assert sm.X[2, sm.names.index("s0/tel.temp.d")] == 0.0    # no earlier reading to differ from
    assert any("2 steps precede a telemetry field's first reading" in n for n in sm.notes)


def test_feature_and_input_times_feed_the_leakage_check(tmp_path):
    from asic_reservoir.analysis.readout import Split, check_no_leakage

    path = tmp_path / "run.db"
    _write(path)
    with RunReader(path) as r:
        sm = states(r, units=["a", "b"])
        per_slot = states(r, units=["b"], per="slot")
    # Steps start every 2 s; the latest datum of step t is unit a's slot-1 reading at
    # 2t s + 1.5 s (rejected share), b's late reply (2t + 2 s + 5 ns) is not used.
    assert sm.input_time_ns.tolist() == [0, 2 * S, 4 * S, 6 * S]
    assert sm.feature_time_ns.tolist() == [2 * t * S + S + S // 2 for t in range(4)]
    assert per_slot.input_time_ns.tolist() == [k * S for k in range(8)]
    assert per_slot.feature_time_ns.tolist() == [1, 1, 2 * S + 1, 2 * S + 1,
                                                 4 * S + 1, 4 * S + 1, 6 * S + 1, 6 * S + 1]
    rng = np.random.default_rng(0)
    n = 400
    x, u = rng.standard_normal((n, 2)), rng.uniform(0, 0.5, n)
    split = Split(10, 200, 90)
    ok = check_no_leakage(x, x[:, 0] + rng.normal(0, 1, n), u, split,
                          feature_time_ns=np.arange(n) * S + S - 1,
                          input_time_ns=np.arange(n) * S)
    assert ok.ok and ok.time_violations == 0


def test_analyze_refuses_a_run_whose_rows_saw_the_next_input(tmp_path):
    """A share filed under step t but stamped after step t+1's input went out (a misfiled
    record) makes analyze refuse that run: the states' timestamps reach the check."""
    from asic_reservoir.analysis.runfiles import analyze_files

    def write(path, misfile_at=None):
        meta = RunMeta(task="narma10", seed=1, steps=200, runs=1, slots=1,
                       units=[UnitMeta(name="a", url="s9://127.0.0.1:1")], channel={},
                       mask=[1.0])
        rng = np.random.default_rng(1)
        with RunWriter.create(path, meta) as w:
            for t in range(200):
                t0 = t * S
                n = int(rng.poisson(3))
                at = [t0 + S * (i + 1) // (n + 2) for i in range(n)]
                if t == misfile_at:
                    at.append(t0 + S + S // 10)
                shares = [ShareRow("a", 0, ns, "j", 1, 0, 4.0, 2.0, True) for ns in at]
                tel = [TelemetryRow("a", 0, t0 + S // 2, {"temp": 40.0 + rng.normal()})]
                w.write_step(StepRecord(0, t, float(rng.uniform(0, 0.5)), t0, t0 + S,
                                        [SlotRow(0, 0.0, t0, t0 + S)], [], shares, tel, {}))

    write(tmp_path / "clean.db")
    write(tmp_path / "misfiled.db", misfile_at=150)
    clean = analyze_files([tmp_path / "clean.db"])
    assert not any("not scored" in n for n in clean.notes)
    report = analyze_files([tmp_path / "clean.db", tmp_path / "misfiled.db"])
    assert any("misfiled.db: run 0: a not scored" in n and "after the next input" in n
               for n in report.notes), report.notes
