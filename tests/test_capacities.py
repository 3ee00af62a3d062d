"""Capacities in analyze: hardware beside the filter bank and an ESN, units together,
capacity plots; from handmade run files whose states are known filters of the input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asic_reservoir.analysis.readout import Split, evaluate, input_delays
from asic_reservoir.analysis.report import CapacitySummary, Entry, Report, dumps
from asic_reservoir.analysis.readout import summarize
from asic_reservoir.analysis.tasks import (TaskError, capacity_profile, narma, narma_profile,
                                           target_profile)
from asic_reservoir.analysis import runfiles
from asic_reservoir.analysis.runfiles import NEEDS_PLOT, AnalysisOptions, analyze_files
from asic_reservoir.experiment.record import narma_inputs
from asic_reservoir.experiment.runs import (RunMeta, RunWriter, SlotRow, StepRecord,
                                            TelemetryRow, UnitMeta)

S = 1_000_000_000
STEPS = 600


def _run_file(path, units: dict, runs: int = 2, seed: int = 0, control: str | None = None
              ) -> None:
    """One slot per step; unit ``name`` reports ``{"level": f(u)[t]}`` mid-step, where
    ``units[name]`` maps the run's input series to that state series."""
    meta = RunMeta(task="narma10", seed=seed, steps=STEPS, runs=runs, slots=1,
                   units=[UnitMeta(name=n, url=f"s9://127.0.0.1:{i + 1}")
                          for i, n in enumerate(units)], channel={"spec": "hand"}, mask=[1.0],
                   step_seconds=5.0, extra={"control": control} if control else {})
    inputs = narma_inputs(seed, STEPS, control)
    with RunWriter.create(path, meta) as w:
        for run in range(runs):
            u = inputs(run)
            levels = {n: f(u) for n, f in units.items()}
            for t in range(STEPS):
                t0 = (run * STEPS + t) * S
                tel = [TelemetryRow(n, 0, t0 + S // 2, {"level": float(levels[n][t])})
                       for n in units]
                w.write_step(StepRecord(run, t, float(u[t]), t0, t0 + S,
                                        [SlotRow(0, float(u[t]), t0, t0 + S)], [], [], tel, {}))


def _ema(u, tau):
    a, e, out = np.exp(-1 / tau), 0.0, np.empty_like(u)
    for t, v in enumerate(u):
        e = a * e + (1 - a) * v
        out[t] = e
    return out


def test_capacities_of_known_filters_and_units_scored_together(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "run.db"
    _run_file(path, {"slow": lambda u: _ema(u, 4.0) + rng.normal(0, 1e-3, len(u)),
                     "late": lambda u: np.r_[0.0, 0.0, u[:-2]] + rng.normal(0, 1e-3, len(u))})
    report = analyze_files([path], plots=tmp_path / "plots")
    by_unit = {e.unit: e for e in report.entries}
    assert set(by_unit) == {"slow", "late", "all 2"}
    late = by_unit["late"].capacities["hardware"]
    # a reading u(t-2) and its change u(t-2) - u(t-3): memory capacity 2, at delays 2 and 3
    assert late.memory.mean == pytest.approx(2.0, abs=0.05)
    assert np.flatnonzero(np.array(late.per_delay) > 0.5).tolist() == [2, 3]
    assert late.ipc[2].mean == pytest.approx(0.0, abs=0.05)
    slow = by_unit["slow"].capacities
    assert 0.5 < slow["hardware"].memory.mean < slow["filter bank + quadratic"].memory.mean
    joint = by_unit["all 2"]
    assert "one reservoir of slow hand, late hand" == joint.note
    assert joint.capacities["hardware"].memory.mean > late.memory.mean + 0.3
    assert joint.readouts["hardware"].mean < min(by_unit[u].readouts["hardware"].mean
                                                 for u in ("slow", "late"))
    esn = report.capacities["ESN-100"]
    assert esn.memory.n == 2 and esn.memory.mean > 5
    text = report.table()
    assert "capacities on held-out rows" in text
    assert any(l.startswith("late") and "hardware" in l and "2.0" in l for l in text.splitlines())
    data = json.loads(dumps(report))
    cap = data["units"]["late"]["hand"]["capacities"]["hardware"]
    assert cap["memory_capacity"]["runs"] == 2 and len(cap["memory_per_delay"]) == 21
    # points of a scan are not one reservoir: without the joint entry, the others unchanged
    alone = analyze_files([path], AnalysisOptions(joint=False, capacities=False))
    assert {e.unit for e in alone.entries} == {"slow", "late"}
    assert {e.unit: e.readouts["hardware"].mean for e in alone.entries} == pytest.approx(
        {u: by_unit[u].readouts["hardware"].mean for u in ("slow", "late")})
    assert set(cap["ipc_by_degree"]) == {"1", "2"}
    assert data["capacities"]["ESN-100"]["memory_capacity"]["mean"] > 5
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*capacity_vs_delay.png"))
    assert pngs == ["all_2_states_side_by_side_capacity_vs_delay.png",
                    "late_hand_capacity_vs_delay.png", "slow_hand_capacity_vs_delay.png"]
    # per basis term: "late" has u(t-2) and u(t-3) and no products; it lands in the JSON
    assert late.terms[(2,)] > 0.95 and late.terms[(3,)] > 0.95 and late.terms[(0,)] < 0.05
    assert max(v for k, v in late.terms.items() if len(k) == 2) < 0.05
    assert len(cap["ipc_terms"]) == 66 and cap["ipc_terms"]["0,9"] < 0.05
    # what NARMA-10 needs beside every reservoir of the analysis
    assert (tmp_path / "plots" / NEEDS_PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_capacity_summary_over_runs():
    rng = np.random.default_rng(1)
    split = Split(20, 400, 100)
    profiles = []
    for _ in range(3):
        u = rng.uniform(0, 0.5, 800)
        profiles.append(capacity_profile(input_delays(u, 4), u, split))
    c = CapacitySummary.from_profiles(profiles)
    assert c.memory.n == 3 and c.memory.mean == pytest.approx(4.0, abs=0.1)
    assert c.ipc[1].mean == pytest.approx(4.0, abs=0.1) and c.ipc[2].mean < 0.2
    assert c.per_delay[:4] == pytest.approx([1, 1, 1, 1], abs=0.02)
    rep = Report("toy", [Entry("u", "c", {"hardware": summarize([0.5])}, capacities={"hw": c})],
                 {})
    assert "4.00 ± 0.00 (3)" in rep.table()
    with pytest.raises(ValueError):
        CapacitySummary.from_profiles([])


def test_consistency_of_one_input_replayed_is_the_noise_floor(tmp_path):
    """A noise-free state answers one input replayed identically (r = 1); a state that is
    signal + independent noise of equal variance correlates ~0.5 with itself, and its
    change per step (noise-dominated) less: the mean over both lies between."""
    rng = np.random.default_rng(3)

    def noisy(u):
        signal = _ema(u, 3.0)
        return signal + rng.normal(0, signal[50:].std(), len(u))

    units = {"clean": lambda u: _ema(u, 3.0), "noisy": noisy}
    _run_file(tmp_path / "runs.db", units)
    _run_file(tmp_path / "repeat.db", units, runs=3, control="repeated-input")
    report = analyze_files([tmp_path / "runs.db", tmp_path / "repeat.db"])
    by_unit = {e.unit: e for e in report.entries}
    assert set(by_unit) == {"clean", "noisy", "all 2"}            # no entries of their own
    assert by_unit["clean"].consistency.n == 2                    # runs 1 and 2 vs run 0
    assert by_unit["clean"].consistency.mean == pytest.approx(1.0, abs=1e-6)
    assert 0.2 < by_unit["noisy"].consistency.mean < 0.55
    assert ("noisy/hand: consistency (same input replayed): mean state correlation, over (n) "
            "run pairs, 0.") in report.table()
    assert json.loads(dumps(report))["units"]["noisy"]["hand"]["consistency"]["run_pairs"] == 2
    # the replayed series is run 0's in every run
    inputs = narma_inputs(0, 50, "repeated-input")
    assert np.array_equal(inputs(0), inputs(2))
    assert not np.array_equal(narma_inputs(0, 50)(0), narma_inputs(0, 50)(2))


def _uniform(n: int = 20_000, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 0.5, n)


def _lag(x: np.ndarray, k: int) -> np.ndarray:
    return np.r_[np.zeros(k), x[:len(x) - k]]


def test_target_profile_puts_a_known_target_on_its_terms():
    u = _uniform()
    x = 4 * u - 1                                   # [0, 0.5] -> [-1, 1], as the basis maps it
    delayed = target_profile(_lag(u, 3), u)
    assert delayed.terms[(3,)] == pytest.approx(1.0, abs=1e-9)
    assert delayed.total == pytest.approx(1.0, abs=1e-3)
    assert sum(v for k, v in delayed.terms.items() if k != (3,)) < 1e-3
    product = target_profile(_lag(x, 9) * x, u)     # P1(u(t-9)) P1(u(t)) itself
    assert product.terms[(0, 9)] == pytest.approx(1.0, abs=0.01)
    assert product.by_degree[1] < 1e-3
    # NARMA's raw product u(t-9) u(t) = (1 + x(t-9)) (1 + x(t)) / 16: variances 1/3, 1/3 and
    # 1/9 on P1(u(t)), P1(u(t-9)) and their product, i.e. shares 3/7, 3/7, 1/7
    raw = target_profile(_lag(u, 9) * u, u)
    assert [raw.terms[(0,)], raw.terms[(9,)], raw.terms[(0, 9)]] == pytest.approx(
        [3 / 7, 3 / 7, 1 / 7], abs=0.02)
    assert raw.total == pytest.approx(1.0, abs=0.01)
    # states holding u(t) and u(t-9) but not their product: NRMSE >= sqrt(1/7); nothing
    # measured, no floor; a state mixing the two delays 1:1 in one feature reaches 6/7 of
    # the variance, so its floor must not exceed sqrt(1/7) though each delay's capacity is 1/2
    zero = {k: 0.0 for k in raw.terms}
    assert raw.nrmse_floor({**zero, (0,): 1.0, (9,): 1.0}) == pytest.approx(np.sqrt(1 / 7),
                                                                         abs=0.02)
    assert raw.nrmse_floor({}) == 0.0
    assert raw.nrmse_floor({**zero, (0,): 0.5, (9,): 0.5}) <= np.sqrt(1 / 7) + 0.02
    # the target's part on a term, rebuilt from its coefficient, and the floor that part
    # leaves when the states hold none of it (sqrt(1/7)) or all of it (0)
    assert raw.coefficients[(0, 9)] == pytest.approx(1 / 16, rel=0.06)   # ~2 % standard error
    assert raw.part(u, [(0, 9)]) == pytest.approx(_lag(x, 9) * x / 16, abs=5e-3)
    assert raw.share([(0, 9), (0, 9)]) == pytest.approx(1 / 7, abs=0.02)
    assert raw.nrmse_floor_of_part([(0, 9)], 0.0) == pytest.approx(np.sqrt(1 / 7), abs=0.02)
    assert raw.nrmse_floor_of_part([(0, 9)], 1.0) == 0.0
    with pytest.raises(TaskError, match="rows"):
        target_profile(u[:5], u)
    with pytest.raises(TaskError, match="input range"):
        target_profile(u, u + 1)


def test_narma10_profile_predicts_the_delay_ridges_it_is_scored_against():
    """NARMA-10's variance lies on u(t), u(t-9) and u(t-10) and the product u(t) u(t-9);
    a ridge on k input delays has capacity 1 on delays < k and 0 elsewhere, so its NRMSE
    lies at the floor those capacities leave, within what lies beyond the profiled terms."""
    target = narma_profile()
    linear = target.linear(20)
    assert set(np.argsort(linear)[-3:]) == {0, 9, 10}
    products = {k: v for k, v in target.terms.items() if len(k) == 2}
    assert max(products, key=products.get) == (0, 9)
    assert target.by_degree[1] == pytest.approx(0.85, abs=0.02)
    assert 0.95 < target.total <= 1.0 + 1e-9
    series = narma(6000, seed=11)
    split = Split(50, 3000, 1000)
    for k in (10, 20):
        ridge = evaluate(input_delays(series.u, k), series.y, split)
        floor = target.nrmse_floor({key: float(key in {(d,) for d in range(k)})
                                    for key in target.terms})
        assert floor - 0.01 <= ridge.nrmse <= floor + 0.05


def test_units_on_one_series_share_what_reads_only_the_input(tmp_path, monkeypatch):
    """The input-only and memory-matched controls and the filter bank's capacities are fitted
    once per run for units driven by one series on the same rows, and score as they do for
    a unit analysed alone."""
    rng = np.random.default_rng(2)
    path = tmp_path / "run.db"
    _run_file(path, {"slow": lambda u: _ema(u, 4.0) + rng.normal(0, 1e-3, len(u)),
                     "late": lambda u: np.r_[0.0, 0.0, u[:-2]] + rng.normal(0, 1e-3, len(u))})
    fitted = []
    real = runfiles.input_controls
    monkeypatch.setattr(runfiles, "input_controls",
                        lambda *a, **k: fitted.append(1) or real(*a, **k))
    together = {e.unit: e for e in analyze_files([path], AnalysisOptions(joint=False)).entries}
    assert len(fitted) == 2                                  # one per run, not per unit
    bank = "filter bank + quadratic"
    for unit in ("slow", "late"):
        alone = analyze_files([path], AnalysisOptions(units=[unit], joint=False)).entries[0]
        shared = together[unit]
        assert list(shared.controls) == list(alone.controls)
        assert {k: c.values for k, c in shared.controls.items()} == \
            {k: c.values for k, c in alone.controls.items()}
        assert shared.capacities[bank].memory.values == alone.capacities[bank].memory.values
        assert shared.capacities[bank].terms == alone.capacities[bank].terms
        assert shared.readouts["hardware"].values == alone.readouts["hardware"].values
