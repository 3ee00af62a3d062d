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

from asic_reservoir.analysis.actuation import actuation
from asic_reservoir.analysis.baselines import (EchoStateNetwork, filter_bank_features,
                                               time_constants_in_steps)
from asic_reservoir.analysis.readout import Split, evaluate, summarize
from asic_reservoir.analysis.report import CapacitySummary, PlotsUnavailable, plot_task_needs
from asic_reservoir.analysis.runfiles import (ANALYSIS_ALPHAS, AnalysisOptions, analyze_files,
                                              needs_inputs)
from asic_reservoir.analysis.states import states
from asic_reservoir.analysis.tasks import TargetProfile, narma_profile
from asic_reservoir.experiment.runs import RunReader
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
FAR = 3               # "far" terms: every basis term reaching back 3 steps or more


def record(size: DemoSize, workdir: Path) -> tuple[list[tuple[Path, str]], Path]:
    """The open-loop channels and the closed loop, each in its own process."""
    loop = bench_delay.job(LOOP_THETA, LOOP_GAIN)
    jobs = [*OPEN, loop]
    recorded = run_demo(size, workdir, progress=True, plan=jobs, seed=REPORT_SEED, fresh=True)
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


def far_terms(target: TargetProfile) -> list[tuple[int, ...]]:
    """The terms the hardware holds weakly if at all: every term with a delay >= ``FAR``."""
    return [k for k in target.terms if max(k) >= FAR]


DISTANT = ((9,), (10,), (0, 9), (1, 10))   # NARMA-10's four largest terms beyond delay 2
DISTANT_LABEL = "u(t-9), u(t-10), u(t) u(t-9), u(t-1) u(t-10)"
PART_LABEL = "floor from its capacity for NARMA-10's part on u(t-9), u(t-10) and their products"


def part_capacities(target: TargetProfile, files: dict[str, tuple[Path, tuple | None]],
                    keys: list[tuple[int, ...]]) -> dict[str, list[float]]:
    """Per reservoir and run, the held-out capacity (1 - NMSE) of its states for the
    target's part on ``keys``, on the rows and split the analysis uses; the filter bank and
    the ESN-100 on the first file's input series."""
    opt = AnalysisOptions()
    out: dict[str, list[float]] = {}
    for name, (path, features) in files.items():
        with RunReader(path) as reader:
            unit = reader.meta.units[0].name
            taus = time_constants_in_steps(unit, reader.meta.step_seconds)
            for run in reader.runs():
                if actuation(reader, run, unit).flagged():
                    continue
                sm = states(reader, run, [unit])
                sm = sm.select(features) if features else sm
                split = Split.fractions(len(sm.u), min(opt.washout, len(sm.u) // 5),
                                        opt.train, opt.validation)
                sets = {name: sm.X}
                if name == next(iter(files)):
                    sets[f"filter bank + quadratic ({unit})"] = filter_bank_features(sm.u, taus)
                    sets["ESN-100"] = EchoStateNetwork(100, seed=run).states(sm.u)
                y = target.part(sm.u, keys)
                for label, x in sets.items():
                    nrmse = evaluate(x, y, split, alphas=ANALYSIS_ALPHAS, valid=sm.valid).nrmse
                    out.setdefault(label, []).append(max(0.0, 1.0 - nrmse ** 2))
    return out


def part_table(target: TargetProfile, parts: dict[str, dict[str, list[float]]]) -> str:
    """Capacity for each part (mean ± std over runs) and the NRMSE floor it leaves."""
    lines = ["| reservoir | " + " | ".join(f"{label} (share {target.share(keys):.3f}): capacity, "
                                          f"floor" for label, (keys, _) in parts.items()) + " |",
             "|---|" + "---|" * len(parts)]
    names = list(next(iter(parts.values()))[1])
    for name in names:
        cells = []
        for keys, found in parts.values():
            c = summarize(found[name])
            cells.append(f"{c.cell(3)}, {target.nrmse_floor_of_part(keys, c.mean):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run() -> list[Figure]:
    size = DemoSize(steps=200, runs=2) if quick() else DemoSize()
    keep = os.environ.get("BENCH_NEEDS_KEEP")
    target = narma_profile()
    with tempfile.TemporaryDirectory(prefix="bench-needs-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        open_files, loop_file = record(size, workdir)
        caps, scores = capacities(open_files, loop_file)
        files = {f"{p.stem.split('-')[0]} {NAMES[p.stem]}": (p, None) for p, _ in open_files}
        files[next(n for n in caps if "closed loop" in n)] = (loop_file,
                                                               bench_delay.NODE_FEATURES)
        parts = {label: (keys, part_capacities(target, files, keys))
                 for label, keys in ((DISTANT_LABEL, list(DISTANT)),
                                     (f"every term reaching back >= {FAR} steps",
                                      far_terms(target)))}
    print(f"NARMA-10 on the IPC basis ({target.n_rows:,} steps): degree 1 "
          f"{target.by_degree[1]:.3f}, degree 2 {target.by_degree[2]:.3f}, beyond "
          f"{1 - target.total:.3f}; reservoirs on input seed {REPORT_SEED}, {size.runs} runs "
          f"x {size.steps} steps (capacities: held-out, mean over runs):")
    print(table(target, caps, scores))
    print("NARMA-10's part on far terms, as one target for each reservoir's states (held-out "
          "capacity, mean ± std over runs, and the NRMSE floor it leaves):")
    print(part_table(target, parts))
    path = Path(os.environ.get("BENCH_NEEDS_PLOT") or FIGURE)
    title = (f"NARMA-10 (bars) against each reservoir (lines): simulated units, input seed "
             f"{REPORT_SEED}, {size.runs} x {size.steps} steps, capacities on held-out rows")
    try:
        keys, found = parts[DISTANT_LABEL]
        floors = {n: target.nrmse_floor_of_part(keys, summarize(c).mean)
                  for n, c in found.items()}
        drawn = plot_task_needs(target, caps, path, title=title, scores=scores, aim=AIM,
                                part_floors=floors, part_label=PART_LABEL)
        print(f"figure: {drawn}")
    except PlotsUnavailable as exc:
        print(f"figure not drawn: {exc}")
    return [Figure(f"{name}: NRMSE floor", target.nrmse_floor(c.terms), "NRMSE",
                   "measured", scores[name].mean if name in scores else None)
            for name, c in caps.items()]
