"""PUF evaluation on a simulated fleet: wall time, EER and rank-1 accuracy vs challenge length."""

from __future__ import annotations

import time

from asic_reservoir.puf.identify import Challenge
from asic_reservoir.puf.fleet import FleetOptions, evaluate_simulated_fleet
from asic_reservoir.drivers.clock import run_virtual
from benchmarks import Figure, quick


def run() -> list[Figure]:
    devices, reads = (6, 2) if quick() else (20, 5)
    lengths = (6, 3) if quick() else (12, 6, 3)
    figures: list[Figure] = []
    for steps_per_phase in lengths:
        opts = FleetOptions(devices=devices, reads=reads,
                            challenge=Challenge().shortened(steps_per_phase))
        start = time.perf_counter()
        result = run_virtual(evaluate_simulated_fleet(opts, progress=False))
        wall = time.perf_counter() - start
        m = result["metrics"]
        label = f"sim:{devices} lv06, {result['challenge_steps']} challenge steps"
        eer, acc = m["eer"], m["rank1_accuracy"]
        figures += [
            Figure(f"{label}: wall time", wall, "s"),
            Figure(f"{label}: EER", 100 * eer["value"], "%",
                   note=f"95% CI [{100 * eer['low']:.1f}, {100 * eer['high']:.1f}]"),
            Figure(f"{label}: rank-1 accuracy", 100 * acc["value"], "%", "chance",
                   100 / devices, note=f"95% CI [{100 * acc['low']:.1f}, {100 * acc['high']:.1f}]"),
            Figure(f"{label}: decidability d'", m["decidability"], ""),
        ]
    return figures
