"""What NARMA-10 needs beside what each reservoir has: the task's shares on the IPC basis
(delayed inputs and their products) against the capacities of the demo's channels, the
closed loop, the filter bank and the ESN-100, on the same input series.

The target's profile (``tasks.narma_profile``: 20,000 steps of its standard input) is a
property of the task. The reservoirs are recorded as in the demo, on input series of
``REPORT_SEED`` (never used for a choice), ``DemoSize()`` runs x steps: the LV06's live
channels (``DEMO_BEST``'s frequency + fan, and fan, ``benchmarks narma``'s tuning-seed
choice), the LB-Box's published difficulty encoding (the published encoding with the most
memory in the demo) and the closed loop ``benchmarks narma`` chose on the tuning seed
(theta 0.25 s, gain 0.3, read through the node features). The figure goes to ``FIGURE``
(or ``BENCH_NEEDS_PLOT``); ``BENCH_QUICK=1`` shrinks the runs to a smoke test;
``BENCH_NEEDS_KEEP=DIR`` keeps the run files.

Beside each reservoir it prints the NRMSE floor its capacities leave (``TargetProfile.
nrmse_floor``: no linear readout of those states gets below it) and the measured NRMSE of a
ridge on the same features.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks import Figure, bench_delay, quick

from asic_reservoir.analysis.report import CapacitySummary, PlotsUnavailable, plot_task_needs
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files, needs_inputs
from asic_reservoir.analysis.tasks import TargetProfile, narma_profile
from asic_reservoir.experiment.simulated import (DEMO_BEST, PUBLISHED, REPORT_SEED, DemoJob,
                                                 DemoSize, run_demo)

FIGURE = Path(__file__).parent / "figures" / "narma10_needs_vs_capacities.png"
LOOP_THETA, LOOP_GAIN = 0.25, 0.3      # benchmarks narma's closed-loop choice (tuning seed)
OPEN = (DemoJob("lv06", "best", DEMO_BEST["lv06"]),   # the demo's files: the same recordings
        DemoJob("lv06", "fan", "fan"),
        DemoJob("lbbox", "published", PUBLISHED))
NAMES = {"lv06-best": "frequency + fan (demo)", "lv06-fan": "fan",
         "lbbox-published": "difficulty (published)"}
BANK_UNIT = "lv06"    # the filter bank at the time constants of the unit of the live channels
KEY_TERMS = ((0,), (1,), (2,), (9,), (10,), (0, 0), (0, 9), (1, 10))
AIM = 0.45            # issue 14's NRMSE aim


def record(size: DemoSize, workdir: Path) -> tuple[list[tuple[Path, str]], Path]:
    """The open-loop channels and the closed loop, each in its own process."""
    loop = bench_delay.job(LOOP_THETA, LOOP_GAIN)
    jobs = [*OPEN, loop]
    for j in jobs:
        for old in workdir.glob(f"{j.model}-{j.label}.db*"):
            old.unlink()
    recorded = run_demo(size, workdir, progress=True, plan=jobs, seed=REPORT_SEED)
    return recorded[:-1], recorded[-1][0]


def capacities(open_files: list[tuple[Path, str]], loop_file: Path
               ) -> tuple[dict[str, CapacitySummary], dict]:
    """Capacities and same-feature NRMSE of every reservoir, named for the figure."""
    labels = {str(p): NAMES[p.stem] for p, _ in open_files}
    opened = analyze_files([p for p, _ in open_files], AnalysisOptions(joint=False),
                           labels=labels)
    caps, scores = needs_inputs(opened)
    caps = {k: v for k, v in caps.items()
            if not k.startswith("filter bank") or k.endswith(f"({BANK_UNIT})")}
    loop_name = f"closed loop, theta {LOOP_THETA:g} s, gain {LOOP_GAIN:g}, node features"
    looped = analyze_files([loop_file], AnalysisOptions(features=bench_delay.NODE_FEATURES,
                                                        joint=False),
                           labels={str(loop_file): loop_name})
    loop_caps, loop_scores = needs_inputs(looped, filter_banks=False)
    for name, cap in loop_caps.items():
        if loop_name in name:      # its ESN is the open report's (same input series)
            caps[name], scores[name] = cap, loop_scores[name]
    return _ordered(caps), scores


def _ordered(caps: dict[str, CapacitySummary]) -> dict[str, CapacitySummary]:
    """Hardware first, then the filter bank(s), then the software reservoirs."""
    rank = lambda n: 2 if n.startswith("ESN") else 1 if n.startswith("filter bank") else 0
    return dict(sorted(caps.items(), key=lambda kv: rank(kv[0])))


def table(target: TargetProfile, caps: dict[str, CapacitySummary], scores: dict) -> str:
    """Per reservoir: capacity on NARMA-10's main terms, the NRMSE floor its capacities
    leave and the measured NRMSE of a ridge on the same features."""
    keys = "".join(f" | {'P2 ' if len(k) == 2 and k[0] == k[1] else ''}"
                   f"{' '.join(f'u(t-{d})' if d else 'u(t)' for d in sorted(set(k)))}"
                   for k in KEY_TERMS)
    lines = ["| reservoir" + keys + " | NRMSE floor | NRMSE measured |",
             "|---" * (len(KEY_TERMS) + 3) + "|",
             "| NARMA-10's share" + "".join(f" | {target.terms.get(k, 0.0):.3f}"
                                             for k in KEY_TERMS) + " | - | - |"]
    for name, c in caps.items():
        s = scores.get(name)
        lines.append(f"| {name}" + "".join(f" | {c.terms.get(k, 0.0):.2f}" for k in KEY_TERMS)
                     + f" | {target.nrmse_floor(c.terms):.3f} | "
                     + (s.cell(3) if s is not None else "-") + " |")
    return "\n".join(lines)


def run() -> list[Figure]:
    size = DemoSize(steps=200, runs=2) if quick() else DemoSize()
    keep = os.environ.get("BENCH_NEEDS_KEEP")
    target = narma_profile()
    with tempfile.TemporaryDirectory(prefix="bench-needs-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        caps, scores = capacities(*record(size, workdir))
    print(f"NARMA-10 on the IPC basis ({target.n_rows:,} steps): degree 1 "
          f"{target.by_degree[1]:.3f}, degree 2 {target.by_degree[2]:.3f}, beyond "
          f"{1 - target.total:.3f}; reservoirs on input seed {REPORT_SEED}, {size.runs} runs "
          f"x {size.steps} steps (capacities: mean over runs, terms below 9/n_test as 0):")
    print(table(target, caps, scores))
    path = Path(os.environ.get("BENCH_NEEDS_PLOT") or FIGURE)
    title = (f"NARMA-10 (bars) against each reservoir (lines): simulated units, input seed "
             f"{REPORT_SEED}, {size.runs} x {size.steps} steps, capacities on held-out rows")
    try:
        print(f"figure: {plot_task_needs(target, caps, path, title=title, scores=scores, aim=AIM)}")
    except PlotsUnavailable as exc:
        print(f"figure not drawn: {exc}")
    return [Figure(f"{name}: NRMSE floor", target.nrmse_floor(c.terms), "NRMSE",
                   "measured", scores[name].mean if name in scores else None)
            for name, c in caps.items()]
