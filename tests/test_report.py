"""Result table and JSON: every hardware number beside baselines and controls, labelled."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asic_reservoir.analysis.readout import Split, evaluate, summarize, summarize_scores
from asic_reservoir.analysis.report import (CapacitySummary, Entry, PlotsUnavailable, Report,
                                   dumps, gains, plot_capacity_vs_theta, plot_features,
                                   plot_nrmse_vs_slots, plot_prediction, plot_task_needs)
from asic_reservoir.analysis.tasks import target_profile


def _report() -> Report:
    hw = summarize([0.87, 0.86, 0.88])
    return Report(
        task="NARMA-10",
        entries=[Entry("s9", "difficulty (published)",
                       readouts={"hardware": summarize([0.998, 1.002, 1.0]),
                                 "hardware + input": hw},
                       controls={"input only": summarize([0.871, 0.872, 0.870]),
                                 "shuffled states": summarize([1.0, 1.01, 0.99])}),
                 Entry("lv06", "frequency x16 slots", readouts={"hardware": summarize([0.8661])},
                       note="one run only")],
        baselines={"mean": summarize([1.0, 1.001]), "ESN-100": summarize([0.21, 0.22])},
        split=Split(200, 4000, 2000, 4000), skipped_steps=3)


def test_table_lists_hardware_controls_and_baselines_with_spread():
    text = _report().table()
    lines = text.splitlines()
    assert "std" in lines[0] and "mean ± std" in lines[0]
    assert "washout 200, train 4000, validation 2000" in text
    assert "3 marked steps skipped" in text
    row = next(l for l in lines if "shuffled states" in l)
    assert row.startswith("control") and "1.000 ± 0.010 (3)" in row
    row = next(l for l in lines if "ESN-100" in l)
    assert row.startswith("baseline") and "0.215 ± 0.007 (2)" in row
    assert any(l.startswith("hardware") and "0.866 (1)" in l for l in lines)
    assert "note: lv06/frequency x16 slots: one run only" in text
    # hardware + input 0.87/0.86/0.88 vs input only 0.871/0.872/0.870: nothing gained
    assert ("s9/difficulty (published): gain over input only: +0.001 [-0.026, +0.028] 95 % CI"
            ", p = 0.375, 3 runs: too few runs for a verdict (need 5)") in text
    assert "range" not in text                     # range-normalised only when asked
    header = next(l for l in lines if l.startswith("kind"))
    col = header.index("NRMSE")
    rows = [l for l in lines if l.split(" ")[0] in ("hardware", "control", "baseline")]
    assert len(rows) == 7 and all(l[col - 2:col] == "  " and l[col].isdigit() for l in rows)


def test_range_normalised_column_only_when_asked():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 3))
    y = x @ [1.0, 2.0, 0.5] + rng.normal(0, 1, 600)
    split = Split(0, 300, 100)
    s = summarize_scores([evaluate(x, y, split), evaluate(x[:, :2], y, split)])
    rep = Report("toy", [Entry("sim", "c", {"hardware": s})], {})
    assert "range" not in rep.table()
    wide = rep.table(show_range=True)
    assert "NRMSE (range, not comparable)" in wide
    assert f"{s.range_normalised.mean:.3f} ±" in wide
    assert "nrmse_range_mean" not in json.dumps(rep.to_json())
    assert rep.to_json(show_range=True)["units"]["sim"]["c"]["nrmse_range_mean"] == \
        pytest.approx(s.range_normalised.mean, abs=1e-6)


def test_json_schema_is_strict_and_complete():
    data = json.loads(dumps(_report()))
    assert data["normalisation"] == "std" and data["task"] == "NARMA-10"
    s9 = data["units"]["s9"]["difficulty (published)"]
    assert s9["readout"] == "hardware" and s9["runs"] == 3
    assert s9["nrmse_mean"] == pytest.approx(1.0)
    assert set(s9["readouts"]) == {"hardware", "hardware + input"}
    assert s9["controls"]["input only"]["nrmse_mean"] == pytest.approx(0.871)
    assert data["units"]["lv06"]["frequency x16 slots"]["nrmse_std"] is None  # no NaN in JSON
    assert data["baselines"]["ESN-100"]["runs"] == 2
    assert data["split"] == {"washout": 200, "train": 4000, "validation": 2000, "test": 4000}
    g = s9["gains"]["input only"]
    assert g["mean"] == pytest.approx(0.001, abs=1e-6) and g["runs"] == 3
    assert g["std"] == pytest.approx(0.011, abs=1e-6) and g["verdict"] == "too few runs"
    assert g["low"] < 0 < g["high"] and g["differences"] == pytest.approx([0.001, 0.012, -0.01])
    assert data["units"]["lv06"]["frequency x16 slots"]["gains"] == {}
    with pytest.raises(ValueError):
        Entry("s9", "x", readouts={})


def test_gains_are_paired_and_claimed_only_against_the_strongest_memory_control():
    def entry(hw, controls):
        return Entry("u", "c", {"hardware + input": summarize(hw)},
                     {k: summarize(v) for k, v in controls.items()})
    hw = [0.40, 0.42, 0.41, 0.43, 0.40]
    g, = gains(entry(hw, {"input only": [0.87, 0.88, 0.86, 0.87, 0.88]}))
    assert g.real and g.comparison.mean == pytest.approx(0.46)
    assert g.sentence().endswith("the hardware adds something beyond input only")
    over_input, over_memory = gains(entry(hw, {
        "input only": [0.87, 0.88, 0.86, 0.87, 0.88],
        "10 input delays": [0.60, 0.61, 0.59, 0.60, 0.62],
        "20 input delays": [0.41, 0.40, 0.42, 0.44, 0.39],      # strongest: no clear gain
        "filter bank + quadratic": [0.50, 0.52, 0.49, 0.50, 0.51]}))
    assert over_input.real
    assert over_memory.control == "20 input delays" and not over_memory.real
    assert "adds nothing measurable beyond 20 input delays" in over_memory.sentence()
    # the spread of a gain no longer decides it: five consistent runs do
    assert not gains(entry([0.80, 0.90, 0.70], {"input only": [0.87, 0.80, 0.88]}))[0].real
    assert gains(entry([0.5, 0.6], {"input only": [0.9]})) == []          # runs don't pair
    one, = gains(entry([0.5], {"input only": [0.9]}))
    assert "1 run, no interval" in one.sentence() and "too few runs" in one.sentence()


def test_plots_need_matplotlib_or_write_pngs(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 2))
    u = rng.uniform(0, 0.5, 2000)
    needs = target_profile(u + np.r_[0.0, u[:-1]] * u, u, max_delay=3)
    score = evaluate(x, x[:, 0] + rng.normal(0, 0.1, 500), Split(0, 200, 100))
    calls = {
        "prediction.png": lambda p: plot_prediction(score, p, title="toy"),
        "features.png": lambda p: plot_features(x, ["a", "b"], p),
        "slots.png": lambda p: plot_nrmse_vs_slots(
            [1, 4, 16], [summarize([0.9, 0.91]), summarize([0.7, 0.72]), summarize([0.5])], p,
            baselines={"ESN-100": summarize([0.21, 0.22])}),
        "theta.png": lambda p: plot_capacity_vs_theta(
            {"gain 0.3": [(0.25, summarize([2.6, 2.7]), summarize([0.0, 0.1])),
                          (3.0, summarize([3.5, 3.6]), summarize([0.0]))]}, p,
            references={"fan": 1.0}),
        "needs.png": lambda p: plot_task_needs(
            needs, {"hw": CapacitySummary(summarize([2.0]), {1: summarize([2.0])}, (1.0, 1.0),
                                          {(0,): 1.0, (1,): 0.9, (0, 1): 0.3})}, p,
            scores={"hw": summarize([0.4])}),
    }
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        for name, call in calls.items():
            with pytest.raises(PlotsUnavailable, match=r"asic-reservoir\[plots\]"):
                call(tmp_path / name)
        assert not list(tmp_path.iterdir())
    else:
        for name, call in calls.items():
            out = call(tmp_path / "sub" / name)
            assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
