"""Probability-filter study: sweep determinism, detection power, energy accounting, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from asic_reservoir.tpf import evaluate as tpf
from asic_reservoir.tpf.evaluate import (energy_relative, evaluate, oracle_energy, paper_saving,
                                random_abort_energy)
from asic_reservoir.tpf.sweep import Dataset, SweepConfig, TpfError, features, sweep, sweep_chunk
from tests.support import main_here

SMALL = SweepConfig(rounds=(5, 125), difficulty_bits=5, hashes=1 << 15, nonces_per_header=1024,
                    headers_per_chunk=4, seed=3)


def test_process_pool_and_in_process_sweeps_are_identical():
    config = SweepConfig(rounds=(5, 64), difficulty_bits=3, hashes=2048, nonces_per_header=256,
                         headers_per_chunk=2, seed=11)
    local = sweep(config, workers=0)
    pooled = sweep(config, workers=2)
    assert local.equals(pooled)
    assert local.n == 2048 and config.n_chunks == 4
    assert local.states[5].shape == (2048, 8) and local.states[5].dtype == np.uint32
    # another seed gives other work
    assert not local.equals(sweep(SweepConfig(**{**config.__dict__, "seed": 12}), workers=0))


def test_evaluation_on_a_process_pool_matches_in_process():
    data = _planted(6, n=8000)
    data.states[16] = data.states[5][:, ::-1].copy()
    config = SweepConfig(rounds=(5, 16), seed=2)
    local = tpf.result_json(evaluate(data, config, ["base-rate", "logistic"], train_negatives=2000))
    pooled = tpf.result_json(evaluate(data, config, ["base-rate", "logistic"], train_negatives=2000,
                                      workers=2))
    assert local == pooled
    assert [r["round"] for r in local["rounds"]] == [5, 16]


def test_split_is_by_header_and_labels_follow_the_base_rate():
    data = sweep(SweepConfig(rounds=(5,), difficulty_bits=4, hashes=1 << 16, nonces_per_header=2048,
                             headers_per_chunk=8, seed=1))
    for h in np.unique(data.header):
        assert len(np.unique(data.test[data.header == h])) == 1   # a header is train or test
    assert data.test.mean() == 0.5
    expected = data.n / 16
    assert abs(data.labels.sum() - expected) < 5 * math.sqrt(expected * 15 / 16)


def test_chunk_past_the_end_is_refused():
    with pytest.raises(TpfError):
        sweep_chunk(SMALL, SMALL.n_chunks)
    with pytest.raises(TpfError, match="unknown predictor"):
        evaluate(_planted(0, n=2000), SweepConfig(rounds=(5,)), ["oracle"])


def test_rounds_are_sorted_and_unique():
    assert SweepConfig(rounds=(64, 5, 64)).rounds == (5, 64)


@pytest.mark.parametrize("kwargs", [dict(rounds=()), dict(rounds=(0,)), dict(rounds=(129,)), dict(difficulty_bits=0),
                                    dict(hashes=0), dict(test_fraction=1.0)])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(TpfError):
        SweepConfig(**kwargs)


def _planted(seed: int, n: int = 40000, effect: bool = True) -> Dataset:
    """Random states whose label depends on bit 31 of word a (if ``effect``)."""
    rng = np.random.default_rng(seed)
    states = rng.integers(0, 1 << 32, size=(n, 8), dtype=np.uint64).astype(np.uint32)
    bit = (states[:, 0] >> 31).astype(bool)
    p = np.where(bit, 0.04, 0.01) if effect else np.full(n, 0.025)
    header = np.arange(n) // 1000
    return Dataset(states={5: states}, labels=rng.random(n) < p, header=header, test=header % 2 == 1)


def test_planted_signal_is_detected_and_its_absence_is_not():
    config = SweepConfig(rounds=(5,), seed=0)
    planted = evaluate(_planted(0), config, ["base-rate", "logistic"])
    logistic = planted.rounds[0].predictors[1]
    assert logistic.auc.low > 0.5 and logistic.auc_p_holm < 0.01
    at_half = logistic.points[0]
    assert at_half.abort_fraction == 0.5 and at_half.recall > 0.6 and at_half.p_holm < 0.01
    assert "SIGNAL" in tpf.verdict(planted)
    null = evaluate(_planted(0, effect=False), config, ["base-rate", "logistic"])
    assert null.rounds[0].predictors[1].auc.covers(0.5)
    assert tpf.verdict(null).startswith("no predictor beats the base rate")


def test_pure_sha256_is_not_predicted_but_the_positive_control_is():
    data = sweep(SMALL)
    result = evaluate(data, SMALL, ["base-rate", "logistic", "hgb"], train_negatives=4000, workers=2)
    early, control = result.rounds
    assert result.test_positives > 300
    for pr in early.predictors:
        assert pr.auc.covers(0.5), (pr.name, pr.auc)
        if pr.name != "base-rate":
            assert pr.auc_p_holm > 0.05
    base = early.predictors[0]
    assert base.auc.auc == 0.5
    assert control.label_determined and not early.label_determined
    assert all(pr.auc.low > 0.9 for pr in control.predictors if pr.name != "base-rate")
    text = tpf.verdict(result)
    assert text.startswith("no predictor beats the base rate in rounds 5;")
    assert "1-5/64" in text and "positive control" in text and "detected, so" in text


def test_energy_formula_paper_oracle_and_random_abort():
    assert paper_saving(5) == pytest.approx(0.921875)   # the paper's 92.19%
    assert paper_saving(70) is None
    # E_rel = ((1-s) + s k/R + c/R) / recall
    assert energy_relative(0.9, 0.5, 5, 3.0) == pytest.approx((0.1 + 0.9 * 5 / 128 + 3 / 128) / 0.5)
    assert energy_relative(0.9, 0.0, 5) == math.inf
    p = 2.0 ** -8
    assert oracle_energy(5, p) == pytest.approx(p + (1 - p) * 5 / 128)
    assert 1 - oracle_energy(5, 0.0) == pytest.approx(1 - 5 / 128)
    assert random_abort_energy(0, 0.7) == pytest.approx(1.0)   # fewer hashes, as many fewer shares
    assert random_abort_energy(5, 0.9) > 1.0                     # and the k rounds are wasted


def test_measured_energy_sits_beside_the_paper_figure():
    result = evaluate(_planted(2, n=20000, effect=False), SweepConfig(rounds=(5,), seed=0),
                      ["base-rate"], abort_fractions=(0.5, 0.9))
    report = tpf.result_json(result)
    row = report["rounds"][0]
    assert row["paper_formula_saving"] == pytest.approx(0.921875)
    base = row["predictors"][0]
    # the base-rate predictor aborts at random: E_rel close to the random-abort reference
    assert base["e_rel_at_abort"] == pytest.approx(row["random_abort_e_rel"], rel=0.5)
    assert base["e_rel_at_abort"] > 1 - row["paper_formula_saving"]


def test_predictor_costs_are_counted():
    data = _planted(4, n=6000)
    config = SweepConfig(rounds=(5,), seed=0)
    result = evaluate(data, config, list(tpf.PREDICTORS), train_negatives=2000)
    cost = {pr.name: pr.cost_rounds for pr in result.rounds[0].predictors}
    assert cost["base-rate"] == 0
    assert cost["logistic"] == pytest.approx(tpf.N_FEATURES / tpf.OPS_PER_ROUND)
    assert cost["mlp"] > cost["logistic"] > 0 and cost["hgb"] > 0


def test_features_shape_bits_and_weights():
    states = np.zeros((2, 8), dtype=np.uint32)
    states[1, 0] = 0x80000001
    states[1, 7] = 0xFFFFFFFF
    x = features(states)
    assert x.shape == (2, tpf.N_FEATURES)
    assert x[0].sum() == 8 * 32   # all zero words: every leading-zero count is 32
    assert x[1, 0] == 1 and x[1, 31] == 1 and x[1, 1:31].sum() == 0 and x[1, 224:256].sum() == 32
    assert x[1, 256] == 2 and x[1, 263] == 32 and x[1, 264] == 34
    assert x[1, 265] == 0 and x[1, 272] == 0 and x[1, 266] == 32


def test_popcount_fallback_for_older_numpy(monkeypatch):
    words = np.array([[0, 1, 0xFFFFFFFF, 0x80000001, 7, 0x10, 0xF0F0F0F0, 3]], dtype=np.uint32)
    expected = features(words)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert np.array_equal(features(words), expected)
    assert expected[0, 256:264].tolist() == [0, 1, 32, 2, 3, 1, 16, 2]


def test_scheduler_without_dask_or_on_a_local_cluster():
    config = SweepConfig(rounds=(5,), difficulty_bits=3, hashes=1024, nonces_per_header=256,
                         headers_per_chunk=2, seed=5)
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        with pytest.raises(TpfError, match="dask"):
            sweep(config, scheduler="tcp://127.0.0.1:8786")
        return
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", scheduler_port=0,
                      dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert sweep(config, scheduler=cluster.scheduler_address).equals(sweep(config))


def test_cli_json_report(capsys):
    code, out, err = main_here(capsys, "tpf", "--rounds", "5", "--difficulty-bits", "4",
                               "--hashes", "16384", "--nonces-per-header", "1024", "--workers", "1",
                               "--json", "--predictors", "base-rate", "logistic",
                               "--train-negatives", "2000", "--abort-fractions", "0.25", "0.75",
                               "--abort", "0.75")
    assert code == 0
    report = json.loads(out)
    row = report["rounds"][0]
    assert row["round"] == 5 and row["compression"] == 1
    pred = row["predictors"][1]
    assert pred["name"] == "logistic" and len(pred["auc_ci95"]) == 2
    assert {"p_value", "p_holm", "recall_at_abort", "e_rel_at_abort"} <= pred.keys()
    assert [op["abort_fraction"] for op in pred["operating_points"]] == pytest.approx([0.25, 0.75], abs=1e-3)
    assert report["abort_fraction"] == 0.75
    assert report["exact_early_reject_saving"] == pytest.approx(3 / 128)
    assert report["power"]["positives_needed_auc_0.55"] == 207
    assert report["test_positives"] > 100
    assert "oracle limit" in report["verdict"]
    assert err == ""   # no progress bar when stderr is not a terminal


def test_cli_table_and_bad_input(capsys):
    code, out, _ = main_here(capsys, "tpf", "--rounds", "5", "--difficulty-bits", "4",
                             "--hashes", "8192", "--nonces-per-header", "1024", "--workers", "0",
                             "--quiet", "--predictors", "base-rate", "--train-negatives", "1000")
    assert code == 0 and "verdict:" in out and "base-rate" in out
    code, _, err = main_here(capsys, "tpf", "--difficulty-bits", "0", "--quiet")
    assert code == 2 and "difficulty bits" in err
    code, _, err = main_here(capsys, "tpf", "--abort-fractions", "0.5", "1.0", "--quiet")
    assert code == 2 and "abort fractions" in err
    code, _, err = main_here(capsys, "tpf", "--difficulty-bits", "30", "--hashes", "1024",
                             "--rounds", "5", "--workers", "0", "--quiet")
    assert code == 2 and "too few shares" in err


def test_in_sample_auc_flatters_a_flexible_predictor():
    data = sweep(SweepConfig(rounds=(5,), difficulty_bits=4, hashes=1 << 14, nonces_per_header=1024,
                             headers_per_chunk=4, seed=9))
    result = evaluate(data, SweepConfig(rounds=(5,), seed=9), ["base-rate", "hgb"],
                      train_negatives=3000)
    hgb = result.rounds[0].predictors[1]
    # Scored on its own training rows the model looks like a filter; on unseen headers it is not.
    assert hgb.in_sample_auc > 0.7 and hgb.in_sample_auc - hgb.auc.auc > 0.2
    assert result.rounds[0].predictors[0].in_sample_auc == 0.5


def test_several_rounds_get_one_verdict(capsys):
    code, out, _ = main_here(capsys, "tpf", "--rounds", "3", "4", "--difficulty-bits", "4",
                             "--hashes", "8192", "--nonces-per-header", "1024", "--workers", "0",
                             "--quiet", "--json", "--predictors", "base-rate", "logistic",
                             "--train-negatives", "1000")
    report = json.loads(out)
    assert code == 0 and [r["round"] for r in report["rounds"]] == [3, 4]
    assert report["verdict"].startswith("no predictor beats the base rate in rounds 3, 4")
