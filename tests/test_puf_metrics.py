"""PUF metrics on synthetic fleets whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asic_reservoir.puf import metrics as pm


def synthetic_fleet(n_dev: int, n_feat: int, reads: int, between: float, within: float, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, between, (n_dev, n_feat))
    enrolled = truth + rng.normal(0, within, truth.shape)
    owner = np.repeat(np.arange(n_dev), reads)
    rereads = truth[owner] + rng.normal(0, within, (len(owner), n_feat))
    return enrolled, rereads, owner


def test_separable_fleet_is_perfect():
    enrolled, reads, owner = synthetic_fleet(20, 16, 5, between=1.0, within=0.01)
    m = pm.evaluate_fleet(enrolled, reads, owner, n_boot=100)
    assert m.rank1_accuracy.value == 1.0
    # no errors at all, yet 100 genuine comparisons cannot bound the EER below ~4 %
    assert m.eer.value == 0.0 and 0.02 < m.eer.high < 0.05
    assert m.decidability > 5
    assert m.bits.reliability > 95
    assert 35 < m.bits.uniqueness < 65


def test_indistinguishable_fleet_is_chance():
    enrolled, reads, owner = synthetic_fleet(20, 16, 5, between=0.0, within=1.0)
    m = pm.evaluate_fleet(enrolled, reads, owner, n_boot=100)
    assert m.rank1_accuracy.low < 1 / 20 + 0.1
    assert m.eer.value > 0.3
    assert m.eer.low < 0.5 < m.eer.high or abs(m.eer.value - 0.5) < 0.15
    assert m.decidability < 1.0


def test_eer_exact_on_known_distributions():
    genuine = np.array([0.1, 0.2, 0.3, 0.9])
    impostor = np.array([0.25, 1.0, 1.1, 1.2])
    eer, thr = pm.equal_error_rate(genuine, impostor)
    # Threshold 0.3: FAR 1/4, FRR 1/4.
    assert eer == pytest.approx(0.25)
    assert pm.far_frr(genuine, impostor, thr) == (0.25, 0.25)


def test_threshold_at_far_respects_the_rate():
    impostor = np.linspace(1, 2, 101)
    for far in (0.0, 0.01, 0.1, 0.5):
        thr = pm.threshold_at_far(impostor, far)
        assert np.mean(impostor <= thr) <= far
    with pytest.raises(ValueError):
        pm.threshold_at_far(np.array([]), 0.1)


def test_bit_metrics_known_values():
    ref = np.array([[0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]], dtype=np.uint8)
    reread = np.array([[0, 0, 1, 1], [0, 1, 0, 0]], dtype=np.uint8)
    m = pm.bit_metrics(ref, reread, np.array([0, 1]))
    # pairwise HD: (0,1)=2/4, (0,2)=2/4, (1,2)=2/4 -> 50%
    assert m.uniqueness == pytest.approx(50.0)
    # intra: 0 and 1/4 -> mean 12.5% -> reliability 87.5%
    assert m.reliability == pytest.approx(87.5)
    assert m.uniformity == pytest.approx(100 * 8 / 12)
    assert m.bit_aliasing_min == pytest.approx(100 / 3)
    assert m.bit_aliasing_max == pytest.approx(100.0)


def test_wilson_interval_bounds():
    iv = pm.wilson(20, 20)
    assert iv.value == 1.0 and iv.high == 1.0 and 0.8 < iv.low < 0.9
    iv = pm.wilson(0, 10)
    assert iv.low == 0.0 and iv.high > 0.2


def test_scale_makes_units_irrelevant():
    enrolled, reads, owner = synthetic_fleet(10, 4, 3, between=1.0, within=0.2, seed=3)
    scaled = np.array([1, 1000, 0.001, 50.0])
    a = pm.evaluate_fleet(enrolled, reads, owner, n_boot=50)
    b = pm.evaluate_fleet(enrolled * scaled, reads * scaled, owner, n_boot=50)
    assert a.rank1_accuracy == b.rank1_accuracy
    assert a.eer.value == pytest.approx(b.eer.value)


def test_fingerprint_space_drops_noise_features_with_repeated_enrollment():
    rng = np.random.default_rng(5)
    n_dev = 12
    truth = np.column_stack([rng.normal(0, 1, n_dev), np.zeros(n_dev)])  # feature 1: no identity
    groups = [t + rng.normal(0, [0.05, 1.0], (2, 2)) for t in truth]
    space = pm.FingerprintSpace.fit(groups)
    assert space.keep.tolist() == [True, False]
    owner = np.repeat(np.arange(n_dev), 3)
    reads = truth[owner] + rng.normal(0, [0.05, 1.0], (len(owner), 2))
    with_space = pm.evaluate_fleet(groups, reads, owner, n_boot=50)
    naive = pm.evaluate_fleet([g[:1] for g in groups], reads, owner, n_boot=50)
    assert with_space.rank1_accuracy.value > naive.rank1_accuracy.value


def test_resolution_is_the_grid_step_of_a_quantised_feature():
    x = np.array([[17.5, 0.31, 4.0], [17.5, 0.27, 4.0], [20.0, 0.9, 4.0], [25.0, 0.5, 4.0]])
    assert pm.resolution(x).tolist() == pytest.approx([2.5, 0.04, 0.0])
    assert pm.resolution(x[:, :1] + 1e-13).tolist() == pytest.approx([2.5])  # float noise


def test_a_quantised_feature_repeating_in_enrollment_does_not_dominate():
    # Seen in a simulated fleet: a step-response time constant on the 2.5 s telemetry grid
    # read 17.5, 17.5 / 17.5, 17.5 / 20, 20 in enrollment; its pooled within-unit spread was
    # zero, and one grid step on a test read outweighed every other feature a million-fold.
    rng = np.random.default_rng(11)
    n_dev, n_feat = 6, 12
    truth = rng.normal(0, 1.0, (n_dev, n_feat))
    tau = np.array([17.5, 17.5, 20.0, 22.5, 20.0, 17.5])
    groups = [np.column_stack([t + rng.normal(0, 0.05, (2, n_feat)), [c, c]])
              for t, c in zip(truth, tau)]
    owner = np.arange(n_dev)
    flipped = tau + np.where(owner % 2, 2.5, -2.5)          # every read one grid step off
    reads = np.column_stack([truth + rng.normal(0, 0.05, truth.shape), flipped])
    m = pm.evaluate_fleet(groups, reads, owner, n_boot=50)
    assert m.rank1_accuracy.value == 1.0
    assert m.genuine_mean < m.impostor_mean / 2
    space = pm.FingerprintSpace.fit(groups)
    assert space.scale[-1] == pytest.approx(2.5 / np.sqrt(12))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_resolution_floor_never_binds_on_continuous_features(seed):
    rng = np.random.default_rng(seed)
    groups = [rng.normal(rng.normal(0, 1, 5), rng.uniform(0.01, 1, 5), (int(k), 5))
              for k in rng.integers(2, 4, 4)]
    dev = np.concatenate([g - g.mean(axis=0) for g in groups])
    pooled = np.sqrt(np.sum(dev ** 2, axis=0) / sum(len(g) - 1 for g in groups))
    assert np.allclose(pm.FingerprintSpace.fit(groups).scale, pooled, rtol=1e-12)


def test_verify_rule_is_tested_on_held_out_reads():
    # Separable: no false rejects (the interval still says how few claims that rests on),
    # and false accepts at about the target, the threshold sits at 1 % of the impostors.
    enrolled, reads, owner = synthetic_fleet(20, 16, 5, between=1.0, within=0.01)
    v = pm.evaluate_fleet(enrolled, reads, owner, n_boot=100).verify
    assert v.frr.value == 0.0 and 0 < v.frr.high < 0.05
    assert v.genuine_claims == 100 and v.impostor_claims == 1900
    assert v.far.value <= 0.02 and v.far.low <= v.far.value < v.far.high
    # Enrollment reads quieter than the re-reads: the threshold set on enrolled references
    # looks fine and fails on fresh reads (what the old, untested threshold hid).
    rng = np.random.default_rng(4)
    truth = rng.normal(0, 1.0, (20, 16))
    owner = np.repeat(np.arange(20), 5)
    enrolled = truth + rng.normal(0, 0.01, truth.shape)
    fresh = truth[owner] + rng.normal(0, 0.6, (100, 16))
    v = pm.evaluate_fleet(enrolled, fresh, owner, n_boot=100, verify_far=0.01).verify
    space = pm.FingerprintSpace.fit([g[None, :] for g in enrolled])
    threshold = pm.threshold_at_far(pm.reference_impostor_distances(enrolled, space), 0.01)
    d = space.distances(fresh, enrolled)
    own = owner[:, None] == np.arange(20)
    assert v.threshold == threshold
    assert v.frr.value == pytest.approx(np.mean(d[own] > threshold)) and v.frr.value > 0.1
    assert v.far.value == pytest.approx(np.mean(d[~own] <= threshold))
    assert v.frr.low <= v.frr.value <= v.frr.high


def test_verify_intervals_treat_a_devices_reads_as_a_cluster():
    """All five false rejects come from one device: 5 of 100 claims, but one of 20 devices.
    A Wilson interval on 100 claims is too narrow; the device bootstrap is not."""
    enrolled, reads, owner = synthetic_fleet(20, 16, 5, between=1.0, within=0.01, seed=2)
    reads[owner == 0] += 3.0                  # device 0 drifted after enrollment
    v = pm.evaluate_fleet(enrolled, reads, owner, n_boot=400).verify
    assert v.frr.value == pytest.approx(0.05)
    assert v.frr.high > pm.wilson(5, 100).high + 0.02
