"""Where the open loop's square P2(u(t)) comes from: the LV06's physics alone, driven
with the slots of ``benchmarks delay``'s open loop at theta 0.25 s, with counterfactuals.

The unit's physics (``simulator.physics.UnitPhysics``, the demo's LV06 identity) runs
without firmware, sockets or pool: per step, N = 4 slots of ``THETA`` seconds whose clock is
``clip(1/2 + m_k (x - 1/2), 0, 1)`` of the 400-575 MHz range (the mask of the delay
benchmark's runs), the input power and chip temperature read mid-slot, as the loop reads
them. A readout of those readings (and their changes) is scored for P2(u(t)) and the other
IPC terms, as ``analyze`` scores recorded states, for these variants (each a diagnosis of
the physics as it is, nothing here changes the simulator):

- as is: read as the LV06's firmware reads its board (power in the INA260's 10 mW steps,
  the chip temperature in whole degrees, ``temp_reading_step_c`` / ``power_reading_step_w``
  of the profile);
- read exactly (both steps 0: how the simulator read them before it modelled the
  firmware's read path); the counterfactuals below start from these exact readings:
- the fan held at a fixed duty instead of the firmware's PID;
- the leakage's temperature dependence removed (a profile with an infinite e-fold
  temperature: leakage frozen at its 60 C value);
- Gaussian noise of ``NOISE_W`` on the exact power reading;
- the nodes read at the end of their slot instead of mid-slot;
- the loop closed at gain 0.3 (the fed-back response: the chip temperature as read, or
  the true die temperature, normalised on the range of an open-loop pass).

Second, the demo's live channels (``fan``, ``frequency+fan:invert=1``: one 5 s step per input,
read at the step's end through the firmware's read path), whose square survives that read
path: P2(u(t)) from the temperature, the power and the fan's tachometer apart, from the
power and the tachometer together and from all three; as is, with the heatsink-to-air
resistance made independent of the airflow (``r_sink_air_still`` set to ``r_sink_air_full``:
the fan then moves air but no heat), and with no overhead power (``overhead_power_w`` 0: the
fan, whose share of it grows with the cube of its speed, then draws nothing).

``BENCH_QUICK=1`` shortens the runs.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

import numpy as np

from benchmarks import Figure, quick

from asic_reservoir.analysis.readout import Split
from asic_reservoir.analysis.runfiles import ANALYSIS_ALPHAS
from asic_reservoir.analysis.tasks import information_processing_capacity
from asic_reservoir.experiment.simulated import DEMO_SEEDS, REPORT_SEED
from asic_reservoir.simulator.physics import UnitPhysics
from asic_reservoir.simulator.profiles import PROFILES, Profile

MODEL = "lv06"
MASK = (-1 / 3, 1 / 3, 1.0, -1 / 3)     # the 4-level mask the delay benchmark's runs drew
THETA = 0.25
LO_MHZ, HI_MHZ = 400.0, 575.0
WARMUP_S = 300.0
NOISE_W = (0.001, 0.01)
FAN_PCT = 40.0
STEPS = 300
SEEDS = (REPORT_SEED, REPORT_SEED + 1)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    frozen_leakage: bool = False
    fan_pct: float | None = None
    noise_w: float = 0.0
    gain: float = 0.0
    true_temperature: bool = False
    read_at: float = 0.5          # where in its slot a node is read (fraction of theta)
    exact: bool = True            # readings without the firmware's steps


VARIANTS = (
    Variant("as is (the firmware's read path)", exact=False),
    Variant("read exactly"),
    Variant(f"fan held at {FAN_PCT:g} %", fan_pct=FAN_PCT),
    Variant("read at the slot's end", read_at=1.0),
    Variant("leakage independent of temperature", frozen_leakage=True),
    Variant("leakage frozen, fan held", frozen_leakage=True, fan_pct=FAN_PCT),
    *(Variant(f"{w * 1000:g} mW noise on the power reading", noise_w=w) for w in NOISE_W),
    Variant("closed loop, gain 0.3, chip temperature as read", gain=0.3, exact=False),
    Variant("closed loop, gain 0.3, true die temperature", gain=0.3, true_temperature=True),
)


def record(v: Variant, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Input and per-slot (power, chip temperature) readings of one run of ``v``."""
    profile = PROFILES[MODEL]
    if v.frozen_leakage:
        profile = dataclasses.replace(profile, leakage_efold_c=float("inf"))
    if v.exact:
        profile = dataclasses.replace(profile, temp_reading_step_c=0.0, power_reading_step_w=0.0)
    ph = UnitPhysics(profile, DEMO_SEEDS[MODEL], ambient_c=25.0, noise_seed=seed)
    ph.hashing = True
    if v.fan_pct is not None:
        ph.set_fan(auto=False, pct=v.fan_pct)
    rng = np.random.default_rng([seed, 1])
    u = rng.uniform(0.0, 0.5, steps)
    x = u / 0.5
    n = len(MASK)
    reading = lambda: float(ph.t_die[0] if v.true_temperature else ph.chip_temps_c()[0])
    ph.set_frequency(0.5 * (LO_MHZ + HI_MHZ))
    ph.step(WARMUP_S)
    lo_hi = _open_loop_range(ph, rng, reading) if v.gain else (0.0, 1.0)
    fed = deque([0.0] * (n + 1), maxlen=n + 1)   # the delay line: N + 1 slots
    out = np.zeros((steps, 2 * n))
    for t in range(steps):
        for k, m in enumerate(MASK):
            c = min(max(0.5 + v.gain * fed[0] + m * (x[t] - 0.5), 0.0), 1.0)
            ph.set_frequency(LO_MHZ + c * (HI_MHZ - LO_MHZ))
            ph.step(THETA * v.read_at)
            power = ph.power_reading_w() + (rng.normal(0.0, v.noise_w) if v.noise_w else 0.0)
            temp = reading()
            out[t, 2 * k:2 * k + 2] = power, temp
            fed.append((temp - lo_hi[0]) / (lo_hi[1] - lo_hi[0]) - 0.5)
            ph.step(THETA * (1.0 - v.read_at))
    return u, out


def _open_loop_range(ph: UnitPhysics, rng: np.random.Generator, reading) -> tuple[float, float]:
    """The response's range over 40 open-loop steps of masked input (the loop's warm-up)."""
    seen = []
    for _ in range(40):
        x = rng.uniform()
        for m in MASK:
            ph.set_frequency(LO_MHZ + (0.5 + m * (x - 0.5)) * (HI_MHZ - LO_MHZ))
            ph.step(THETA / 2)
            seen.append(reading())
            ph.step(THETA / 2)
    half = seen[len(seen) // 2:]
    return min(half), max(half)


LIVE_STEP_S = 5.0
FAN_LO_PCT, FAN_HI_PCT = 30.0, 100.0      # the fan channel's default range
LIVE_VARIANTS: dict[str, Callable[[Profile], Profile]] = {
    "as modelled": lambda p: p,
    "air resistance independent of airflow":
        lambda p: dataclasses.replace(p, r_sink_air_still=p.r_sink_air_full),
    "no overhead (fan) power": lambda p: dataclasses.replace(p, overhead_power_w=0.0),
}


def record_live(channel: str, variant: str, seed: int, steps: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Input and per-step (temperature, power, fan rpm) readings of a live channel, read as
    the firmware reads them, on the profile changed as ``LIVE_VARIANTS[variant]`` says."""
    ph = UnitPhysics(LIVE_VARIANTS[variant](PROFILES[MODEL]), DEMO_SEEDS[MODEL], ambient_c=25.0, noise_seed=seed)
    ph.hashing = True
    ph.set_fan(auto=False, pct=0.5 * (FAN_LO_PCT + FAN_HI_PCT))
    ph.step(WARMUP_S)
    u = np.random.default_rng([seed, 2]).uniform(0.0, 0.5, steps)
    out = np.zeros((steps, 3))
    for t, x in enumerate(u / 0.5):
        if channel == "fan":
            ph.set_fan(pct=FAN_LO_PCT + x * (FAN_HI_PCT - FAN_LO_PCT))
        else:
            ph.set_frequency(LO_MHZ + x * (HI_MHZ - LO_MHZ))
            ph.set_fan(pct=FAN_LO_PCT + (1.0 - x) * (FAN_HI_PCT - FAN_LO_PCT))
        ph.step(LIVE_STEP_S)
        out[t] = ph.chip_temps_c()[0], ph.power_reading_w(), round(ph.fan_readings()[0][0])
    return u, out


def capacities(u: np.ndarray, readings: np.ndarray, columns: list[int]) -> dict:
    """IPC of the chosen readings and their changes per step, degree <= 2, delays <= 3."""
    z = readings[:, columns]
    z = np.hstack([z, np.vstack([np.zeros((1, z.shape[1])), np.diff(z, axis=0)])])
    c = information_processing_capacity(z, u, Split.fractions(len(u), 50, 0.5, 0.2),
                                        max_delay=3, max_degree=2, alphas=ANALYSIS_ALPHAS)
    return {"P1(t)": c.terms[(0,)], "P1(t-1)": c.terms[(1,)], "P2(t)": c.terms[(0, 0)],
            "degree 2": c.by_degree[2]}


def run() -> list[Figure]:
    steps = 120 if quick() else STEPS
    power = list(range(0, 2 * len(MASK), 2))
    everything = list(range(2 * len(MASK)))
    print(f"simulated {MODEL} physics alone, N = {len(MASK)} slots of {THETA:g} s, mask "
          f"{[round(m, 3) for m in MASK]}, reads mid-slot, {steps} steps x {len(SEEDS)} runs "
          f"(input seeds {SEEDS}); held-out capacities, mean over runs:")
    print("| variant | P2(u(t)): power readings | P2(u(t)): power + temperature | "
          "temperature alone | P1(u(t-1)), power |")
    print("|---|---|---|---|---|")
    figures = []
    for v in VARIANTS:
        rows = [(capacities(u, r, power), capacities(u, r, everything),
                 capacities(u, r, [c + 1 for c in power]))
                for u, r in (record(v, s, steps) for s in SEEDS)]
        p2 = [np.mean([r[i]["P2(t)"] for r in rows]) for i in range(3)]
        mem = np.mean([r[0]["P1(t-1)"] for r in rows])
        print(f"| {v.name} | {p2[0]:.2f} | {p2[1]:.2f} | {p2[2]:.2f} | {mem:.2f} |")
        figures.append(Figure(f"P2(u(t)), {v.name}", float(p2[0]), "capacity"))
    print(f"\nthe demo's live channels, physics alone: one {LIVE_STEP_S:g} s step per input, read "
          f"at its end through the firmware's read path, {steps} steps x {len(SEEDS)} runs:")
    print("| channel | physics | P2(u(t)): temperature | power | fan rpm | power + rpm | "
          "temperature + rpm | all three |")
    print("|---|---|---|---|---|---|---|---|")
    for channel in ("fan", "frequency + fan inverted"):
        for variant in LIVE_VARIANTS:
            runs = [record_live(channel, variant, s, steps) for s in SEEDS]
            p2 = [np.mean([capacities(u, r, cols)["P2(t)"] for u, r in runs])
                  for cols in ([0], [1], [2], [1, 2], [0, 2], [0, 1, 2])]
            print(f"| {channel} | {variant} | " + " | ".join(f"{v:.2f}" for v in p2) + " |")
            figures.append(Figure(f"P2(u(t)), {channel}, {variant}", float(p2[5]), "capacity"))
    return figures
