"""NARMA-10 on each simulated unit through the real sockets, pre-registered: channels are
chosen on tuning input series, and the reported table comes from fresh series.

1. Tuning pass (input seed ``TUNING_SEED``, ``TUNING`` size: the reporting pass's 600
   steps, so a readout trains on as many rows as it will be reported on, but 2 runs):
   every channel each model can carry at a 5 s step; the best per model is the one with
   the lowest mean "hardware + input" NRMSE. Beside them the closed-loop delay reservoir
   of ``benchmarks delay`` (the LV06's clock driven, its chip temperature fed back, N = 4
   nodes on a 4-level mask): theta at the die and fan constants x gains 0.3 and 0.6 (the
   grid points either side of that scan's tuning-seed memory-capacity peak, ~0.5), each
   read through the node features or every feature; the best of those is the
   closed-loop row.
2. Reporting pass (input seed ``REPORT_SEED``, never used for a choice, ``REPORTING``
   size: 5 runs x 600 steps): the published difficulty encoding on every model, the chosen
   channel and the chosen closed loop, each beside its controls (input only and the
   memory-matched ones), paired 95 % intervals, capacities, and the baselines (mean, delay
   ridges, ESN-100). The closed loop is scored on its own (its features are its own
   choice), not in the "all together" entry.

Schedule: one process per core, each recording one configuration, kept busy to the end:
the tuning recordings first, then the reporting ones as they become ready (the published
encodings' depend on no choice, the chosen loop's wait for the loop candidates' scores, the
chosen channels' and the consistency test's for the open-loop candidates'), longest first
by expected CPU (``cpu_estimate``); the choices and the loop's report are scored in a thread
while the cores record, so only the final open-loop analysis runs alone.
Steps are 5 s (4 theta in the closed loop), in virtual time with 0.1 s physics ticks.
``BENCH_QUICK=1`` shrinks every size to a smoke test whose numbers mean little.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from benchmarks import Figure, bench_delay, quick

from asic_reservoir.analysis.baselines import HARDWARE_INPUT
from asic_reservoir.analysis.report import Report, gains
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.experiment.simulated import (DEMO_BEST, PUBLISHED, REPORT_SEED, TUNING_SEED,
                                                 DemoJob, DemoSize, RecordingPool,
                                                 SimulatedRecording, demo_plan, demo_recording)

TUNING = DemoSize(steps=600, runs=2)
REPORTING = DemoSize(steps=600, runs=5)
QUICK = DemoSize(steps=200, runs=2)
# Every channel each model can carry at a 5 s step (see DEMO_BEST for why S9 and LB-Box
# keep to the pool difficulty).
CANDIDATES = {
    "s9": [PUBLISHED, "difficulty-log"],
    "lbbox": [PUBLISHED, "difficulty-log"],
    "lv06": [PUBLISHED, "fan", "frequency", "frequency+fan:invert=1"],
}
# Closed-loop candidates: the loop of ``benchmarks delay`` (its mask levels, response and
# node features were chosen there on the tuning seed) with theta at the LV06's die and fan
# constants (a slower one costs 3-20x more, see ``benchmarks delay``), gains either side of
# that scan's tuning-seed memory-capacity peak (~0.5), read through the node features or
# every feature (this benchmark trains on ~2x the rows that scan does).
LOOP_THETAS = (0.25, 1.0)
LOOP_GAINS = (0.3, 0.6)
LOOP_FEATURES: dict[str, tuple[str, ...] | None] = {
    "node features": bench_delay.NODE_FEATURES, "every feature": None}


def loop_candidates() -> list[DemoJob]:
    return [bench_delay.job(theta, gain) for theta in LOOP_THETAS for gain in LOOP_GAINS]


def loop_label(job: DemoJob, features: str) -> str:
    return f"{bench_delay.label(job.step_seconds / job.slots, job.loop.gain)}, {features}"


def _analyze_open(outputs: list[tuple[Path, str]]) -> Report:
    return analyze_files([p for p, _ in outputs], labels={str(p): s for p, s in outputs})


def _analyze_loop(path: Path, job: DemoJob, features: str, capacities: bool = True) -> Report:
    """One closed-loop run file on its own, read through ``features`` (the tuning pass
    needs no capacities)."""
    return analyze_files([path], AnalysisOptions(features=LOOP_FEATURES[features], joint=False,
                                                 capacities=capacities),
                         labels={str(path): loop_label(job, features)})


def tuning_plan() -> list[DemoJob]:
    """Every tuning configuration: the open-loop candidates and the loop candidates."""
    plan = [DemoJob(model, f"tune{i}", spec) for model, specs in CANDIDATES.items()
            for i, spec in enumerate(specs)]
    return plan + [replace(job, label=f"tune-{job.label}") for job in loop_candidates()]


def choose_channels(outputs: list[tuple[Path, DemoJob]]) -> dict[str, str]:
    """On the open-loop tuning run files: the best channel per model (where it is not the
    published encoding), by the lowest mean hardware + input NRMSE."""
    report = _analyze_open([(p, job.channel) for p, job in outputs])
    print(f"tuning pass (input seed {TUNING_SEED}):")
    print(report.table())
    best: dict[str, tuple[float, str]] = {}
    for e in report.entries:
        model = e.unit.split(" ")[0]
        if model not in CANDIDATES or HARDWARE_INPUT not in e.readouts:
            continue
        score = e.readouts[HARDWARE_INPUT].mean
        if model not in best or score < best[model][0]:
            best[model] = (score, e.channel)
    return {m: spec for m, (_, spec) in best.items() if spec != PUBLISHED}


def choose_loop(outputs: list[tuple[Path, DemoJob]]) -> tuple[DemoJob, str]:
    """On the closed-loop tuning run files: the best loop (job and readout features) by
    the lowest mean hardware + input NRMSE."""
    loops: list[tuple[float, int, DemoJob, str]] = []
    lines = [f"closed-loop candidates (input seed {TUNING_SEED}):"]
    for i, (path, job) in enumerate(outputs):
        for features in LOOP_FEATURES:
            entry = _analyze_loop(path, job, features, capacities=False).entries[0]
            score = entry.readouts[HARDWARE_INPUT].mean
            clipped = bench_delay.clipped(entry)
            lines.append(f"  {loop_label(job, features)}: hardware + input "
                         f"{entry.readouts[HARDWARE_INPUT].cell(3)}, commands clipped {clipped}")
            loops.append((score, i, job, features))
    print("\n".join(lines))
    _, _, job, features = min(loops, key=lambda c: c[:2])
    return replace(job, label="loop"), features


# CPU of a recording, estimated from this benchmark's measured jobs (README): per simulated
# second of a model's physics and mining, and per command slot (an LV06 slot is a verified
# write and a poll through its HTTP API). Only the order recordings start in depends on it.
TICK_CPU_S = {"s9": 3.0e-3, "lbbox": 2.4e-3, "lv06": 0.6e-3}
SLOT_CPU_S = 3.6e-3
TUNING_FIRST = 1e6        # tuning recordings start before any reporting one


def cpu_estimate(rec: SimulatedRecording) -> float:
    """Expected CPU seconds of a recording (the warm-up runs once, before the first run)."""
    simulated = rec.warmup_seconds + rec.runs * rec.steps * rec.step_seconds
    return simulated * (TICK_CPU_S.get(rec.model, 3e-3) + SLOT_CPU_S * rec.slots / rec.step_seconds)


def _cpu_seconds() -> float:
    """CPU time of this process and every finished child (the recording processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run() -> list[Figure]:
    """Both passes on one process per core, kept busy to the end: the tuning recordings
    first (longest first), then the reporting ones as they become ready (the published
    encodings' at once, the chosen loop's once the loop candidates are scored, the chosen
    channels' once the open-loop candidates are), longest first; each choice and the loop's
    report are scored in a thread of this process while the cores record."""
    tuning, reporting = (QUICK, QUICK) if quick() else (TUNING, REPORTING)
    wall0, cpu0, load = time.perf_counter(), _cpu_seconds(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-narma-") as tmp, RecordingPool() as pool, \
            ThreadPoolExecutor(max_workers=1) as analyst:
        tune_dir, report_dir = Path(tmp) / "tune", Path(tmp) / "report"
        tune_dir.mkdir()
        report_dir.mkdir()

        def add(rec: SimulatedRecording, first: float = 0.0) -> SimulatedRecording:
            pool.add(rec, first + cpu_estimate(rec))
            return rec

        tune = [(add(demo_recording(j, tuning, tune_dir, TUNING_SEED), TUNING_FIRST), j)
                for j in tuning_plan()]
        published = [(add(demo_recording(j, reporting, report_dir, REPORT_SEED)), j)
                     for j in demo_plan() if j.label == "published"]
        waiting = {  # a choice: the tuning recordings it reads
            "loop": [(Path(r.path), j) for r, j in tune if j.loop is not None],
            "channels": [(Path(r.path), j) for r, j in tune if j.loop is None]}
        choices: dict[str, Future] = {}
        chosen_at: dict[str, float] = {}
        rest: list[tuple[SimulatedRecording, DemoJob]] = []
        loop_rec: tuple[SimulatedRecording, DemoJob, str] | None = None
        loop_report: Future | None = None
        finished: set[str] = set()
        while True:
            for name, inputs in list(waiting.items()):
                if all(str(p) in finished for p, _ in inputs):
                    choices[name] = analyst.submit(
                        choose_loop if name == "loop" else choose_channels, inputs)
                    del waiting[name]
            for name in [n for n, f in choices.items() if f.done() and n not in chosen_at]:
                chosen_at[name] = time.perf_counter() - wall0
                if name == "loop":
                    job, features = choices[name].result()
                    loop_rec = (add(demo_recording(job, reporting, report_dir, REPORT_SEED)),
                                job, features)
                else:
                    plan = demo_plan(choices[name].result() or DEMO_BEST)
                    rest = [(add(demo_recording(j, reporting, report_dir, REPORT_SEED)), j)
                            for j in plan if j.label != "published"]
            if loop_rec is not None and loop_report is None and loop_rec[0].path in finished:
                loop_report = analyst.submit(_analyze_loop, Path(loop_rec[0].path), *loop_rec[1:])
            busy = [f for f in choices.values() if not f.done()]
            if not pool.pending and not busy and not waiting and len(chosen_at) == 2 and \
                    loop_report is not None:
                break
            finished.update(r.path for r in pool.wait(also=busy))
        recorded = time.perf_counter() - wall0      # what follows runs alone
        chosen = choices["channels"].result()
        print(f"chosen on seed {TUNING_SEED}: {chosen or 'the published encoding everywhere'}"
              f" (the demo's DEMO_BEST: {DEMO_BEST}); closed loop: "
              f"{loop_label(loop_rec[1], loop_rec[2])}")
        report = _analyze_open([(Path(r.path), j.channel) for r, j in published + rest])
        report.entries.extend(loop_report.result().entries)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    print(f"reporting pass (input seed {REPORT_SEED}, never used for a choice):")
    print(report.table())
    print(f"sizes: tuning {tuning.runs} runs x {tuning.steps} steps, reporting {reporting.runs} "
          f"runs x {reporting.steps} steps; wall time {wall:.0f} s (loop chosen at "
          f"{chosen_at['loop']:.0f} s, channels at {chosen_at['channels']:.0f} s, every "
          f"recording done at {recorded:.0f} s), CPU "
          f"{cpu:.0f} s, {os.cpu_count()} cores, load average {load:.1f} at start")
    figures = [Figure("benchmark wall time", wall, "s", "CPU time", cpu,
                      f"{os.cpu_count()} cores, load average {load:.1f} at start")]
    ridge20 = report.baselines["ridge 20 delays"]
    esn = report.baselines["ESN-100"]
    for entry in report.entries:
        head = entry.readouts.get(HARDWARE_INPUT) or next(iter(entry.readouts.values()))
        for g in gains(entry):
            c = g.comparison
            figures.append(Figure(
                f"{entry.unit} {entry.channel} vs {g.control}", head.mean, "NRMSE",
                g.control, entry.controls[g.control].mean,
                f"gain {c.interval()}: {c.verdict}"))
        cap = entry.capacities.get("hardware")
        bank = entry.capacities.get("filter bank + quadratic")
        if cap is not None:
            figures.append(Figure(f"{entry.unit} {entry.channel} memory capacity",
                                  cap.memory.mean, "", "filter bank" if bank else "",
                                  bank.memory.mean if bank else None,
                                  f"IPC degree 2 {cap.ipc[2].mean:.2f}" if 2 in cap.ipc else ""))
    figures.append(Figure("ridge 20 input delays", ridge20.mean, "NRMSE", "ESN-100", esn.mean,
                          f"± {ridge20.std:.3f} vs ± {esn.std:.3f} ({esn.n} runs)"))
    return figures
