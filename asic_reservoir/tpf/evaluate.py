"""Can early SHA-256 rounds predict a share? A held-out test of the "probability filter".

The published filter claims 92.19% energy savings by aborting hashes after 5 of 64
rounds. That number is ``1 - 5/64``: the saving if *every* hash were aborted, which an
oracle that knew the outcome would approach. This module measures the real thing on
fresh work: round states of genuine SHA-256d over random headers (``asic_reservoir.tpf.rounds``),
labels from the full double hash, predictors trained on some headers and tested on
others never seen, AUC with header-clustered DeLong intervals, exact binomial tests of recall against
random aborting, Holm correction, a power statement, and energy per valid share.

Energy model (documented estimate): a nonce costs ``R = 128`` rounds (two compressions;
the header midstate is amortised over the nonce range). Aborting after ``k`` rounds costs
``k/R`` of a hash, continuing costs 1, and every nonce also pays the predictor, counted
in SHA-256-round equivalents (:func:`predictor_cost_rounds`).
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from asic_reservoir.blas import blas_threads
from asic_reservoir.tpf.rounds import ROUNDS, ROUNDS_PER_NONCE
from asic_reservoir.tpf.stats import (
    AucResult,
    clustered_auc,
    delong_auc,
    detectable_auc,
    holm,
    positives_needed,
    recall_test,
)
from asic_reservoir.tpf.sweep import (
    N_FEATURES,
    Dataset,
    SweepConfig,
    TpfError,
    features,
    tick,
)

PAPER_ROUNDS = 64
"""The paper counts rounds of one 64-round compression: its claim is ``1 - k/64``."""

OPS_PER_ROUND = 39
"""32-bit word operations in one SHA-256 round with its schedule word: Sigma0/Sigma1
(3 rotations + 2 xors each), Ch (3), Maj (4), 7 additions, sigma0/sigma1 (5 each) and
3 schedule additions. Used to convert a predictor's arithmetic into round equivalents."""

PREDICTORS = ("base-rate", "logistic", "hgb", "mlp")

EARLY_REJECT_ROUNDS = 3
"""Rounds of the second hash a miner may skip without prediction: the top hash word is
``e`` after round 61 plus IV[7], so a nonce failing it is rejected exactly, losing no share."""


def early_reject_saving() -> float:
    """Energy saved per nonce by the exact early reject (no prediction, recall 1)."""
    return EARLY_REJECT_ROUNDS / ROUNDS_PER_NONCE


# --------------------------------------------------------------------------- predictors

class BaseRatePredictor:
    """Scores every candidate with the training share rate: aborting on it is random."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "BaseRatePredictor":
        self.rate_ = float(np.mean(y))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = np.full(len(x), self.rate_)
        return np.column_stack([1 - p, p])


def make_predictor(name: str, seed: int = 0):
    """An unfitted scikit-learn style classifier by name (see :data:`PREDICTORS`)."""

    if name == "base-rate":
        return BaseRatePredictor()
    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    if name == "hgb":
        return HistGradientBoostingClassifier(max_iter=100, early_stopping=True, random_state=seed)
    if name == "mlp":
        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(32,), max_iter=60, early_stopping=True, random_state=seed))
    raise TpfError(f"unknown predictor {name!r}; expected one of {PREDICTORS}")


def predictor_cost_rounds(name: str, model, n_features: int = N_FEATURES) -> float:
    """Per-nonce arithmetic of a fitted predictor in SHA-256-round equivalents.

    A lower bound, which favours the filter: each multiply-accumulate or tree comparison
    counts as one 32-bit word operation (a real multiplier costs far more than an adder),
    divided by :data:`OPS_PER_ROUND`. Feature extraction is not counted.
    """
    if name == "base-rate":
        ops = 0.0
    elif name == "logistic":
        ops = n_features
    elif name == "mlp":
        mlp = model[-1]
        ops = sum(w.size + b.size for w, b in zip(mlp.coefs_, mlp.intercepts_))
    elif name == "hgb":
        depth = math.ceil(math.log2(model.max_leaf_nodes or 31))
        ops = model.n_iter_ * depth
    else:
        raise TpfError(f"unknown predictor {name!r}")
    return ops / OPS_PER_ROUND


# --------------------------------------------------------------------------- energy

def energy_relative(abort_fraction: float, recall: float, k: int, cost_rounds: float = 0.0,
                    rounds_per_hash: int = ROUNDS_PER_NONCE) -> float:
    """Energy per valid share relative to hashing everything to the end.

    ``E_rel = ((1 - s) + s k/R + c/R) / recall``: continued nonces cost a full hash,
    aborted ones ``k/R``, every nonce pays the predictor ``c`` rounds.
    """
    if recall <= 0:
        return math.inf
    cost = (1 - abort_fraction) + abort_fraction * k / rounds_per_hash + cost_rounds / rounds_per_hash
    return cost / recall


def paper_saving(k: int) -> float | None:
    """The paper's formula ``1 - k/64`` (for k within the first compression)."""
    return 1 - k / PAPER_ROUNDS if k <= PAPER_ROUNDS else None


def oracle_energy(k: int, base_rate: float) -> float:
    """E_rel of a perfect predictor: abort every non-share after ``k`` rounds."""
    return energy_relative(1 - base_rate, 1.0, k)


def random_abort_energy(k: int, abort_fraction: float) -> float:
    """E_rel when a fraction is aborted at random after ``k`` rounds (recall = 1 - s).

    Aborting at random *before* hashing (k = 0) gives exactly 1: fewer hashes, as many
    fewer shares.
    """
    return energy_relative(abort_fraction, 1 - abort_fraction, k)


# --------------------------------------------------------------------------- evaluation

@dataclass
class OperatingPoint:
    abort_fraction: float
    recall: float
    recalled: int
    lift: float
    p_value: float
    e_rel: float
    random_abort_e_rel: float
    p_holm: float = float("nan")


@dataclass
class PredictorResult:
    """Held-out AUC and operating points; ``in_sample_auc`` scores the predictor on the
    very rows it was fitted to -- the paper's kind of test, shown for contrast."""

    name: str
    auc: AucResult
    cost_rounds: float
    points: list[OperatingPoint]
    in_sample_auc: float
    auc_p_holm: float = float("nan")


@dataclass
class RoundResult:
    round: int
    predictors: list[PredictorResult]
    oracle_e_rel: float
    paper_saving: float | None

    @property
    def label_determined(self) -> bool:
        """True once the state holds ``e`` of round 61 of the second hash, which fixes the
        top 32 bits of the hash (the whole label for d <= 32, its main part beyond)."""
        return self.round >= ROUNDS + 61


@dataclass
class StudyResult:
    config: SweepConfig
    abort_fraction: float
    abort_fractions: tuple[float, ...]
    n_hashes: int
    n_train: int
    n_test: int
    train_positives: int
    test_positives: int
    base_rate: float
    rounds: list[RoundResult] = field(default_factory=list)


def operating_point(scores: np.ndarray, labels: np.ndarray, s: float, k: int,
                    cost_rounds: float, rng: np.random.Generator) -> OperatingPoint:
    """Abort the fraction ``s`` with the lowest scores (ties broken at random)."""
    n = len(scores)
    n_abort = int(math.floor(s * n))
    order = np.lexsort((rng.random(n), scores))
    kept = np.ones(n, dtype=bool)
    kept[order[:n_abort]] = False
    realised = n_abort / n
    positives = int(labels.sum())
    recalled = int(labels[kept].sum())
    recall = recalled / positives if positives else float("nan")
    return OperatingPoint(
        abort_fraction=realised, recall=recall, recalled=recalled,
        lift=recall / (1 - realised) if realised < 1 else float("nan"),
        p_value=recall_test(recalled, positives, realised),
        e_rel=energy_relative(realised, recall, k, cost_rounds),
        random_abort_e_rel=random_abort_energy(k, realised))


def _feature_batches(states: np.ndarray, batch: int = 32768) -> Iterator[np.ndarray]:
    for start in range(0, len(states), batch):
        yield features(states[start:start + batch])


def evaluate(data: Dataset, config: SweepConfig, predictors: Sequence[str] = PREDICTORS,
             abort_fractions: Sequence[float] = (0.5, 0.9, 0.99), abort_fraction: float = 0.9,
             train_negatives: int = 10000, workers: int = 0,
             on_round: Callable[[], None] | None = None) -> StudyResult:
    """Train on training headers, score the test headers, and test every claim.

    Rounds are evaluated independently (each with its own seed), in process or on a
    process pool of ``workers``; the result is the same either way.
    """
    if abort_fraction not in abort_fractions:
        abort_fractions = tuple(sorted(set(abort_fractions) | {abort_fraction}))
    if any(not 0 < s < 1 for s in abort_fractions):
        raise TpfError("abort fractions must lie in (0, 1)")
    for name in predictors:
        make_predictor(name)   # unknown names fail here, before any work
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1 << 20]))
    train = np.flatnonzero(~data.test)
    test = np.flatnonzero(data.test)
    y_train, y_test = data.labels[train], data.labels[test]
    if y_train.sum() < 2 or y_test.sum() < 2:
        raise TpfError(f"too few shares to evaluate (train {int(y_train.sum())}, test "
                       f"{int(y_test.sum())}): raise --hashes or lower --difficulty-bits")
    # All training shares plus a sample of non-shares: ranking is unaffected by the ratio.
    neg = train[~y_train]
    pick = np.sort(np.concatenate([train[y_train],
                                   rng.choice(neg, min(train_negatives, len(neg)), replace=False)]))
    result = StudyResult(config=config, abort_fraction=abort_fraction,
                         abort_fractions=tuple(abort_fractions), n_hashes=data.n,
                         n_train=len(train), n_test=len(test),
                         train_positives=int(y_train.sum()), test_positives=int(y_test.sum()),
                         base_rate=float(data.labels.mean()))
    tasks = [_RoundTask(k, data.states[k][pick], data.labels[pick], data.states[k][test], y_test,
                        data.header[test], tuple(predictors), tuple(abort_fractions),
                        config.seed, result.base_rate)
             for k in config.rounds]
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            rounds = list(tick(pool.map(_evaluate_round, tasks), on_round))
    else:
        rounds = list(tick(map(_evaluate_round, tasks), on_round))
    result.rounds.extend(rounds)
    _correct(result)
    return result


@dataclass(frozen=True)
class _RoundTask:
    round: int
    fit_states: np.ndarray
    fit_labels: np.ndarray
    test_states: np.ndarray
    test_labels: np.ndarray
    test_headers: np.ndarray
    predictors: tuple[str, ...]
    abort_fractions: tuple[float, ...]
    seed: int
    base_rate: float


def _evaluate_round(task: _RoundTask) -> RoundResult:
    """Fit every predictor on one round's states and score the unseen headers."""

    k = task.round
    rng = np.random.default_rng(np.random.SeedSequence([task.seed, 1 << 21, k]))
    # One BLAS/OpenMP thread: on shared cores, oversubscribed sklearn runs ~10x slower.
    with blas_threads():
        x_fit = features(task.fit_states)
        fitted = [(name, make_predictor(name, task.seed).fit(x_fit, task.fit_labels))
                  for name in task.predictors]
        in_sample = [delong_auc(model.predict_proba(x_fit)[:, 1], task.fit_labels).auc
                     for _, model in fitted]
        scores = np.zeros((len(fitted), len(task.test_labels)))
        start = 0
        for x in _feature_batches(task.test_states):
            for i, (_, model) in enumerate(fitted):
                scores[i, start:start + len(x)] = model.predict_proba(x)[:, 1]
            start += len(x)
    rows = []
    for i, (name, model) in enumerate(fitted):
        cost = predictor_cost_rounds(name, model)
        points = [operating_point(scores[i], task.test_labels, s, k, cost, rng)
                  for s in task.abort_fractions]
        # Nonces of one header share its early state: the header is the unit of the interval.
        auc = clustered_auc(scores[i], task.test_labels, task.test_headers)
        rows.append(PredictorResult(name, auc, cost, points, in_sample[i]))
    return RoundResult(k, rows, oracle_energy(k, task.base_rate), paper_saving(k))


def _correct(result: StudyResult) -> None:
    """Holm over every test in the study: rounds x predictors x (AUC + thresholds)."""
    slots: list[tuple[object, str, float]] = []
    for rr in result.rounds:
        for pr in rr.predictors:
            if pr.name == "base-rate":
                continue  # the reference itself, not a hypothesis
            slots.append((pr, "auc_p_holm", pr.auc.p_value))
            slots.extend((op, "p_holm", op.p_value) for op in pr.points)
    for (obj, attr, _), adjusted in zip(slots, holm([p for _, _, p in slots])):
        setattr(obj, attr, adjusted)


# --------------------------------------------------------------------------- verdict

def power_statement(n_pos: int, alpha: float = 0.05, power: float = 0.8) -> dict:
    return {
        "test_positives": n_pos,
        "auc_se_under_h0": 1 / math.sqrt(12 * n_pos) if n_pos else None,
        "detectable_auc": detectable_auc(n_pos, alpha, power),
        "positives_needed_auc_0.55": positives_needed(0.55, alpha, power),
        "positives_needed_auc_0.51": positives_needed(0.51, alpha, power),
        "alpha_one_sided": alpha, "power": power,
    }


def verdict(result: StudyResult, alpha: float = 0.05) -> str:
    early = [rr for rr in result.rounds if not rr.label_determined]
    hits = [(rr.round, pr) for rr in early for pr in rr.predictors
            if pr.name != "base-rate" and pr.auc_p_holm < alpha]
    controls = [rr for rr in result.rounds if rr.label_determined]
    paper = (f"the paper's 92.19% is 1-5/{PAPER_ROUNDS}, the saving if every hash were aborted "
             f"after 5 rounds: the oracle limit, not a measured saving")
    if hits:
        text = "; ".join(f"{pr.name} at round {k}: AUC {pr.auc.auc:.4f} "
                         f"[{pr.auc.low:.4f}, {pr.auc.high:.4f}], Holm p={pr.auc_p_holm:.3g}"
                         for k, pr in hits)
        head = (f"SIGNAL in early rounds ({text}) -- a distinguisher for SHA-256 would be "
                f"extraordinary: rerun with another --seed and more --hashes before believing it")
    else:
        head = "no predictor beats the base rate in rounds " + ", ".join(str(rr.round) for rr in early)
    tail = ""
    if controls:
        seen = all(any(pr.name != "base-rate" and pr.auc_p_holm < alpha for pr in rr.predictors)
                   for rr in controls)
        tail = ("; positive control (round >= 125, label fixed by the state) "
                + ("detected, so the test can see a real signal" if seen
                   else "NOT detected: the test lacks power, treat the null result as inconclusive"))
    flexible = [pr for rr in early for pr in rr.predictors if pr.name != "base-rate"]
    in_sample = ""
    if flexible:
        best = max(flexible, key=lambda pr: pr.in_sample_auc)
        in_sample = (f"; scored on its own training rows (the paper's kind of test) {best.name} "
                     f"reaches AUC {best.in_sample_auc:.3f}, on unseen headers {best.auc.auc:.3f}")
    energy = ""
    points = [(_chosen(pr, result.abort_fraction), pr.name, rr.round) for rr in early
              for pr in rr.predictors]
    if points:
        op, name, k = min(points, key=lambda p: p[0].e_rel)
        real = op.e_rel < 1 and op.p_holm < alpha
        energy = (f"; lowest measured energy per valid share at abort fraction {result.abort_fraction:g}: "
                  f"{op.e_rel:.3f}x full hashing ({name}, round {k}, recall {op.recall:.3f}) -- "
                  + ("a saving backed by a significant recall" if real else "no real saving"))
    power = detectable_auc(result.test_positives)
    return (f"{head}; {paper}{in_sample}{energy}{tail}; with {result.test_positives} test shares an AUC of "
            f"{power:.3f} would have been detected (80% power)")


def _chosen(pr: PredictorResult, abort_fraction: float) -> OperatingPoint:
    return min(pr.points, key=lambda op: abs(op.abort_fraction - abort_fraction))


def result_json(result: StudyResult) -> dict:
    def op_json(op: OperatingPoint) -> dict:
        return {k: _finite(v) for k, v in asdict(op).items()}

    rounds = []
    for rr in result.rounds:
        preds = []
        for pr in rr.predictors:
            chosen = _chosen(pr, result.abort_fraction)
            preds.append({
                "name": pr.name,
                "auc": pr.auc.auc, "auc_ci95": [pr.auc.low, pr.auc.high], "auc_se": pr.auc.se,
                "p_value": pr.auc.p_value, "p_holm": _finite(pr.auc_p_holm),
                "in_sample_auc": pr.in_sample_auc,
                "cost_rounds": pr.cost_rounds,
                "recall_at_abort": chosen.recall, "e_rel_at_abort": _finite(chosen.e_rel),
                "operating_points": [op_json(op) for op in pr.points],
            })
        rounds.append({
            "round": rr.round,
            "compression": 1 if rr.round <= ROUNDS else 2,
            "round_in_compression": rr.round if rr.round <= ROUNDS else rr.round - ROUNDS,
            "label_determined_by_state": rr.label_determined,
            "paper_formula_saving": rr.paper_saving,
            "oracle_e_rel": rr.oracle_e_rel, "oracle_saving": 1 - rr.oracle_e_rel,
            "random_abort_e_rel": random_abort_energy(rr.round, result.abort_fraction),
            "random_abort_free_e_rel": random_abort_energy(0, result.abort_fraction),
            "predictors": preds,
        })
    cfg = asdict(result.config)
    return {
        "config": cfg, "abort_fraction": result.abort_fraction,
        "rounds_per_hash": ROUNDS_PER_NONCE, "ops_per_round": OPS_PER_ROUND,
        "n_hashes": result.n_hashes, "n_train": result.n_train, "n_test": result.n_test,
        "train_positives": result.train_positives, "test_positives": result.test_positives,
        "base_rate": result.base_rate, "expected_base_rate": 2.0 ** -result.config.difficulty_bits,
        "power": power_statement(result.test_positives),
        "exact_early_reject_saving": early_reject_saving(),
        "rounds": rounds, "verdict": verdict(result),
    }


def _finite(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def format_table(result: StudyResult) -> str:
    s = result.abort_fraction
    lines = [
        f"probability filter: {result.n_hashes:,} hashes at difficulty {result.config.difficulty_bits} bits "
        f"(base rate {result.base_rate:.3g}); test {result.n_test:,} hashes on unseen headers, "
        f"{result.test_positives} shares",
        f"energy per valid share relative to full hashing (R={ROUNDS_PER_NONCE} rounds/nonce), abort fraction {s:g}",
        "",
        f"{'round':>5} {'predictor':<10} {'held-out AUC [95% CI]':<26} {'p':>8} {'p_holm':>8} "
        f"{'in-smp':>6} {'recall':>7} {'lift':>6} {'E_rel':>7} {'random':>7} {'oracle':>7} {'paper':>7}",
    ]
    for rr in result.rounds:
        for pr in rr.predictors:
            op = _chosen(pr, s)
            paper = "" if rr.paper_saving is None else f"{1 - rr.paper_saving:.4f}"
            holm_p = "-" if pr.name == "base-rate" else f"{pr.auc_p_holm:.3g}"
            auc = f"{pr.auc.auc:.4f} [{pr.auc.low:.4f},{pr.auc.high:.4f}]"
            lines.append(
                f"{rr.round:>5} {pr.name:<10} {auc:<26} {pr.auc.p_value:>8.3g} {holm_p:>8} "
                f"{pr.in_sample_auc:>6.3f} {op.recall:>7.3f} {op.lift:>6.3f} {op.e_rel:>7.3f} {op.random_abort_e_rel:>7.3f} "
                f"{rr.oracle_e_rel:>7.4f} {paper:>7}")
    p = power_statement(result.test_positives)
    lines += [
        "",
        "E_rel < 1 would be a saving; 'random' aborts the same fraction at random after k rounds",
        "(aborting at random before any round gives exactly 1: fewer hashes, as many fewer shares);",
        "'oracle' aborts every non-share (the limit the paper's 1-k/R describes); 'paper' is k/64;",
        "'in-smp' is the AUC on the predictor's own training rows (the paper's kind of test).",
        f"a saving that needs no prediction: skip the last {EARLY_REJECT_ROUNDS} rounds of the second "
        f"hash (the top word is e of round 61 + IV[7]): {early_reject_saving():.2%} per nonce, no share lost",
        f"power: {p['test_positives']} test shares -> AUC SE {p['auc_se_under_h0']:.4f} under H0, "
        f"detects AUC >= {p['detectable_auc']:.3f}; AUC 0.55 needs {p['positives_needed_auc_0.55']}, "
        f"AUC 0.51 needs {p['positives_needed_auc_0.51']} shares",
        "verdict: " + verdict(result),
    ]
    return "\n".join(lines)
