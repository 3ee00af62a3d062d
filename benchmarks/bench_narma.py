"""NARMA-10 on each simulated unit through the real sockets: best channel vs the published
difficulty encoding vs input-delay ridge vs ESN-100, mean ± std over runs.

Every hardware figure is printed beside its same-run input-only control (the same readout
on the input alone); the full table (controls, shuffled states, baselines) follows. Runs
are long (3,000 steps of 5 s per unit and channel, in virtual time with 0.1 s physics ticks);
``BENCH_QUICK=1`` shrinks them to a smoke test whose numbers mean little.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import Figure, quick

from asic_reservoir.cli.experiment import (DEMO_BEST, PUBLISHED, DemoSize, analyze_files,
                                          run_demo)
from asic_reservoir.drivers.clock import run_virtual

# Every channel each model can carry at a 5 s step, best candidate first (see DEMO_BEST).
PASSES = [
    [("s9", "published", PUBLISHED), ("lv06", "published", PUBLISHED),
     ("lbbox", "published", PUBLISHED), ("lv06", "best", DEMO_BEST["lv06"])],
    [("s9", "log", "difficulty-log"), ("lbbox", "log", "difficulty-log"),
     ("lv06", "fan", "fan"), ("lv06", "frequency", "frequency")],
]


def run() -> list[Figure]:
    size = DemoSize(steps=200, runs=2) if quick() else DemoSize(steps=600, runs=5)
    with tempfile.TemporaryDirectory(prefix="bench-narma-") as tmp:
        outputs = []
        for plan in PASSES:
            outputs += run_virtual(run_demo(size, Path(tmp), progress=True, plan=plan))
        report = analyze_files([p for p, _ in outputs], labels={str(p): s for p, s in outputs})
    print(report.table())
    figures = []
    ridge10 = report.baselines["ridge 10 delays"]
    esn = report.baselines["ESN-100"]
    for entry in report.entries:
        head = entry.readouts.get("hardware + input") or next(iter(entry.readouts.values()))
        control = entry.controls.get("input only")
        figures.append(Figure(
            f"{entry.unit} {entry.channel} hw+input", head.mean, "NRMSE",
            "input-only control", control.mean if control else None,
            f"± {head.std:.3f} vs ± {control.std:.3f} ({head.n} runs)" if control else ""))
    figures.append(Figure("ridge 10 input delays", ridge10.mean, "NRMSE", "ESN-100", esn.mean,
                          f"± {ridge10.std:.3f} vs ± {esn.std:.3f} ({esn.n} runs)"))
    return figures
