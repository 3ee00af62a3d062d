"""Thermal validation: simulated stock readings at 25 C beside published field readings.

For each model, the stock operating point of many identities (process-variation seeds) is
solved (simulator/equilibrium.py: the firmware's fan loop at rest, sensors as the firmware
reads them, no noise); hashrate and power come from one simulated run of the unit's 5 s /
20 s / 60 s window. Each figure is the median over identities, with the identities' range
and the published reading in the note (ratio: median / middle of the published range, where
one exists). BENCH_QUICK=1 uses fewer identities.
"""

from __future__ import annotations

import numpy as np

from asic_reservoir.simulator.equilibrium import settle
from asic_reservoir.simulator.physics import UnitPhysics
from asic_reservoir.simulator.profiles import PROFILES
from benchmarks import Figure, quick

AMBIENT_C = 25.0
# Published readings: (low, high, source). None: nothing published was found.
FIELD = {
    "s9": {"board_c": (49.0, 65.0, "public S9 captures (protocols.md)"),
           "chip_c": (65.0, 87.0, "public S9 captures (protocols.md)"),
           "fan_rpm": (2900.0, 5900.0, "public S9 captures (protocols.md)"),
           "power_w": (1323.0, 1323.0, "Bitmain spec 1323 W"),
           "rate_ghs": (13500.0, 14000.0, "Bitmain spec 13.5 TH/s; 14.0 ideal at 650 MHz")},
    "lv06": {"chip_c": (60.0, 60.0, "ESP-Miner default temptarget 60 (the PID's set point)"),
             "power_w": (13.0, 13.0, "vendor listing ~13 W (recalled, estimate)"),
             "rate_ghs": (500.0, 500.0, "vendor listing ~500 GH/s (recalled, estimate)")},
    "lbbox": {"power_w": (165.0, 165.0, "Goldshell listing 165 W (recalled, estimate)"),
              "rate_ghs": (175.0, 175.0, "Goldshell listing 175 GH/s (recalled, estimate)")},
}


def _hashrate_ghs(model: str, seed: int) -> float:
    ph = UnitPhysics(PROFILES[model], seed, AMBIENT_C, noise_seed=seed)
    ph.set_hashing(True)
    ph.step(1800.0)
    ph.reset_counters()
    ph.step(600.0)
    return ph.average_rate_hs() / 1e9


def readings(model: str, seeds: range) -> dict[str, np.ndarray]:
    """Per-identity stock readings at 25 C (sensors as the firmware reads them)."""
    out: dict[str, list[float]] = {k: [] for k in
                                   ("board_c", "chip_c", "fan_rpm", "power_w", "die_max_c",
                                    "air_rise_k")}
    p = PROFILES[model]
    for seed in seeds:
        result = settle(UnitPhysics(p, seed, AMBIENT_C, noise_seed=0))
        op = result.point
        if op is None or result.stopped:
            raise RuntimeError(f"{model} seed {seed}: no stock operating point ({result})")
        flow = float(np.mean(op.fan_rpm) / p.fan_max_rpm)
        out["board_c"].append(float(np.max(op.board_c)))
        out["chip_c"].append(float(np.max(op.chip_sensor_c)))
        out["fan_rpm"].append(float(np.mean(op.fan_rpm)))
        out["power_w"].append(op.input_power_w)
        out["die_max_c"].append(float(op.t_die.max()))
        out["air_rise_k"].append(float(op.power_w.sum() / (p.airflow_heat_capacity * flow)))
    return {k: np.array(v) for k, v in out.items()}


def run() -> list[Figure]:
    n = 8 if quick() else 40
    figures = []
    for model in ("s9", "lv06", "lbbox"):
        values = readings(model, range(n))
        values["rate_ghs"] = np.array([_hashrate_ghs(model, s) for s in range(min(n, 4))])
        for key, unit in (("board_c", "C"), ("chip_c", "C"), ("fan_rpm", "rpm"),
                          ("power_w", "W"), ("rate_ghs", "GH/s"), ("die_max_c", "C"),
                          ("air_rise_k", "K")):
            v = values[key]
            field = FIELD[model].get(key)
            note = f"sim {v.min():.4g}-{v.max():.4g} over {len(v)} identities"
            ref_name, ref = "", None
            if field is not None:
                lo, hi, src = field
                ref_name, ref = "published", 0.5 * (lo + hi)
                note += f"; published {lo:g}-{hi:g} ({src})" if lo != hi else f"; {src}"
            else:
                note += "; no published reading found"
            figures.append(Figure(f"{model} {key} at {AMBIENT_C:g} C (median)", float(np.median(v)),
                                  unit, ref_name, ref, note))
    return figures
