"""Task results as one fixed-width table, one JSON object, and optional plots.

Every cell is "mean ± std (runs)" of std-normalised test NRMSE (1.0 = predicting the
mean). Range-normalised NRMSE (~0.17x for NARMA-10, not comparable) appears only when
asked for, in its own labelled column. Baselines and controls sit in the same table with
their kind spelled out, so no hardware number is ever printed without them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from asic_reservoir.analysis.baselines import CONTROLS, HARDWARE_INPUT, INPUT_ONLY, MEMORY_CONTROLS
from asic_reservoir.analysis.readout import Score, Split, Summary, summarize, summarize_scores
from asic_reservoir.analysis.statistics import MIN_RUNS, PairedComparison, paired
from asic_reservoir.analysis.tasks import IPC_DELAYS, CapacityProfile, TargetProfile


class PlotsUnavailable(ImportError):
    """matplotlib is missing; install the ``plots`` extra."""


@dataclass(frozen=True)
class CapacitySummary:
    """Capacities of one kind of states over runs: memory capacity, IPC by degree (each
    mean ± std over runs), the mean held-out r^2 per delay (for the plot) and the mean
    capacity per IPC basis term (``terms``, keyed as in ``tasks.Capacities``; degree 1 from
    the memory capacity's delays, higher degrees from the IPC). The terms are not zeroed
    below the chance level as the totals are: weighted by a task's shares (which sum to at
    most 1) their chance part adds ~1/n_test at most, while zeroing would drop the many
    small real terms of a slow filter."""

    memory: Summary
    ipc: dict[int, Summary]
    per_delay: tuple[float, ...]
    terms: dict[tuple[int, ...], float] = field(default_factory=dict)

    @classmethod
    def from_profiles(cls, profiles: Sequence[CapacityProfile]) -> CapacitySummary:
        if not profiles:
            raise ValueError("no capacity profiles to summarise")
        degrees = sorted({d for p in profiles for d in p.ipc.by_degree})
        k = min(len(p.memory.per_delay) for p in profiles)
        curve = np.mean([p.memory.per_delay[:k] for p in profiles], axis=0)
        return cls(summarize([p.memory.total for p in profiles]),
                   {d: summarize([p.ipc.by_degree.get(d, 0.0) for p in profiles])
                    for d in degrees},
                   tuple(float(v) for v in curve),
                   _mean_terms([_terms(p, k) for p in profiles]))

    def to_json(self) -> dict[str, Any]:
        def cap(s: Summary) -> dict[str, Any]:
            out = s.to_json()
            return {"mean": out["nrmse_mean"], "std": out["nrmse_std"], "runs": out["runs"],
                    "values": out["values"]}
        return {"memory_capacity": cap(self.memory),
                "ipc_by_degree": {str(d): cap(v) for d, v in self.ipc.items()},
                "memory_per_delay": [round(v, 6) for v in self.per_delay],
                "ipc_terms": {",".join(map(str, k)): round(v, 6)
                              for k, v in self.terms.items() if len(k) > 1}}


def _terms(profile: CapacityProfile, k_max: int) -> dict[tuple[int, ...], float]:
    """One run's capacity per basis term: delays 0..k_max from the memory capacity, the
    higher degrees from the IPC."""
    out = {(k,): float(v) for k, v in enumerate(profile.memory.per_delay[:k_max])}
    out.update({key: v for key, v in profile.ipc.terms.items() if len(key) > 1})
    return out


def _mean_terms(runs: Sequence[dict[tuple[int, ...], float]]) -> dict[tuple[int, ...], float]:
    keys = set.intersection(*(set(r) for r in runs))
    return {k: float(np.mean([r[k] for r in runs])) for k in sorted(keys, key=lambda k: (len(k), k))}


@dataclass(frozen=True)
class LoopSaturation:
    """A closed loop's saturation over runs (fractions of its slots, mean ± std): commands
    clipped at the channel's range, and fed-back responses outside the range they were
    normalised on. A loop whose commands mostly clip carries no input: its scores say
    nothing about the time scale."""

    clipped: Summary
    outside: Summary

    def sentence(self) -> str:
        return (f"delay loop: {_percent(self.clipped)} of commands clipped at the channel's "
                f"range, {_percent(self.outside)} of fed-back responses outside the "
                f"calibrated range")

    def to_json(self) -> dict[str, Any]:
        return {"clipped_fraction": list(self.clipped.values),
                "outside_fraction": list(self.outside.values)}


def _percent(s: Summary) -> str:
    std = f" ± {100 * s.std:.1f}" if s.n > 1 and math.isfinite(s.std) else ""
    return f"{100 * s.mean:.1f}{std} % ({s.n})"


@dataclass
class Entry:
    """Scores of one unit x channel: readouts (first is the headline) and its controls.

    Typical readouts: ``"hardware"`` (states only), ``"hardware + input"``; controls:
    ``"input only"``, ``"shuffled states"``, ``"constant input"``.
    """

    unit: str
    channel: str
    readouts: dict[str, Summary]
    controls: dict[str, Summary] = field(default_factory=dict)
    note: str = ""
    capacities: dict[str, CapacitySummary] = field(default_factory=dict)
    consistency: Summary | None = None
    """Mean state correlation between responses to one input replayed (per run pair)."""
    saturation: LoopSaturation | None = None
    """A closed loop's clipped commands per run (None for an open-loop channel)."""

    def __post_init__(self) -> None:
        if not self.readouts:
            raise ValueError(f"entry {self.unit}/{self.channel} has no readout scores")

    @classmethod
    def from_runs(cls, unit: str, channel: str, runs: Sequence[Mapping[str, Score]],
                  note: str = "") -> Entry:
        """Aggregate per-run scores (e.g. :func:`~asic_reservoir.analysis.baselines.hardware_scores`
        of each run) into mean ± std; names in ``baselines.CONTROLS`` become controls."""
        names = list(dict.fromkeys(k for r in runs for k in r))
        summaries = {k: summarize_scores([r[k] for r in runs if k in r]) for k in names}
        return cls(unit, channel,
                   readouts={k: v for k, v in summaries.items() if k not in CONTROLS},
                   controls={k: v for k, v in summaries.items() if k in CONTROLS}, note=note)


@dataclass(frozen=True)
class Gain:
    """What the hardware adds over one control: paired per-run NRMSE(control) -
    NRMSE(hardware + input), with its t-interval and sign-flip p-value
    (:mod:`~asic_reservoir.analysis.statistics`)."""

    control: str
    comparison: PairedComparison

    @property
    def real(self) -> bool:
        """True only for the verdict ``"better"`` (>= 5 runs, interval above zero, p <= 0.05)."""
        return self.comparison.verdict == "better"

    def sentence(self) -> str:
        c = self.comparison
        what = f"gain over {self.control}: {c.interval()}"
        verdict = c.verdict
        if verdict == "too few runs":
            return f"{what}: too few runs for a verdict (need {MIN_RUNS})"
        if verdict == "better":
            return f"{what}: the hardware adds something beyond {self.control}"
        if verdict == "worse":
            return f"{what}: the hardware readout is worse than {self.control}"
        return f"{what}: the hardware adds nothing measurable beyond {self.control}"


def gains(entry: Entry) -> list[Gain]:
    """Paired gains of ``hardware + input`` over the input-only control and over the
    strongest memory-matched control (lowest mean NRMSE) of the same runs; a control whose
    runs do not pair up with the hardware's is left out."""
    hw = entry.readouts.get(HARDWARE_INPUT)
    if hw is None or hw.n == 0 or len(hw.values) != hw.n:
        return []
    names = [INPUT_ONLY]
    strongest = strongest_memory_control(entry)
    if strongest is not None:
        names.append(strongest)
    out = []
    for name in names:
        ctl = entry.controls.get(name)
        if ctl is None or len(ctl.values) != len(hw.values):
            continue
        out.append(Gain(name, paired(hw.values, ctl.values)))
    return out


def strongest_memory_control(entry: Entry) -> str | None:
    """Name of the memory-matched control with the lowest mean NRMSE (None if none ran)."""
    present = [(entry.controls[k].mean, k) for k in MEMORY_CONTROLS
               if k in entry.controls and entry.controls[k].n]
    return min(present)[1] if present else None


@dataclass
class Report:
    """A task's hardware entries, task-level baselines, split and notes."""

    task: str
    entries: list[Entry]
    baselines: dict[str, Summary]
    split: Split | None = None
    skipped_steps: int = 0
    notes: list[str] = field(default_factory=list)
    capacities: dict[str, CapacitySummary] = field(default_factory=dict)
    """Task-level capacities (software reservoirs on the same inputs and rows)."""

    def table(self, show_range: bool = False) -> str:
        return format_table(self, show_range=show_range)

    def to_json(self, show_range: bool = False) -> dict[str, Any]:
        return report_json(self, show_range=show_range)


_KIND_W, _VAL_W = 9, 22


def format_table(report: Report, show_range: bool = False) -> str:
    """Fixed-width table: kind, unit, channel, readout, NRMSE [, range-normalised NRMSE]."""
    rows: list[tuple[str, str, str, str, Summary]] = []
    for e in report.entries:
        for name, s in e.readouts.items():
            rows.append(("hardware", e.unit, e.channel, name, s))
        for name, s in e.controls.items():
            rows.append(("control", e.unit, e.channel, name, s))
    for name, s in report.baselines.items():
        rows.append(("baseline", "-", "-", name, s))
    unit_w = max([4] + [len(r[1]) for r in rows])
    chan_w = max([7] + [len(r[2]) for r in rows])
    name_w = max([7] + [len(r[3]) for r in rows])
    head = [f"{'kind':<{_KIND_W}}", f"{'unit':<{unit_w}}", f"{'channel':<{chan_w}}",
            f"{'readout':<{name_w}}", f"{'NRMSE (std)':<{_VAL_W}}"]
    if show_range:
        head.append(f"{'NRMSE (range, not comparable)':<{_VAL_W}}")
    lines = [f"{report.task}: test NRMSE normalised by the target's std "
             "(1.0 = predicting the mean), mean ± std over runs (n)"]
    if report.split is not None:
        sp = report.split
        lines.append(f"chronological split: washout {sp.washout}, train {sp.train}, "
                     f"validation {sp.validation} (alpha), test "
                     f"{sp.test if sp.test is not None else 'rest'}")
    if report.skipped_steps:
        lines.append(f"{report.skipped_steps} marked steps skipped")
    lines.append("  ".join(head).rstrip())
    lines.append("  ".join("-" * len(h) for h in head))
    for kind, unit, chan, name, s in rows:
        cells = [f"{kind:<{_KIND_W}}", f"{unit:<{unit_w}}", f"{chan:<{chan_w}}",
                 f"{name:<{name_w}}", f"{s.cell():<{_VAL_W}}"]
        if show_range:
            rn = s.range_normalised
            cells.append(f"{(rn.cell() if rn is not None else 'n/a'):<{_VAL_W}}")
        lines.append("  ".join(cells).rstrip())
    for e in report.entries:
        for g in gains(e):
            lines.append(f"{e.unit}/{e.channel}: {g.sentence()}")
    for e in report.entries:
        if e.consistency is not None:
            lines.append(f"{e.unit}/{e.channel}: consistency (same input replayed): mean state "
                         f"correlation, over (n) run pairs, {e.consistency.cell(2)}; 1 - r is "
                         f"the share of a state's variance that is noise")
    for e in report.entries:
        if e.saturation is not None:
            lines.append(f"{e.unit}/{e.channel}: {e.saturation.sentence()}")
    lines.extend(_capacity_lines(report))
    notes = [e.note and f"{e.unit}/{e.channel}: {e.note}" for e in report.entries]
    lines.extend(f"note: {n}" for n in [*report.notes, *filter(None, notes)])
    return "\n".join(lines)


def _capacity_lines(report: Report) -> list[str]:
    rows = [(e.unit, e.channel, name, c) for e in report.entries
            for name, c in e.capacities.items()]
    rows += [("-", "-", name, c) for name, c in report.capacities.items()]
    if not rows:
        return []
    degrees = sorted({d for *_, c in rows for d in c.ipc})
    unit_w = max([4] + [len(r[0]) for r in rows])
    chan_w = max([7] + [len(r[1]) for r in rows])
    name_w = max([6] + [len(r[2]) for r in rows])
    w = 20
    head = [f"{'unit':<{unit_w}}", f"{'channel':<{chan_w}}", f"{'states':<{name_w}}",
            f"{'memory capacity':<{w}}", *(f"{f'IPC degree {d}':<{w}}" for d in degrees)]
    lines = ["", "capacities on held-out rows (terms below 9/n_test count as 0), "
             "mean ± std over runs (n):", "  ".join(head).rstrip(),
             "  ".join("-" * len(h) for h in head)]
    for unit, chan, name, c in rows:
        cells = [f"{unit:<{unit_w}}", f"{chan:<{chan_w}}", f"{name:<{name_w}}",
                 f"{c.memory.cell(2):<{w}}",
                 *(f"{(c.ipc[d].cell(2) if d in c.ipc else 'n/a'):<{w}}" for d in degrees)]
        lines.append("  ".join(cells).rstrip())
    return lines


def report_json(report: Report, show_range: bool = False) -> dict[str, Any]:
    """One JSON-ready object.

    ``units[unit][channel]`` has the headline readout's ``nrmse_mean``, ``nrmse_std``,
    ``runs`` plus ``readout`` (its name), ``readouts`` and ``controls`` by name and, when
    ``gains`` by control name (see :class:`Gain`: mean, std, 95 % interval, p-value,
    runs, verdict, per-run differences);
    ``baselines`` maps name -> ``{nrmse_mean, nrmse_std, runs, values}``. Non-finite
    numbers (std of a single run) are null. Range-normalised fields only with show_range.
    """
    def summ(s: Summary) -> dict[str, Any]:
        out = s.to_json()
        if not show_range:
            out.pop("nrmse_range_mean", None)
            out.pop("nrmse_range_std", None)
        return out

    units: dict[str, dict[str, Any]] = {}
    for e in report.entries:
        head_name, head = next(iter(e.readouts.items()))
        units.setdefault(e.unit, {})[e.channel] = {
            **summ(head), "readout": head_name,
            "readouts": {k: summ(v) for k, v in e.readouts.items()},
            "controls": {k: summ(v) for k, v in e.controls.items()},
            "gains": {g.control: g.comparison.to_json() for g in gains(e)},
            "capacities": {k: c.to_json() for k, c in e.capacities.items()},
            **({"consistency": {"mean_r": e.consistency.to_json()["nrmse_mean"],
                                "std": e.consistency.to_json()["nrmse_std"],
                                "run_pairs": e.consistency.n}} if e.consistency else {}),
            **({"saturation": e.saturation.to_json()} if e.saturation else {}),
            **({"note": e.note} if e.note else {}),
        }
    split = None
    if report.split is not None:
        sp = report.split
        split = {"washout": sp.washout, "train": sp.train, "validation": sp.validation,
                 "test": sp.test}
    return {"task": report.task, "metric": "nrmse", "normalisation": "std",
            "split": split, "skipped_steps": report.skipped_steps, "units": units,
            "baselines": {k: summ(v) for k, v in report.baselines.items()},
            "capacities": {k: c.to_json() for k, c in report.capacities.items()},
            "notes": list(report.notes)}


def dumps(report: Report, show_range: bool = False) -> str:
    """Strict JSON text (no NaN literals)."""
    return json.dumps(report_json(report, show_range), indent=2, allow_nan=False)


# --------------------------------------------------------------------------- plots

def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotsUnavailable("plots need matplotlib: pip install 'asic-reservoir[plots]'"
                               ) from exc
    return plt


def plot_prediction(score: Score, path: str | Path, title: str = "", n_steps: int = 300) -> Path:
    """Target vs readout prediction over the first ``n_steps`` test steps (PNG)."""
    plt = _pyplot()
    k = min(n_steps, len(score.y_test))
    fig, ax = plt.subplots(figsize=(10, 3.2))
    steps = score.test_index[:k]
    ax.plot(steps, score.y_test[:k], label="target", lw=1.2)
    ax.plot(steps, score.y_pred[:k], label=f"prediction (NRMSE {score.nrmse:.3f}, std-norm.)",
            lw=1.0)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend(loc="upper right")
    return _save(fig, plt, path)


def plot_features(features: np.ndarray, names: Sequence[str], path: str | Path,
                  n_steps: int = 300, max_features: int = 12) -> Path:
    """Standardised traces of the first ``max_features`` feature columns (PNG)."""
    plt = _pyplot()
    x = np.asarray(features, dtype=float)[:n_steps, :max_features]
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    x = (x - x.mean(axis=0)) / sd
    fig, axes = plt.subplots(x.shape[1], 1, figsize=(10, 0.9 * x.shape[1] + 0.6), sharex=True,
                             squeeze=False)
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(x[:, j], lw=0.8)
        ax.set_ylabel(names[j] if j < len(names) else f"x{j}", rotation=0, ha="right",
                      fontsize=7)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("step")
    return _save(fig, plt, path)


def plot_nrmse_vs_slots(slots: Sequence[int], summaries: Sequence[Summary], path: str | Path,
                        baselines: dict[str, Summary] | None = None, title: str = "") -> Path:
    """NRMSE (mean ± std) against number of virtual-node slots, baselines as lines (PNG)."""
    plt = _pyplot()
    if len(slots) != len(summaries):
        raise ValueError(f"{len(slots)} slot counts for {len(summaries)} summaries")
    fig, ax = plt.subplots(figsize=(6, 4))
    std = [0.0 if math.isnan(s.std) else s.std for s in summaries]
    ax.errorbar(list(slots), [s.mean for s in summaries], yerr=std, marker="o", capsize=3,
                label="hardware")
    for name, s in (baselines or {}).items():
        ax.axhline(s.mean, ls="--", lw=0.8, color="grey")
        ax.annotate(name, (min(slots), s.mean), fontsize=7, va="bottom")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(slots), [str(n) for n in slots])
    ax.set_xlabel("virtual-node slots per step")
    ax.set_ylabel("test NRMSE (std-normalised)")
    ax.set_title(title)
    return _save(fig, plt, path)


def plot_capacity_vs_delay(curves: dict[str, Sequence[float]], path: str | Path,
                           title: str = "") -> Path:
    """Held-out r^2 of u(t-k) against delay k, one line per kind of states (PNG): which
    delays a reservoir remembers, beside the software ones on the same inputs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(range(len(curve)), list(curve), marker="o", ms=3, label=name)
    ax.set_xlabel("delay k (steps)")
    ax.set_ylabel("memory capacity term r^2(u(t-k))")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, plt, path)


def plot_capacity_vs_theta(curves: Mapping[str, Sequence[tuple[float, Summary, Summary]]],
                           path: str | Path, title: str = "",
                           references: Mapping[str, float] | None = None) -> Path:
    """Memory capacity and degree-2 IPC (mean ± std over runs) against the node duration
    theta, one line per feedback gain (PNG, log theta): which time scales the delay
    reservoir remembers at and whether it computes products. ``curves`` maps a label to
    (theta, memory capacity, IPC 2) points; ``references`` marks physical time constants."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, points in curves.items():
        pts = sorted(points, key=lambda p: p[0])
        thetas = [p[0] for p in pts]
        for ax, j in zip(axes, (1, 2)):
            mean = [p[j].mean for p in pts]
            std = [p[j].std if p[j].n > 1 and math.isfinite(p[j].std) else 0.0 for p in pts]
            ax.errorbar(thetas, mean, yerr=std, marker="o", ms=4, capsize=3, label=label)
    for ax, name in zip(axes, ("memory capacity", "IPC degree 2")):
        ax.set_xscale("log")
        ax.set_xlabel("theta, node duration (s)")
        ax.set_ylabel(name)
        for ref, t in (references or {}).items():
            ax.axvline(t, color="grey", lw=0.6, ls=":")
            ax.annotate(ref, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="top", ha="right", color="grey")
        ax.set_ylim(bottom=0.0)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, plt, path)


def plot_task_needs(target: TargetProfile, capacities: Mapping[str, CapacitySummary],
                    path: str | Path, title: str = "", task: str = "NARMA-10",
                    scores: Mapping[str, Summary] | None = None,
                    aim: float | None = None,
                    part_floors: Mapping[str, float] | None = None,
                    part_label: str = "floor from the far part measured as a whole") -> Path:
    """What a task needs beside what each reservoir has, on the IPC basis (PNG, 3 panels):
    (a) the task's share of variance on each delayed input u(t-k) (bars) and each
    reservoir's capacity on it (lines); (b) the same for the degree-2 products
    P(u(t-i)) P(u(t-j)) grouped by their longer delay max(i, j): the task's share (bars),
    a reservoir's mean capacity per product (lines); (c) the NRMSE floor those capacities
    leave (:meth:`TargetProfile.nrmse_floor`) beside ``scores`` (NRMSE of a readout of the
    same states) where given, ``part_floors`` (:meth:`TargetProfile.nrmse_floor_of_part`)
    and the ``aim``. The missing delays and degrees are where the bars stand without
    lines."""
    plt = _pyplot()
    names = list(capacities)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {n: colours[i % len(colours)] for i, n in enumerate(names)}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8),
                             gridspec_kw={"width_ratios": [1.25, 1.0, 1.1]})
    ax = axes[0]
    k_max = max([k for (k, *rest) in target.terms if not rest], default=0)
    delays = np.arange(k_max + 1)
    ax.bar(delays, target.linear(k_max), color="lightgrey", edgecolor="grey",
           label=f"{task}: share of its variance")
    for n in names:
        terms = capacities[n].terms
        ks = [k for k in delays if (k,) in terms]
        ax.plot(ks, [terms[(k,)] for k in ks], marker="o", ms=3, lw=1.2, color=colour[n],
                label=n)
    ax.set_xlabel("delay k (steps)")
    ax.set_ylabel("capacity on u(t-k) (lines) / share of the task (bars)")
    ax.set_xticks(delays[::2])
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("(a) degree 1: delayed inputs", fontsize=9)
    ax.legend(fontsize=6.5, loc="center right")
    ax = axes[1]
    pairs = [k for c in capacities.values() for k in c.terms if len(k) == 2]
    pair_max = max((max(k) for k in pairs), default=IPC_DELAYS)
    lags = np.arange(pair_max + 1)
    need = [sum(v for k, v in target.terms.items() if len(k) == 2 and max(k) == m)
            for m in lags]
    ax.bar(lags, need, color="lightgrey", edgecolor="grey", label=f"{task}: share")
    for n in names:
        terms = capacities[n].terms
        per = [[v for k, v in terms.items() if len(k) == 2 and max(k) == m] for m in lags]
        ax.plot(lags, [float(np.mean(p)) if p else np.nan for p in per], marker="o", ms=3,
                lw=1.2, color=colour[n])
    key = max((k for k in target.terms if len(k) == 2 and max(k) <= pair_max),
              key=lambda k: target.terms[k], default=None)
    if key is not None and target.terms[key] > 0:
        lag = lambda d: f"u(t-{d})" if d else "u(t)"
        ax.annotate(f"of which P({lag(key[0])}) P({lag(key[1])}): {target.terms[key]:.3f}",
                    (key[1], need[key[1]]), xytext=(0, 12), textcoords="offset points",
                    fontsize=7, ha="right")
    ax.set_xlabel("longer delay max(i, j) of the product P(u(t-i)) P(u(t-j))")
    ax.set_ylabel("mean capacity per product (lines) / share (bars)")
    ax.set_xticks(lags)
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("(b) degree 2: products of two inputs", fontsize=9)
    ax = axes[2]
    rows = np.arange(len(names))[::-1]
    floors = [target.nrmse_floor(capacities[n].terms) for n in names]
    ax.barh(rows, floors, color=[colour[n] for n in names], alpha=0.8,
            label="floor from its capacity per term (terms in phase at worst)")
    for r, n in zip(rows, names):
        s = (scores or {}).get(n)
        if s is not None and s.n:
            ax.plot([s.mean], [r], marker="D", color="black", ms=5, ls="none",
                    label="NRMSE measured (same states)" if r == rows[0] else None)
        if n in (part_floors or {}):
            ax.plot([part_floors[n]], [r], marker="|", color="black", ms=14, mew=2, ls="none",
                    label=part_label if r == rows[0] else None)
    if aim is not None:
        ax.axvline(aim, color="black", ls="--", lw=1)
        ax.annotate(f"aim {aim:g}", (aim, 1.0), xycoords=("data", "axes fraction"),
                    fontsize=7, rotation=90, va="top", ha="right")
    ax.set_yticks(rows, [n if len(n) <= 34 else n[:32] + "…" for n in names], fontsize=7)
    ax.set_xlim(0, 1.1)
    ax.set_ylim(-2.4, len(names) - 0.4)        # room for the legend under the last row
    ax.set_xlabel(f"{task} test NRMSE (std-normalised)")
    ax.set_title("(c) what the missing terms leave: NRMSE floor", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left")
    fig.suptitle(title, fontsize=9)
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
