"""Closed-loop delay reservoir (Appeltant et al. 2011) on the simulated LV06: NRMSE, memory
capacity and IPC against the node duration theta and the feedback gain.

One simulated LV06 (AxeOS 2.15, live clock) per (theta, gain), driven through the real pool
and HTTP sockets in virtual time: the clock is the actuator, the chip temperature it
reports the fed-back response, ``N_NODES`` virtual nodes on a ``MASK_LEVELS``-level mask,
a delay line of N + 1 slots (the response is read mid-slot, so a command feeds back a
reading (N + 1/2) theta old). Gain 0 is the open-loop channel with the same mask and timing.
theta is scanned against the LV06's physical time constants (from its simulator profile,
``analysis.baselines.unit_time_constants``, cited in ``simulator/profiles.py``): the die
(floored at 2.5 physics ticks), the fan and ``THETA_MID_S`` on the full gain grid; the
regulator (20 s: a point is 1.4 simulated days) and the heatsink (71.5 s: 5 simulated
days, ~300 s of CPU) at ``SLOW_GAINS`` (open loop, 0.3, 0.6), for the machine's budget (a point
costs ~0.6 ms of CPU per simulated second of 0.1 s physics ticks and ~3.6 ms per slot).

The response range is calibrated in each point's warm-up on mid-slot readings of the
loop's own slots with the feedback off; the table gives each point's share of commands
clipped at the channel's range (a loop that mostly clips carries no input). The figure of
memory capacity and degree-2 IPC against theta per gain is written to ``FIGURE`` (or
``BENCH_DELAY_PLOT``; needs matplotlib).

Pre-registration: the mask levels, the response field, the node features the readout reads,
the bias, the input scale and the gain grid were chosen on input series of ``TUNING_SEED``
(``BENCH_DELAY_TUNE=1`` re-runs that pass, ``BENCH_DELAY_GAINS=0,0.2,...`` another gain
grid; on that seed the memory capacity grew with the gain up to ~0.5 and collapsed by 0.9,
where a quarter of the commands clip); N was set by the machine's budget. The table comes
from series of ``REPORT_SEED``, never used for a choice; every grid point is reported.
``BENCH_QUICK=1`` shrinks it to a smoke test without the slow points;
``BENCH_DELAY_POINTS=THETA:GAIN,...`` records only those points (say a slow theta at another
gain; the figure is then drawn only to ``BENCH_DELAY_PLOT``);
``BENCH_DELAY_KEEP=DIR`` keeps the run files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks import Figure, quick

from asic_reservoir.analysis.baselines import HARDWARE_INPUT, INPUT_ONLY, unit_time_constants
from asic_reservoir.analysis.report import (Entry, PlotsUnavailable, Report, gains,
                                            plot_capacity_vs_theta, strongest_memory_control)
from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
from asic_reservoir.experiment.simulated import (REPORT_SEED, TUNING_SEED, DemoJob, DemoSize,
                                                 run_demo)
from asic_reservoir.experiment.channels import DelayLoop
from asic_reservoir.simulator.profiles import PROFILES

MODEL = "lv06"
ACTUATOR = "frequency"
RESPONSE = "chip_temp_c"
N_NODES = 4           # sized for the machine: the cost is slots and simulated seconds
MASK_LEVELS = 4
MIN_THETA_S = 0.25    # 2.5 physics ticks of 0.1 s
THETA_MID_S = 3.0     # a few fan constants, a fraction of the regulator's
GAINS = tuple(float(g) for g in os.environ.get("BENCH_DELAY_GAINS", "0,0.3,0.6,0.9").split(","))
# The slow time scales cost 5-20x a fan-scale point: the two closed loops either side of
# the tuning pass's capacity peak (~0.5, see above), beside the open loop at the same theta.
SLOW_GAINS = (0.0, 0.3, 0.6)
STEPS, RUNS = 300, 5
# The readout reads the node states as Appeltant et al. do: the fed-back response (and the
# power it draws) of each virtual node, with their changes; every feature of a slot (~30,
# share statistics included) over the nodes is more than ~125 training rows support
# (chosen on the tuning seed: lower NRMSE at the shortest theta, equal at the next).
NODE_FEATURES = ("tel.chip_temp_c", "tel.power_w")
FIGURE = Path(__file__).parent / "figures" / "delay_capacity_vs_theta.png"


def points(slow: bool = True) -> list[tuple[float, float]]:
    """The scanned (theta, gain) points, theta in seconds from the profile's constants:
    die, fan and ``THETA_MID_S`` on every gain; with ``slow`` the regulator and the
    heatsink at ``SLOW_GAINS``; ``BENCH_DELAY_POINTS`` replaces the grid."""
    chosen = os.environ.get("BENCH_DELAY_POINTS", "")
    if chosen:
        pairs = [p.split(":") for p in chosen.split(",")]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"BENCH_DELAY_POINTS={chosen!r}: want THETA:GAIN,THETA:GAIN,...")
        return sorted((float(t), float(g)) for t, g in pairs)
    taus = unit_time_constants(PROFILES[MODEL])
    fast = {round(max(MIN_THETA_S, taus["die"]), 3), round(taus["fan"], 3), THETA_MID_S}
    out = [(t, g) for t in fast for g in GAINS]
    if slow:
        out += [(round(taus[k], 3), g) for k in ("regulator", "heatsink")
                for g in SLOW_GAINS]
    return sorted(out)


def label(theta: float, gain: float) -> str:
    return f"delay loop theta={theta:g}s gain={gain:g}"


def job(theta: float, gain: float) -> DemoJob:
    """One point: the LV06 with ``N_NODES`` nodes of ``theta`` seconds and feedback ``gain``
    (warm-up: ``simulated.warmup_seconds``, longer than 300 s only at the slow thetas)."""
    return DemoJob(MODEL, f"t{theta:g}-g{gain:g}", ACTUATOR, slots=N_NODES,
                   step_seconds=N_NODES * theta, mask_levels=MASK_LEVELS,
                   loop=DelayLoop(gain=gain, response=RESPONSE))


def record(size: DemoSize, seed: int, tmp: Path) -> list[tuple[Path, str]]:
    """Every (theta, gain) point, each in its own process and virtual time, longest theta
    first (the slow points set the wall time; the progress bar follows the first); run
    files and labels."""
    jobs = [job(theta, gain) for theta, gain in sorted(points(slow=not quick()), reverse=True)]
    recorded = run_demo(size, tmp, progress=True, plan=jobs, seed=seed, fresh=True)
    return [(path, label(j.step_seconds / j.slots, j.loop.gain))
            for (path, _), j in zip(recorded, jobs)]


def analyze(outputs: list[tuple[Path, str]], features=NODE_FEATURES) -> Report:
    """Score every point on its own (points of a scan are not units of one reservoir)."""
    return analyze_files([p for p, _ in outputs],
                         AnalysisOptions(features=features, joint=False),
                         labels={str(p): lab for p, lab in outputs})


def scanned(report: Report) -> list[tuple[float, float, Entry]]:
    """The report's scan points as (theta, gain, entry), sorted."""
    found = sorted((float(e.channel.split("theta=")[1].split("s ")[0]),
                    float(e.channel.split("gain=")[1].split(" ")[0]), i)
                   for i, e in enumerate(report.entries)
                   if e.channel.startswith("delay loop") and HARDWARE_INPUT in e.readouts)
    return [(theta, gain, report.entries[i]) for theta, gain, i in found]


def table(report: Report) -> str:
    """The scan as a markdown table: NRMSE, gains with intervals, capacities, clipping."""
    taus = unit_time_constants(PROFILES[MODEL])
    head = ("| theta (s) | theta / die, fan tau | gain | hardware + input | input only | strongest "
            "memory control | gain over it (95 %) | memory capacity | IPC 1 | IPC 2 | "
            "commands clipped |")
    lines = [head, "|" + "---|" * 11]
    for theta, gain, e in scanned(report):
        strongest = strongest_memory_control(e)
        over = next((g for g in gains(e) if g.control == strongest), None)
        cap = e.capacities.get("hardware")
        cells = [f"{theta:g}", f"{theta / taus['die']:.3g}, {theta / taus['fan']:.3g}",
                 f"{gain:g}",
                 e.readouts[HARDWARE_INPUT].cell(3), e.controls[INPUT_ONLY].cell(3),
                 f"{strongest}: {e.controls[strongest].cell(3)}" if strongest else "-",
                 f"{over.comparison.interval()}: {over.comparison.verdict}" if over else "-",
                 cap.memory.cell(2) if cap else "-",
                 cap.ipc[1].cell(2) if cap and 1 in cap.ipc else "-",
                 cap.ipc[2].cell(2) if cap and 2 in cap.ipc else "-",
                 clipped(e)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clipped(e: Entry) -> str:
    """The point's share of commands clipped, mean ± std over runs (percent)."""
    c = e.saturation.clipped if e.saturation is not None else None
    if c is None:
        return "-"
    return f"{100 * c.mean:.1f} ± {100 * c.std:.1f} %" if c.n > 1 else f"{100 * c.mean:.1f} %"


def plot(report: Report, path: Path, seed: int) -> Path:
    """Memory capacity and IPC degree 2 against theta, one line per gain (PNG)."""
    curves: dict[str, list] = {}
    for theta, gain, e in scanned(report):
        cap = e.capacities.get("hardware")
        if cap is not None and 2 in cap.ipc:
            name = "open loop (gain 0)" if gain == 0 else f"gain {gain:g}"
            curves.setdefault(name, []).append((theta, cap.memory, cap.ipc[2]))
    taus = unit_time_constants(PROFILES[MODEL])
    return plot_capacity_vs_theta(
        curves, path, references={k: taus[k] for k in ("die", "fan", "regulator", "heatsink")},
        title=f"simulated {MODEL}: {ACTUATOR} driven, {RESPONSE} fed back, N = {N_NODES} "
              f"(input seed {seed}; mean ± std over runs)")


def run() -> list[Figure]:
    size = DemoSize(steps=120, runs=2) if quick() else DemoSize(steps=STEPS, runs=RUNS)
    tune = os.environ.get("BENCH_DELAY_TUNE", "") not in ("", "0")
    seed = TUNING_SEED if tune else REPORT_SEED
    keep = os.environ.get("BENCH_DELAY_KEEP")     # a directory: keep the run files there
    with tempfile.TemporaryDirectory(prefix="bench-delay-") as tmp:
        workdir = Path(keep) if keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = analyze(record(size, seed, workdir))
    print(f"{'tuning' if tune else 'reporting'} pass (input seed {seed}"
          f"{'' if tune else ', never used for a choice'}), {MODEL} {ACTUATOR} with "
          f"{RESPONSE} fed back, N = {N_NODES}, {MASK_LEVELS}-level mask, {size.steps} steps "
          f"x {size.runs} runs:")
    print(report.table())
    print(table(report))
    default = None if tune or os.environ.get("BENCH_DELAY_POINTS") else FIGURE
    figure = os.environ.get("BENCH_DELAY_PLOT") or default
    if figure:
        try:
            print(f"figure: {plot(report, Path(figure), seed)}")
        except PlotsUnavailable as exc:
            print(f"figure not drawn: {exc}")
    figures = []
    for e in report.entries:
        hw = e.readouts.get(HARDWARE_INPUT)
        if hw is None or not e.channel.startswith("delay loop"):
            continue
        cap = e.capacities.get("hardware")
        strongest = strongest_memory_control(e)
        figures.append(Figure(
            f"{e.channel} NRMSE", hw.mean, "NRMSE", strongest or INPUT_ONLY,
            e.controls[strongest or INPUT_ONLY].mean,
            f"MC {cap.memory.mean:.2f}, clipped {clipped(e)}" if cap else ""))
    for name in ("ridge 20 delays", "ESN-100"):
        b = report.baselines[name]
        figures.append(Figure(name, b.mean, "NRMSE", note=f"± {b.std:.3f} ({b.n} runs)"))
    return figures
