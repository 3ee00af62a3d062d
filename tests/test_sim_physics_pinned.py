"""The physics computes what it computed before it was made fast: pinned trajectories.

``fixtures/physics_pinned.npz`` holds trajectories recorded with the straightforward
implementation (one numpy expression per quantity, recomputed at every use) before the
tick was optimised. Every scenario below is replayed with the current code and must agree
to 1e-9 relative (floating-point rounding only): same identities, same noise draws in the
same order, same firmware decisions. The scenarios cover every model at several seeds
through warm-up, idle and hashing, frequency, voltage and fan changes, power cycles,
substeps (ticks that are not a multiple of the control period, long ticks with the
corrector), ambient drift, sampled nonces and an over-temperature stop.

A deliberate change of the physics changes these numbers: re-record them with
``python tests/test_sim_physics_pinned.py --write`` and say why in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from asic_reservoir.simulator.physics import UnitPhysics
from asic_reservoir.simulator.profiles import profile

FIXTURE = Path(__file__).parent / "fixtures" / "physics_pinned.npz"
RTOL = 1e-9
SNAPSHOT_EVERY = 50      # ticks between full per-chip snapshots
HOT_ROOM_C = {"s9": 52.0, "lv06": 40.0, "lbbox": 40.0}


def _scenario_events(model: str, name: str) -> dict[int, list[tuple]]:
    """Tick index -> actions applied before that tick."""
    p = profile(model)
    if name == "stock":
        return {0: [("hashing", True)], 300: [("hashing", False)], 340: [("hashing", True)]}
    if name == "drive":
        freqs = p.freq_options_mhz or (p.freq_min_mhz, p.freq_default_mhz, p.freq_max_mhz)
        if len(freqs) > 4:   # four of them, lowest to highest, so the top clock is reached
            freqs = tuple(freqs[round(k * (len(freqs) - 1) / 3)] for k in range(4))
        ev: dict[int, list[tuple]] = {0: [("hashing", True)]}
        for i, f in enumerate(freqs):
            ev.setdefault(60 + 90 * i, []).append(("frequency", f))
        ev.setdefault(100, []).append(("fan", False, 35.0))
        ev.setdefault(250, []).append(("fan", True, None))
        if p.voltage_options_mv:
            ev.setdefault(180, []).append(("voltage", p.voltage_max_mv))
        ev.setdefault(400, []).append(("powered", False, 100.0 if model == "s9" else None))
        ev.setdefault(430, []).append(("powered", True, None))
        ev.setdefault(430, []).append(("reset",))
        return ev
    if name == "hot":        # hot room (S9), or top clock without fan: the protection acts
        if model == "s9":
            return {0: [("hashing", True)]}
        return {0: [("hashing", True), ("frequency", p.freq_max_mhz), ("fan", False, 0.0)]}
    raise ValueError(name)


SCENARIOS = [(m, s, n) for m in ("s9", "lv06", "lbbox") for s, n in
             ((0, "stock"), (1, "drive"), (2, "drive"), (3, "hot"))]
TICKS = {"stock": [0.1] * 500, "hot": [0.1] * 50 + [1.0] * 200 + [0.1] * 100,
         "drive": ([0.1] * 150 + [0.05, 0.37, 0.13, 2.5, 0.1, 1.3] * 10 + [0.1] * 290)}


def record(model: str, seed: int, name: str) -> dict[str, np.ndarray]:
    """Replay one scenario; per-tick scalars and per-chip snapshots."""
    ph = UnitPhysics(profile(model), seed, ambient_c=HOT_ROOM_C[model] if name == "hot" else 25.0,
                     ambient_drift_c=1.5 if name == "drive" else 0.0, noise_seed=100 + seed)
    ph.sample_nonces = name != "stock"
    if name != "hot":
        ph.set_hashing(True)
        ph.step(300.0)                       # warm-up as a unit does: one long step
        ph.set_hashing(False)
        ph.reset_counters()
    events = _scenario_events(model, name)
    scalars, snaps = [], []
    for i, dt in enumerate(TICKS[name]):
        for action in events.get(i, []):
            kind = action[0]
            if kind == "hashing":
                ph.set_hashing(action[1])
            elif kind == "frequency":
                ph.set_frequency(action[1])
            elif kind == "voltage":
                ph.set_voltage(action[1])
            elif kind == "fan":
                ph.set_fan(auto=action[1], pct=action[2])
            elif kind == "powered":
                ph.set_powered(action[1], fan_override_pct=action[2])
            elif kind == "reset":
                ph.reset_counters()
        ph.step(dt)
        valid = ph.valid_rates_hs()
        if not ph.sample_nonces:             # the unit's path: genuine results reported
            ph.add_nonces(dt, np.floor(valid * dt / ph.hashes_per_floor_nonce * 8.0) / 8.0)
        errors = ph.take_hw_errors()
        row = [ph.time_s, ph.t_die.sum(), ph.t_die.max(), ph.t_sink.sum(), ph.t_vr,
               ph.ambient_c, ph.control_temp_c, float(ph.fan_rpm.sum()), float(ph.fan_pwm.sum()),
               valid.sum(), float(errors), float(ph.hw_errors_chain.sum()),
               float(ph.chain_rates_hs().sum()), ph.average_rate_hs(),
               float(ph.trip is not None), float(ph.powered)]
        if i % 50 == 49:                     # a telemetry read: draws sensor noise in between
            reading = ph.chain_readings()
            row += [sum(c.chip_temp_c for c in reading), ph.input_power_w(),
                    ph.core_voltage_actual_mv(), sum(r for r, _ in ph.fan_readings())]
        else:
            row += [0.0, 0.0, 0.0, 0.0]
        scalars.append(row)
        if i % SNAPSHOT_EVERY == 0:
            snaps.append(np.concatenate([ph.t_die, ph.t_sink, valid, ph.chip_voltage_v(),
                                         ph.chip_error_fraction()]))
    return {"scalars": np.array(scalars), "snaps": np.array(snaps)}


def _key(model: str, seed: int, name: str) -> str:
    return f"{model}-{seed}-{name}"


@pytest.mark.parametrize("model,seed,name", SCENARIOS)
def test_physics_matches_the_pinned_trajectory(model: str, seed: int, name: str) -> None:
    pinned = np.load(FIXTURE)
    now = record(model, seed, name)
    for part in ("scalars", "snaps"):
        want = pinned[f"{_key(model, seed, name)}/{part}"]
        np.testing.assert_allclose(now[part], want, rtol=RTOL, atol=1e-9,
                                   err_msg=f"{model} seed {seed} {name}: {part}")


def test_the_pinned_scenarios_exercise_what_they_claim() -> None:
    """Guard against a fixture that pins nothing: transients, trips and errors happened."""
    pinned = np.load(FIXTURE)
    hot = [pinned[f"{_key(m, 3, 'hot')}/scalars"] for m in ("s9", "lv06", "lbbox")]
    assert all(h[:, 14].max() == 1.0 for h in hot)                  # every hot unit tripped
    drive = pinned[f"{_key('s9', 1, 'drive')}/scalars"]
    assert np.ptp(drive[:, 2]) > 5.0                                # die temperatures moved
    assert drive[:, 15].min() == 0.0                                # a power cycle happened
    assert sum(pinned[f"{_key(m, s, 'drive')}/scalars"][:, 11].max()
               for m in ("s9", "lv06", "lbbox") for s in (1, 2)) > 0   # hardware errors drawn


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_sim_physics_pinned.py --write")
    arrays = {}
    for model, seed, name in SCENARIOS:
        for part, value in record(model, seed, name).items():
            arrays[f"{_key(model, seed, name)}/{part}"] = value
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
