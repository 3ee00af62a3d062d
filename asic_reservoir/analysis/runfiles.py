"""Score run files: readouts, controls, baselines and capacities per unit x channel.

Runs of the same unit and channel pool across files (seeds, sweeps); units driven by the
same input series are also scored together as one reservoir.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from asic_reservoir.analysis.actuation import actuation, saturation
from asic_reservoir.analysis.baselines import (FILTER_BANK, HARDWARE, EchoStateNetwork,
                                               filter_bank_features, hardware_scores,
                                               input_controls, run_baselines,
                                               time_constants_in_steps)
from asic_reservoir.analysis.readout import ReadoutError, Split, summarize
from asic_reservoir.analysis.report import (CapacitySummary, Entry, LoopSaturation, Report,
                                            plot_capacity_vs_delay, plot_features,
                                            plot_nrmse_vs_slots, plot_prediction,
                                            plot_task_needs)
from asic_reservoir.analysis.states import StatesError, states
from asic_reservoir.analysis.tasks import (CapacityProfile, Consistency, TaskError,
                                           capacity_profile, consistency, narma_from_input,
                                           narma_profile)
from asic_reservoir.experiment.record import NARMA_ORDER, narma_inputs
from asic_reservoir.experiment.runs import RunReader


# Ridge penalties tried on validation for every readout in an analysis (hardware, controls
# and baselines alike). Wider than the readout default at the top: hardware states have
# tens to hundreds of correlated features and short runs have few training rows.
ANALYSIS_ALPHAS = np.logspace(-8, 4, 13)


@dataclass
class AnalysisOptions:
    washout: int = 50
    train: float = 0.5
    validation: float = 0.2
    units: Sequence[str] | None = None
    esn_sizes: Sequence[int] = (100,)
    check_leakage: bool = True
    capacities: bool = True
    features: Sequence[str] | None = None
    """Hardware features kept (name prefixes after the slot qualifier, e.g. ``tel.chip_temp_c``);
    None keeps every feature. Controls and baselines do not depend on it."""
    joint: bool = True
    """Also score every unit x channel of one input series together as one reservoir. Off
    when the files are points of a scan (say feedback gains) rather than units of one
    reservoir: their states side by side mean nothing."""


def analyze_files(paths: Sequence[str | Path], options: AnalysisOptions | None = None,
                  labels: dict[str, str] | None = None, plots: str | Path | None = None):
    """Score run files: per unit x channel, hardware readouts, controls and capacities over
    runs; all units of the same input series together; the task baselines and software
    capacities on the same input series and rows. Returns a ``report.Report``."""

    opt = options or AnalysisOptions()
    entries: list[Entry] = []
    # Task baselines run once per input series and split, on the rows every hardware
    # readout of that series used (the paired controls use each unit's own rows).
    series: dict[tuple, tuple[np.ndarray, np.ndarray, Split, np.ndarray]] = {}
    # (run, input series) -> states of every unit x channel driven by it (joint reservoir)
    joint: dict[tuple[int, bytes], list[tuple[str, Any, np.ndarray, Split]]] = {}
    notes: list[str] = []
    by_slots: dict[tuple[str, str], dict[int, Any]] = {}   # (unit, channel) -> slots -> entry
    grouped: dict[tuple[str, str], list] = {}   # (unit, channel) -> runs of every file
    grouped_caps: dict[tuple[str, str], dict[str, list[CapacityProfile]]] = {}
    grouped_sat: dict[tuple[str, str], list] = {}     # closed loops: saturation per run
    slot_key: dict[tuple[str, str], tuple[tuple[str, str], int]] = {}
    consistencies: dict[tuple[str, str], list[Consistency]] = {}
    # What reads only the input (controls, the filter bank's capacities) is computed once
    # per (series, rows, time constants): every unit driven by that series shares it.
    shared: dict[tuple, dict] = {}
    skipped = 0
    split = None
    for path in paths:
        with RunReader(path) as reader:
            meta = reader.meta
            channel = (labels or {}).get(str(path)) or meta.channel.get("spec", "?")
            base_channel = channel
            if meta.slots > 1:
                channel = f"{channel} x{meta.slots} slots"
            control = meta.extra.get("control")
            if control:
                channel = f"{channel} [{control} control]"
                task_inputs = narma_inputs(meta.seed, meta.steps)
            for unit in meta.units:
                if opt.units and unit.name not in opt.units:
                    continue
                label = f"{unit.name}" + (f" ({unit.model})" if unit.model not in unit.name
                                          else "")
                if control == "repeated-input":
                    _measure_consistency(reader, unit.name, opt, consistencies.setdefault(
                        (label, channel), []), notes, Path(path).name)
                    continue
                taus = time_constants_in_steps(unit.profile or unit.model, meta.step_seconds)
                per_run, profiles, sats = [], {}, []
                for run in reader.runs():
                    act = actuation(reader, run, unit.name)
                    if act.flagged():        # the input never reached the hardware
                        notes.append(f"{Path(path).name}: run {run}: {unit.name} "
                                     f"{base_channel} not scored: {act.describe()}")
                        continue
                    sm = states(reader, run, [unit.name])
                    if opt.features:
                        sm = sm.select(opt.features)
                    u = sm.u
                    if control:  # the hardware saw a constant; the task is the NARMA series
                        u = task_inputs(run)[:len(u)]
                    y = narma_from_input(u, NARMA_ORDER)
                    run_split = Split.fractions(len(u), min(opt.washout, len(u) // 5),
                                                opt.train, opt.validation)
                    split = split or run_split
                    where = f"{Path(path).name}: run {run}: {unit.name}"
                    rows = (u.tobytes(), run_split, sm.valid.tobytes(), taus)
                    try:
                        if rows not in shared:
                            shared[rows] = input_controls(u, y, run_split, valid=sm.valid,
                                                          alphas=ANALYSIS_ALPHAS,
                                                          time_constants=taus)
                        scores = hardware_scores(
                            sm.X, u, y, run_split, valid=sm.valid, feature_names=sm.names,
                            seed=run, alphas=ANALYSIS_ALPHAS, check_leakage=opt.check_leakage,
                            feature_time_ns=sm.feature_time_ns, input_time_ns=sm.input_time_ns,
                            time_constants=taus, controls=shared[rows])
                    except ReadoutError as exc:      # one bad run must not hide the others
                        notes.append(f"{where} not scored: {exc}")
                        continue
                    per_run.append(scores)
                    sat = saturation(reader, run, unit.name)
                    if sat is not None and sat.slots:
                        sats.append(sat)
                    if opt.capacities:
                        _add_capacities(profiles, {HARDWARE: sm.X}, u, run_split, sm.valid,
                                        notes, where)
                        if (rows, FILTER_BANK) not in shared:
                            bank: dict[str, list[CapacityProfile]] = {}
                            failed: list[str] = []
                            _add_capacities(bank, {FILTER_BANK: filter_bank_features(u, taus)},
                                            u, run_split, sm.valid, failed, "")
                            shared[(rows, FILTER_BANK)] = {"profiles": bank, "notes": failed}
                        bank_run = shared[(rows, FILTER_BANK)]
                        for name, found in bank_run["profiles"].items():
                            profiles.setdefault(name, []).extend(found)
                        notes.extend(where + n for n in bank_run["notes"])
                    skipped += sm.n_marked
                    notes.extend(f"{Path(path).name}: run {run}: {n}" for n in sm.notes)
                    key = (u.tobytes(), run_split)
                    ok = sm.valid if key not in series else series[key][3] & sm.valid
                    series[key] = (u, y, run_split, ok)
                    if not control:
                        joint.setdefault((run, u.tobytes()), []).append(
                            (f"{label} {channel}", sm, u, run_split))
                    if plots is not None:
                        _plots(plots, unit.name, channel, run, sm, scores)
                if per_run:     # files of the same unit and channel (seeds, sweeps) pool runs
                    grouped.setdefault((label, channel), []).extend(per_run)
                    grouped_sat.setdefault((label, channel), []).extend(sats)
                    caps = grouped_caps.setdefault((label, channel), {})
                    for name, found in profiles.items():
                        caps.setdefault(name, []).extend(found)
                    if not control:
                        slot_key[(label, channel)] = ((label, base_channel), meta.slots)
    for (label, channel), per_run in grouped.items():
        entries.append(Entry.from_runs(label, channel, per_run))
        entries[-1].capacities.update(_summaries(grouped_caps[(label, channel)]))
        if grouped_sat.get((label, channel)):
            sats = grouped_sat[(label, channel)]
            entries[-1].saturation = LoopSaturation(
                summarize([x.clipped_fraction for x in sats]),
                summarize([x.outside_fraction for x in sats]))
        if (label, channel) in slot_key:
            key, n_slots = slot_key[(label, channel)]
            by_slots.setdefault(key, {})[n_slots] = entries[-1]
    if not entries:
        raise StatesError("no unit with finished steps in the given run files"
                          + "".join(f"; {n}" for n in dict.fromkeys(notes)))
    entries = _attach_constant_input_controls(entries)
    _attach_consistency(entries, consistencies, notes)
    if opt.joint:
        entries.extend(_joint_entries(joint, opt, notes))
    rows = list(series.values())
    baselines = run_baselines([(u, y) for u, y, _, _ in rows], [sp for _, _, sp, _ in rows],
                              valid=[ok for _, _, _, ok in rows], esn_sizes=opt.esn_sizes,
                              alphas=ANALYSIS_ALPHAS)
    software: dict[str, list[CapacityProfile]] = {}
    if opt.capacities:
        for run, (u, _y, sp, ok) in enumerate(rows):
            _add_capacities(software, {f"ESN-{n}": EchoStateNetwork(n, seed=run).states(u)
                                       for n in opt.esn_sizes}, u, sp, ok, notes, "ESN")
    report = Report(task="NARMA-10", entries=entries, baselines=baselines, split=split,
                    skipped_steps=skipped, notes=list(dict.fromkeys(notes)),
                    capacities=_summaries(software))
    if plots is not None:
        _plot_slot_sweeps(plots, by_slots, baselines)
        _plot_capacities(plots, report)
    return report


def _measure_consistency(reader: RunReader, unit: str, opt: AnalysisOptions,
                         out: list[Consistency], notes: list[str], name: str) -> None:
    """State correlation between run 0 and every later run of a repeated-input recording."""
    runs = list(reader.runs())
    if len(runs) < 2:
        notes.append(f"{name}: {unit}: a repeated-input recording needs two runs")
        return
    first = states(reader, runs[0], [unit], drop_constant=False)
    for run in runs[1:]:
        other = states(reader, run, [unit], drop_constant=False)
        n = min(len(first.X), len(other.X))
        common = [j for j, f in enumerate(first.names) if f in other.names]
        b = other.X[:n, [other.names.index(first.names[j]) for j in common]]
        try:
            out.append(consistency(first.X[:n, common], b, first.valid[:n] & other.valid[:n],
                                   washout=min(opt.washout, n // 5)))
        except TaskError as exc:
            notes.append(f"{name}: run {run}: {unit}: consistency not measured: {exc}")


def _attach_consistency(entries: list[Entry], found: dict, notes: list[str]) -> None:
    """A repeated-input recording's consistency joins the entry of the same unit and
    channel; without one it becomes a note."""
    suffix = " [repeated-input control]"
    for (unit, channel), measured in found.items():
        if not measured:
            continue
        summary = summarize([c.mean_r for c in measured])
        match = next((e for e in entries if e.unit == unit
                      and e.channel == channel[:-len(suffix)]), None)
        if match is not None:
            match.consistency = summary
        else:
            notes.append(f"{unit}/{channel}: consistency (same input replayed): mean state "
                         f"correlation {summary.cell(2)}")


def _add_capacities(profiles: dict[str, list[CapacityProfile]], features: dict[str, np.ndarray],
                    u: np.ndarray, split: Split, valid: np.ndarray, notes: list[str],
                    where: str) -> None:
    """Append each feature set's capacity profile on these rows (a failure becomes a note)."""
    for name, x in features.items():
        try:
            profiles.setdefault(name, []).append(
                capacity_profile(x, u, split, valid=valid, alphas=ANALYSIS_ALPHAS))
        except TaskError as exc:
            notes.append(f"{where}: {name} capacities not measured: {exc}")


def _summaries(profiles: dict[str, list[CapacityProfile]]) -> dict[str, CapacitySummary]:
    return {k: CapacitySummary.from_profiles(v) for k, v in profiles.items() if v}


def _joint_entries(joint: dict, opt: AnalysisOptions, notes: list[str]) -> list[Entry]:
    """Every unit x channel driven by the same input series, scored as one reservoir
    (states side by side, a row usable when it is usable for all of them)."""
    groups: dict[tuple[str, ...], list] = {}
    for (run, _), members in sorted(joint.items(), key=lambda kv: kv[0][0]):
        if len(members) >= 2:
            groups.setdefault(tuple(m[0] for m in members), []).append((run, members))
    out = []
    for names, runs in groups.items():
        per_run, profiles = [], {}
        for run, members in runs:
            n = min(len(m[1].X) for m in members)
            x = np.hstack([m[1].X[:n] for m in members])
            valid = np.logical_and.reduce([m[1].valid[:n] for m in members])
            u, sp = members[0][2][:n], members[0][3]
            y = narma_from_input(u, NARMA_ORDER)
            where = f"run {run}: all units together"
            try:
                per_run.append(hardware_scores(x, u, y, sp, valid=valid, seed=run,
                                               alphas=ANALYSIS_ALPHAS,
                                               check_leakage=opt.check_leakage))
            except ReadoutError as exc:
                notes.append(f"{where} not scored: {exc}")
                continue
            if opt.capacities:
                _add_capacities(profiles, {HARDWARE: x}, u, sp, valid, notes, where)
        if per_run:
            entry = Entry.from_runs(f"all {len(names)}", "states side by side", per_run,
                                    note="one reservoir of " + ", ".join(names))
            entry.capacities.update(_summaries(profiles))
            out.append(entry)
    return out


def _plot_capacities(directory: str | Path, report: Any) -> None:
    """Memory capacity against delay for each unit and channel, beside the software ones;
    and what NARMA-10 needs beside what every one of them has (``NEEDS_PLOT``)."""
    software = {k: c.per_delay for k, c in report.capacities.items()}
    for e in report.entries:
        if not e.capacities:
            continue
        stem = _stem(f"{e.unit}_{e.channel}")
        plot_capacity_vs_delay({**{k: c.per_delay for k, c in e.capacities.items()},
                                **software},
                               Path(directory) / f"{stem}_capacity_vs_delay.png",
                               title=f"{e.unit} {e.channel}")
    caps, scores = needs_inputs(report)
    if caps:
        plot_task_needs(narma_profile(NARMA_ORDER), caps, Path(directory) / NEEDS_PLOT,
                        title="NARMA-10's shares on delayed inputs and their products, beside "
                              "the capacities measured (held-out rows, mean over runs)",
                        scores=scores)


NEEDS_PLOT = "narma10_needs_vs_capacities.png"


def needs_inputs(report: Any, filter_banks: bool = True
                 ) -> tuple[dict[str, CapacitySummary], dict[str, Any]]:
    """Capacities of every entry's hardware states (and, with ``filter_banks``, the first
    filter bank of each unit) and of the software reservoirs, each with the NRMSE of a
    ridge on the same features (the states alone, not "hardware + input"): the inputs of
    ``report.plot_task_needs``."""
    caps: dict[str, CapacitySummary] = {}
    scores: dict[str, Any] = {}
    for e in report.entries:
        name = f"{e.unit} {e.channel}"
        if HARDWARE in e.capacities:
            caps[name] = e.capacities[HARDWARE]
            if HARDWARE in e.readouts:
                scores[name] = e.readouts[HARDWARE]
        bank = f"{FILTER_BANK} ({e.unit})"
        if filter_banks and FILTER_BANK in e.capacities and bank not in caps:
            caps[bank] = e.capacities[FILTER_BANK]
            if FILTER_BANK in e.controls:
                scores[bank] = e.controls[FILTER_BANK]
    caps.update(report.capacities)
    scores.update({k: report.baselines[k] for k in report.capacities if k in report.baselines})
    return caps, scores


def _stem(text: str) -> str:
    return text.replace(" ", "_").replace("+", "-").replace(":", "-").replace("/", "-")


def _attach_constant_input_controls(entries: list) -> list:
    """A constant-input control run scores as the ``"constant input"`` control of the same
    unit and channel when that run is analysed alongside; otherwise it stands on its own."""
    suffix = " [constant-input control]"
    kept = [e for e in entries if not e.channel.endswith(suffix)]
    for ctl in (e for e in entries if e.channel.endswith(suffix)):
        match = next((e for e in kept if e.unit == ctl.unit
                      and e.channel == ctl.channel[:-len(suffix)]), None)
        if match is None:
            kept.append(ctl)
        else:
            match.controls["constant input"] = ctl.readouts["hardware"]
    return kept


def _plot_slot_sweeps(directory: str | Path, by_slots: dict, baselines: dict) -> None:
    """NRMSE against virtual-node slots, for each unit and channel recorded at several."""
    for (unit, channel), entries in by_slots.items():
        if len(entries) < 2:
            continue
        slots = sorted(entries)
        head = [next(iter(entries[n].readouts.values())) for n in slots]
        stem = _stem(f"{unit}_{channel}")
        plot_nrmse_vs_slots(slots, head, Path(directory) / f"{stem}_nrmse_vs_slots.png",
                            baselines=baselines, title=f"{unit} {channel}")


def _plots(directory: str | Path, unit: str, channel: str, run: int, sm: Any,
           scores: dict) -> None:
    stem = _stem(f"{unit}_{channel}")
    head = scores.get("hardware + input") or next(iter(scores.values()))
    plot_prediction(head, Path(directory) / f"{stem}_run{run}_prediction.png",
                    title=f"{unit} {channel} run {run}: hardware + input")
    plot_features(sm.X, sm.names, Path(directory) / f"{stem}_run{run}_features.png")


