"""Fingerprint responses: from telemetry traces recorded under a challenge to a feature vector.

A response must carry the unit's process variation (per-chip speed, leakage, thermal
resistance, sensor offsets) and not the conditions the user cannot control. Ambient
temperature shifts every temperature sensor by about the same amount and pool latency
shifts share timing, so the features are built from *differences and ratios*:

* each temperature sensor minus the unit's mean temperature in the same step
  (sensor offsets and thermal-resistance spread survive, ambient cancels);
* each sensor's rise from the first step to every later step (thermal resistance);
* power, fan speed and hash rate, which ambient hardly moves: their levels (fan
  tolerance, leakage) and their ratios to the first step (the response to the stimulus);
* the thermal time constant of the step response after each change of setting;
* per-chip share fractions where the chip is known (speed spread), when enough shares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TEMPERATURE_HINTS = ("temp",)
RELATIVE_HINTS = ("power", "rpm", "hashrate", "current")


@dataclass
class StepTrace:
    """What one challenge step produced: telemetry samples and the chips of its shares."""

    times: list[float] = field(default_factory=list)            # seconds, clock time
    samples: list[dict[str, float]] = field(default_factory=list)  # flat numeric telemetry
    share_chips: list[int] = field(default_factory=list)

    def add(self, t: float, sample: dict[str, float]) -> None:
        self.times.append(t)
        self.samples.append(sample)


@dataclass(frozen=True)
class Response:
    """A fingerprint: named features plus the conditions they were measured under."""

    model: str
    challenge_version: str
    feature_names: tuple[str, ...]
    values: np.ndarray
    conditions: dict


def _steady(trace: StepTrace, key: str) -> float:
    """Mean of the last half of a step (after the transient)."""
    vals = [s[key] for s in trace.samples if key in s and math.isfinite(s[key])]
    if not vals:
        return float("nan")
    return float(np.mean(vals[len(vals) // 2:]))


def _time_constant(trace: StepTrace, key: str) -> float:
    """Time for a sensor to cover 63% of its change within a step (nan if flat)."""
    pts = [(t, s[key]) for t, s in zip(trace.times, trace.samples)
           if key in s and math.isfinite(s[key])]
    if len(pts) < 4:
        return float("nan")
    t = np.array([p[0] for p in pts]) - pts[0][0]
    v = np.array([p[1] for p in pts])
    total = v[-max(1, len(v) // 5):].mean() - v[0]
    if abs(total) < 0.5:  # less than half a degree: no usable step response
        return float("nan")
    reached = np.flatnonzero((v - v[0]) / total >= 1 - math.exp(-1))
    return float(t[reached[0]]) if len(reached) else float("nan")


def _distinct_keys(traces: list[StepTrace]) -> list[str]:
    """Telemetry fields, dropping exact copies (a single-chain unit reports its chain's
    temperature twice; counting it twice would double its weight)."""
    keys = sorted({k for tr in traces for s in tr.samples for k in s})
    seen: dict[tuple, str] = {}
    for k in keys:
        signature = tuple(s.get(k) for tr in traces for s in tr.samples)
        seen.setdefault(signature, k)
    return sorted(seen.values())


def response_from_traces(model: str, challenge_version: str, traces: list[StepTrace],
                         min_shares_per_chip: int = 30) -> Response:
    """Feature vector from one challenge run (see module docstring for the rationale)."""
    keys = _distinct_keys(traces)
    temp_keys = [k for k in keys if any(h in k for h in TEMPERATURE_HINTS)]
    rel_keys = [k for k in keys if any(h in k for h in RELATIVE_HINTS)]
    names: list[str] = []
    values: list[float] = []
    steady = {(i, k): _steady(tr, k) for i, tr in enumerate(traces) for k in temp_keys + rel_keys}
    for i in range(len(traces)):
        temps = [steady[(i, k)] for k in temp_keys if math.isfinite(steady[(i, k)])]
        unit_mean = float(np.mean(temps)) if temps else float("nan")
        for k in temp_keys:
            names.append(f"s{i}.{k}.offset")
            values.append(steady[(i, k)] - unit_mean)
            if i > 0:
                names.append(f"s{i}.{k}.rise")
                values.append(steady[(i, k)] - steady[(0, k)])
                names.append(f"s{i}.{k}.tau")
                values.append(_time_constant(traces[i], k))
        for k in rel_keys:
            # Fans, power and hash rate hardly depend on ambient: their levels carry the
            # fan tolerance and leakage directly; ratios carry the response to the step.
            names.append(f"s{i}.{k}.level")
            values.append(steady[(i, k)])
            if i > 0:
                base = steady[(0, k)]
                names.append(f"s{i}.{k}.ratio")
                values.append(steady[(i, k)] / base if base else float("nan"))
    chips = np.concatenate([np.asarray(tr.share_chips, dtype=int) for tr in traces]) \
        if traces else np.array([], dtype=int)
    if len(chips):
        n_chips = int(chips.max()) + 1
        counts = np.bincount(chips, minlength=n_chips)
        if n_chips > 1 and counts.min() >= min_shares_per_chip:
            for c, frac in enumerate(counts / counts.sum()):
                names.append(f"chip{c}.share_fraction")
                values.append(float(frac * n_chips))
    return Response(model, challenge_version, tuple(names), np.asarray(values, dtype=float),
                    {"steps": len(traces), "shares": int(len(chips))})


def usable_features(responses: list[Response]) -> tuple[str, ...]:
    """Features present and finite in every response (e.g. a tau may be nan on one read)."""
    common = set(responses[0].feature_names)
    for r in responses[1:]:
        common &= set(r.feature_names)
    keep = []
    for name in responses[0].feature_names:
        if name in common and all(math.isfinite(r.values[r.feature_names.index(name)])
                                  for r in responses):
            keep.append(name)
    return tuple(keep)


def select(response: Response, names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(response.feature_names)}
    missing = [n for n in names if n not in index]
    if missing:
        raise ValueError(f"response lacks features {missing[:5]} (other challenge or unit?)")
    return response.values[[index[n] for n in names]]
