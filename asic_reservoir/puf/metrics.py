"""PUF / fingerprint metrics with their uncertainty.

Continuous fingerprints are compared by a scaled distance; the standard biometric figures
(FAR/FRR, EER, decidability d', rank-1 accuracy) follow from the genuine and impostor
distance distributions. Binarised fingerprints get the Maiti-Gunreddy-Schaumont (2013)
figures: uniqueness, reliability, uniformity, bit-aliasing. Intervals are bootstrap over
devices (EER) or Wilson (proportions): with a fleet of 20 units the spread is the story.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from asic_reservoir.blas import single_blas_thread


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return asdict(self)


def feature_scale(enrollments: np.ndarray, floor: float = 1e-9) -> np.ndarray:
    """Per-feature spread across enrolled devices (MAD x 1.4826, robust to one odd unit).

    Distances are measured in units of between-device spread so that no single feature
    (watts vs. degrees) dominates just by its unit.
    """
    x = np.asarray(enrollments, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2:
        return np.ones(x.shape[-1])
    mad = 1.4826 * np.median(np.abs(x - np.median(x, axis=0)), axis=0)
    std = x.std(axis=0)
    scale = np.where(mad > floor, mad, std)
    return np.where(scale > floor, scale, 1.0)


def resolution(samples: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """Per feature (column), the smallest positive gap between distinct observed values.

    For a feature read on a grid (sensor steps, sample period) this estimates the grid
    step, whose rounding error is uniform with standard deviation step / sqrt(12). For
    a continuous feature the gap is no larger than its smallest within-unit difference,
    so a floor built on it never binds. Zero where a column holds a single value.
    """
    x = np.sort(np.atleast_2d(np.asarray(samples, dtype=float)), axis=0)
    gaps = np.diff(x, axis=0)
    magnitude = np.max(np.abs(x), axis=0) if len(x) else np.zeros(x.shape[1])
    gaps = np.where(gaps > rtol * np.maximum(magnitude, 1e-300), gaps, np.inf)
    step = gaps.min(axis=0, initial=np.inf)
    return np.where(np.isfinite(step), step, 0.0)


@dataclass(frozen=True)
class FingerprintSpace:
    """Which features to compare and in what units, learned from enrollment reads only.

    With two or more enrollment reads per unit, each feature is measured in units of its
    pooled *within-unit* spread (never below the rounding error of the grid it is read
    on, :func:`resolution`) and kept only when devices differ by more than a unit
    differs from itself (Fisher ratio > ``min_ratio``); with one read per unit, features
    are scaled by the between-device spread (:func:`feature_scale`) and all are kept.
    """

    scale: np.ndarray
    keep: np.ndarray

    @classmethod
    def fit(cls, groups: list[np.ndarray], min_ratio: float = 1.0) -> "FingerprintSpace":
        groups = [np.atleast_2d(np.asarray(g, dtype=float)) for g in groups]
        refs = np.array([g.mean(axis=0) for g in groups])
        between = feature_scale(refs)
        repeated = [g for g in groups if len(g) >= 2]
        if not repeated:
            return cls(between, np.ones(refs.shape[1], dtype=bool))
        dev = np.concatenate([g - g.mean(axis=0) for g in repeated])
        dof = sum(len(g) - 1 for g in repeated)
        within = np.sqrt(np.sum(dev ** 2, axis=0) / dof)
        # A quantised feature (a time constant on the telemetry grid, an integer sensor)
        # can repeat exactly across a unit's few enrollment reads; its noise is then at
        # least the rounding error of its grid, not zero.
        within = np.maximum(within, resolution(np.concatenate(groups)) / math.sqrt(12))
        within = np.maximum(within, 1e-6 * np.maximum(between, 1e-12))
        spread = refs.std(axis=0, ddof=1) if len(refs) > 1 else between
        keep = spread / within > min_ratio
        if not keep.any():  # nothing separates devices: keep all, the metrics will say so
            keep[:] = True
        return cls(within, keep)

    def distances(self, reads: np.ndarray, references: np.ndarray) -> np.ndarray:
        k = self.keep
        return distances(np.asarray(reads)[:, k], np.asarray(references)[:, k], self.scale[k])


def distances(reads: np.ndarray, references: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """RMS scaled distance between every read (rows) and every reference (columns)."""
    a = np.asarray(reads, dtype=float) / scale
    b = np.asarray(references, dtype=float) / scale
    diff = a[:, None, :] - b[None, :, :]
    return np.sqrt(np.mean(diff ** 2, axis=-1))


def wilson(successes: int, n: int, z: float = 1.96) -> Interval:
    """Wilson score interval for a proportion (sound at 0 and n, unlike the normal one)."""
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def far_frr(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    """False-accept and false-reject rates when accepting distances <= threshold."""
    far = float(np.mean(np.asarray(impostor) <= threshold)) if len(impostor) else float("nan")
    frr = float(np.mean(np.asarray(genuine) > threshold)) if len(genuine) else float("nan")
    return far, frr


def equal_error_rate(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """EER and its threshold, scanning every observed distance as a threshold."""
    genuine = np.sort(np.asarray(genuine, dtype=float))
    impostor = np.sort(np.asarray(impostor, dtype=float))
    thresholds = np.concatenate([[-np.inf], genuine, impostor])
    far = np.searchsorted(impostor, thresholds, side="right") / len(impostor)
    frr = 1 - np.searchsorted(genuine, thresholds, side="right") / len(genuine)
    i = int(np.argmin(np.abs(far - frr)))
    # With a gap between the distributions any threshold in the gap gives 0/0.
    return float((far[i] + frr[i]) / 2), float(thresholds[i])


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """Largest distance threshold whose false-accept rate stays <= ``far``."""
    imp = np.sort(np.asarray(impostor, dtype=float))
    if len(imp) == 0:
        raise ValueError("no impostor distances: enroll at least two units first")
    k = int(math.floor(far * len(imp)))  # number of impostors allowed below threshold
    if k <= 0:
        return float(np.nextafter(imp[0], -np.inf))
    return float(np.nextafter(imp[k], -np.inf)) if k < len(imp) else float(imp[-1])


def reference_impostor_distances(references: np.ndarray, space: FingerprintSpace) -> np.ndarray:
    """Distances between distinct enrolled references: what ``verify`` sets its threshold on."""
    d = space.distances(references, references)
    return d[np.triu_indices(len(references), k=1)]


@dataclass(frozen=True)
class VerifyRates:
    """The verify rule (threshold for ``far_target`` on reference-to-reference distances)
    tested on reads not used to set it: achieved FAR over impostor claims and FRR over
    genuine claims, each with the wider of a bootstrap over devices (reads of one device
    are a cluster: they share its enrollment and its quirks) and a Wilson interval."""

    far_target: float
    threshold: float
    far: Interval
    frr: Interval
    genuine_claims: int
    impostor_claims: int

    def as_dict(self) -> dict:
        return asdict(self)


def verify_rates(references: np.ndarray, space: FingerprintSpace, reads: np.ndarray,
                 owner: np.ndarray, far_target: float = 0.01, n_boot: int = 400,
                 seed: int = 0) -> VerifyRates:
    """Every held-out read claims every enrolled identity once; see :class:`VerifyRates`."""
    references = np.asarray(references, dtype=float)
    owner = np.asarray(owner, dtype=int)
    n_dev = len(references)
    threshold = threshold_at_far(reference_impostor_distances(references, space), far_target)
    accept = space.distances(np.asarray(reads, dtype=float), references) <= threshold
    own = owner[:, None] == np.arange(n_dev)[None, :]
    false_accepts, false_rejects = int(accept[~own].sum()), int((~accept[own]).sum())
    far_boot, frr_boot = [], []
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        devs = rng.integers(0, n_dev, n_dev)
        rows = np.concatenate([np.flatnonzero(owner == d) for d in devs])
        if len(rows) == 0:
            continue
        sub = accept[np.ix_(rows, devs)]
        mine = owner[rows][:, None] == devs[None, :]
        if mine.all() or not mine.any():
            continue
        far_boot.append(sub[~mine].mean())
        frr_boot.append(1.0 - sub[mine].mean())

    def rate(errors: int, n: int, boot: list[float]) -> Interval:
        counted = wilson(errors, n)
        if not boot:
            return counted
        low, high = np.percentile(boot, [2.5, 97.5])
        return Interval(counted.value, float(min(low, counted.low)),
                        float(max(high, counted.high)))

    return VerifyRates(far_target, threshold,
                       rate(false_accepts, int((~own).sum()), far_boot),
                       rate(false_rejects, int(own.sum()), frr_boot),
                       genuine_claims=int(own.sum()), impostor_claims=int((~own).sum()))


def decidability(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """d' = |mu_impostor - mu_genuine| / sqrt((s_i^2 + s_g^2) / 2)."""
    g, i = np.asarray(genuine, dtype=float), np.asarray(impostor, dtype=float)
    pooled = math.sqrt((g.var(ddof=1) + i.var(ddof=1)) / 2) if len(g) > 1 and len(i) > 1 else 0.0
    return float("inf") if pooled == 0 else abs(i.mean() - g.mean()) / pooled


def binarise(responses: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """One bit per feature: above the enrolled fleet's median or not."""
    return (np.asarray(responses, dtype=float) > medians).astype(np.uint8)


@dataclass(frozen=True)
class BitMetrics:
    """Maiti et al. (2013) figures in percent (ideal: 50, 100, 50, 50)."""

    uniqueness: float
    reliability: float
    uniformity: float
    bit_aliasing_mean: float
    bit_aliasing_min: float
    bit_aliasing_max: float
    n_bits: int


def bit_metrics(reference_bits: np.ndarray, reread_bits: np.ndarray,
                reread_owner: np.ndarray) -> BitMetrics:
    """``reference_bits`` (devices x bits), ``reread_bits`` (reads x bits) with owner index."""
    ref = np.asarray(reference_bits, dtype=float)
    n_dev, n_bits = ref.shape
    pairs = [np.mean(ref[i] != ref[j]) for i in range(n_dev) for j in range(i + 1, n_dev)]
    intra = np.mean(np.asarray(reread_bits) != ref[np.asarray(reread_owner)], axis=1)
    aliasing = 100 * ref.mean(axis=0)
    return BitMetrics(
        uniqueness=100 * float(np.mean(pairs)) if pairs else float("nan"),
        reliability=100 * (1 - float(np.mean(intra))) if len(intra) else float("nan"),
        uniformity=100 * float(ref.mean()),
        bit_aliasing_mean=float(aliasing.mean()),
        bit_aliasing_min=float(aliasing.min()),
        bit_aliasing_max=float(aliasing.max()),
        n_bits=n_bits,
    )


@dataclass(frozen=True)
class FleetMetrics:
    """Everything `puf evaluate` reports, each rate with its 95% interval.

    EER's interval is the wider of a bootstrap over devices and a Wilson interval on the
    genuine comparisons, so a fleet without a single error still reports how few
    comparisons that rests on.
    """

    devices: int
    reads: int
    rank1_accuracy: Interval
    eer: Interval
    eer_threshold: float
    far_at_threshold: Interval
    frr_at_threshold: Interval
    decidability: float
    genuine_mean: float
    genuine_std: float
    impostor_mean: float
    impostor_std: float
    bits: BitMetrics
    verify: VerifyRates

    def as_dict(self) -> dict:
        return asdict(self)


@single_blas_thread
def evaluate_fleet(enrolled: np.ndarray | list[np.ndarray], reads: np.ndarray,
                   owner: np.ndarray, n_boot: int = 400, seed: int = 0,
                   verify_far: float = 0.01) -> FleetMetrics:
    """Metrics for ``reads`` (rows, owner[i] = enrolled device) against the enrollments.

    ``enrolled`` is one row per device, or a list with a (reads x features) array per
    device. Test reads must not be enrollment reads; EER's interval is a bootstrap over
    devices, since reads of one device are not independent of each other. ``verify``
    tests the verify rule at ``verify_far`` on those reads (:func:`verify_rates`).
    """
    groups = [np.atleast_2d(np.asarray(g, dtype=float)) for g in enrolled]
    space = FingerprintSpace.fit(groups)
    enrolled = np.array([g.mean(axis=0) for g in groups])
    reads = np.asarray(reads, dtype=float)
    owner = np.asarray(owner, dtype=int)
    n_dev = enrolled.shape[0]
    if n_dev < 2:
        raise ValueError("a fleet needs at least two devices")
    dist = space.distances(reads, enrolled)
    is_own = owner[:, None] == np.arange(n_dev)[None, :]
    genuine, impostor = dist[is_own], dist[~is_own]
    rank1 = wilson(int(np.sum(np.argmin(dist, axis=1) == owner)), len(owner))
    eer, threshold = equal_error_rate(genuine, impostor)
    far, frr = far_frr(genuine, impostor, threshold)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        devs = rng.integers(0, n_dev, n_dev)
        rows = np.concatenate([np.flatnonzero(owner == d) for d in devs])
        if len(rows) == 0:
            continue
        sub = dist[np.ix_(rows, devs)]
        own = owner[rows][:, None] == devs[None, :]
        if own.all() or not own.any():
            continue
        boot.append(equal_error_rate(sub[own], sub[~own])[0])
    low, high = (np.percentile(boot, [2.5, 97.5]) if boot else (float("nan"), float("nan")))
    # A bootstrap of zero errors is zero every time; never claim more certainty than a
    # binomial count on the genuine comparisons (the smaller sample) allows.
    counted = wilson(int(round(eer * len(genuine))), len(genuine))
    low, high = min(low, counted.low), max(high, counted.high)
    verify = verify_rates(enrolled, space, reads, owner, verify_far, n_boot, seed)
    enrolled, reads = enrolled[:, space.keep], reads[:, space.keep]
    medians = np.median(enrolled, axis=0)
    bits = bit_metrics(binarise(enrolled, medians), binarise(reads, medians), owner)
    return FleetMetrics(
        devices=n_dev, reads=len(owner), rank1_accuracy=rank1,
        eer=Interval(eer, float(low), float(high)), eer_threshold=threshold,
        far_at_threshold=wilson(int(round(far * len(impostor))), len(impostor)),
        frr_at_threshold=wilson(int(round(frr * len(genuine))), len(genuine)),
        decidability=decidability(genuine, impostor),
        genuine_mean=float(genuine.mean()), genuine_std=float(genuine.std()),
        impostor_mean=float(impostor.mean()), impostor_std=float(impostor.std()),
        bits=bits, verify=verify,
    )
