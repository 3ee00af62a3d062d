"""Operating points by solving the steady state, not by simulating to it.

For one unit's identity and settings, :func:`settle` finds where the firmware's fan loop
and the thermal network come to rest (the die temperatures that reproduce themselves
through power, leakage, the string's voltage sharing, heatsinks and air), tells whether
that rest point is stable, and whether the firmware's protection would stop hashing
there. When it would, :func:`settle` follows the quasi-static path of a unit heating up
towards that state and returns the point where the protection trips: the temperatures the
dies reach before hashing stops. The property test over identities and the validation
table use it; the dynamics in :mod:`asic_reservoir.simulator.physics` converge to the same
points (a test compares them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asic_reservoir.simulator.control import BmminerFan, Sensors, fan_law, protection
from asic_reservoir.simulator.physics import UnitPhysics

__all__ = ["OperatingPoint", "Outcome", "solve_at", "settle"]

RUNAWAY_C = 400.0           # a fixed-point iterate past this is a thermal runaway
TOLERANCE_C = 1e-6
MAX_ITERATIONS = 200


@dataclass(frozen=True)
class OperatingPoint:
    """Steady state at a fixed fan pwm and ambient (sensor values: offsets, no noise)."""

    pwm: float
    ambient_c: float
    t_die: np.ndarray
    t_sink: np.ndarray
    power_w: np.ndarray
    chip_sensor_c: np.ndarray       # per chain: hottest sensed die as the firmware reads it
    board_c: np.ndarray             # per chain: PCB sensor
    vr_c: float
    fan_rpm: np.ndarray
    input_power_w: float
    spectral_radius: float          # of dT/dT at fixed airflow; < 1: a stable point
    leak_gain: float                # max_i dP_leak,i/dT_i x R_self,i (as on a regulated rail)
    net_gain: float                 # max_i dP_i/dT_i x R_self,i (with the string's feedback)

    @property
    def stable(self) -> bool:
        return self.spectral_radius < 1.0

    def sensors(self) -> Sensors:
        return Sensors(chip_c=self.chip_sensor_c, board_c=self.board_c, vr_c=self.vr_c,
                       fan_rpm=self.fan_rpm)


@dataclass(frozen=True)
class Outcome:
    """Where a unit ends up: resting at ``point`` while hashing, or stopped by ``stopped``.

    ``t_die_max_c`` is the hottest any die gets: at the rest point, or on the way until the
    protection stops hashing. Neither rest point nor stop within the simulated time:
    ``point`` and ``stopped`` are both None.
    """

    t_die_max_c: float
    stopped: str | None
    point: OperatingPoint | None = None

    @property
    def safe(self) -> bool:
        """Stable and hashing, or stopped by the firmware, with every die under its limit."""
        return False if self.point is None and self.stopped is None else True


def _fan(ph: UnitPhysics, pwm: float) -> tuple[np.ndarray, float]:
    p = ph.profile
    rpm = ph.fan_target_rpm(pwm)
    return rpm, float(np.mean(rpm) / p.fan_max_rpm)


def solve_at(ph: UnitPhysics, pwm: float, ambient_c: float | None = None,
             start: np.ndarray | None = None, stability: bool = True) -> OperatingPoint | None:
    """Steady state of ``ph`` (its settings, hashing as set) at fan ``pwm`` and ``ambient_c``;
    None when no fixed point exists below :data:`RUNAWAY_C` (thermal runaway).
    ``stability=False`` skips the eigenvalues (spectral_radius is then NaN)."""
    p = ph.profile
    ambient = ph.ambient.mean_c if ambient_c is None else float(ambient_c)
    rpm, flow = _fan(ph, pwm)
    m = ph.thermal_matrix(flow)
    c, k = p.n_chains, p.chips_per_chain
    t = np.full(p.n_chips, ambient) if start is None else start.copy()
    eye = np.eye(k)
    for _ in range(MAX_ITERATIONS):
        power = ph.electrical(t)[0]
        resid = ambient + np.einsum("cij,cj->ci", m, power.reshape(c, k)).reshape(-1) - t
        if np.max(np.abs(resid)) < TOLERANCE_C:
            break
        jac = eye - m @ ph.power_jacobian(t)                    # Newton on T = T_a + M P(T)
        t = t + np.linalg.solve(jac, resid.reshape(c, k, 1)).reshape(-1)
        if not np.all(np.isfinite(t)) or t.max() > RUNAWAY_C:
            return None
    else:
        return None
    power, leak, _, slope = ph.electrical(t)
    radius = math.nan
    if stability:
        loop = m @ ph.power_jacobian(t)                         # dT/dT at fixed airflow
        radius = float(np.max(np.abs(np.linalg.eigvals(loop))))
    r_self = np.concatenate([np.diag(m[ci]) for ci in range(c)])
    t_sink = t - power * p.r_die_sink * ph.variation.r_thermal
    var = ph.variation
    sensed = ph._sensed.reshape(c, k)
    chip = (t + var.chip_sensor_offset_c).reshape(c, k)
    sink = t_sink.reshape(c, k)
    chip_sensor = np.array([chip[ci][sensed[ci]].max() for ci in range(c)])
    board = np.array([sink[ci][sensed[ci]].max() for ci in range(c)]) + var.board_sensor_offset_c
    input_w = ph.input_power_w(power, flow)
    vr = (ambient + input_w * (1.0 - p.psu_efficiency) * p.r_vr_air + var.vr_sensor_offset_c
          if p.vr_sensor else 0.0)                               # no sensor: reads 0.0
    return OperatingPoint(
        pwm=float(pwm), ambient_c=ambient, t_die=t, t_sink=t_sink, power_w=power,
        chip_sensor_c=chip_sensor, board_c=board, vr_c=float(vr), fan_rpm=rpm,
        input_power_w=input_w, spectral_radius=radius,
        leak_gain=float(np.max(leak / p.leakage_efold_c * r_self)),
        net_gain=float(np.max(slope * r_self)))


def _auto_pwm(ph: UnitPhysics) -> float:
    """pwm at which the firmware's automatic loop comes to rest."""
    p = ph.profile
    law = fan_law(p)
    hold = law.holds(ph.temp_target_c)

    def excess(pwm: float, start: np.ndarray | None) -> tuple[float, np.ndarray | None]:
        op = solve_at(ph, pwm, start=start, stability=False)
        if op is None:
            return math.inf, None
        return float(np.max(op.chip_sensor_c)) - hold, op.t_die

    lo, hi = float(p.fan_min_pwm), 100.0
    f_hi, t_hi = excess(hi, None)
    if f_hi >= 0:
        return hi
    f_lo, t_lo = excess(lo, t_hi)
    if f_lo <= 0:
        return lo
    # the hottest sensor falls monotonically with pwm: regula falsi (Illinois) on it
    side = 0
    while hi - lo > 0.25:
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo) if math.isfinite(f_lo) else 0.5 * (lo + hi)
        mid = min(max(mid, lo + 0.1), hi - 0.1)
        f_mid, t_mid = excess(mid, t_hi)
        if f_mid > 0:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi, t_hi = mid, f_mid, t_mid
            if side == 1 and math.isfinite(f_lo):
                f_lo *= 0.5
            side = 1
        if abs(f_mid) < 0.01:
            break
    pwm = hi if f_mid > 0 else mid
    if isinstance(law, BmminerFan):
        op = solve_at(ph, pwm, start=t_hi, stability=False)
        if op is None or np.max(op.chip_sensor_c) >= law.MAX_FAN_TEMP or \
                np.max(op.board_c) >= law.MAX_FAN_PCB_TEMP:
            pwm = 100.0                                 # bmminer's full-fan rules
    return pwm


def settle(ph: UnitPhysics, max_s: float = 7200.0) -> Outcome:
    """Where ``ph`` (its settings and ambient, hashing) comes to rest, or is stopped.

    A rest point that the firmware allows is solved for. Otherwise the unit is simulated
    from where it would be running (the automatic fan's rest point when the fan is manual,
    else a cold start) until its protection stops it, recording the hottest die.
    """
    ph.set_hashing(True)
    guard = protection(ph.profile)
    automatic = ph.fan_auto or fan_law(ph.profile).overrides_manual
    pwm = _auto_pwm(ph) if automatic else ph.fan_manual_pct
    op = solve_at(ph, pwm)
    if op is not None and op.stable and not guard.would_trip(op.sensors()):
        return Outcome(float(op.t_die.max()), None, op)
    start = None
    if not automatic:
        auto = solve_at(ph, _auto_pwm(_with_auto(ph)))
        if auto is not None and not guard.would_trip(auto.sensors()):
            start = auto
    return _heat_until_stop(ph, start, max_s)


def _with_auto(ph: UnitPhysics) -> UnitPhysics:
    twin = _twin(ph)
    twin.set_fan(auto=True)
    return twin


def _twin(ph: UnitPhysics) -> UnitPhysics:
    """A fresh unit of the same identity and settings (no ambient drift, fixed noise)."""
    twin = UnitPhysics(ph.profile, ph.seed, ph.ambient.mean_c, noise_seed=0)
    twin.set_frequency(float(ph.freq_mhz.mean()))
    twin.set_voltage(ph.voltage_mv)
    twin.set_temp_target(ph.temp_target_c)
    twin.set_fan(auto=ph.fan_auto, pct=ph.fan_manual_pct)
    twin.set_hashing(True)
    return twin


def _heat_until_stop(ph: UnitPhysics, start: OperatingPoint | None, max_s: float) -> Outcome:
    twin = _twin(ph)
    if start is not None:
        twin.t_die, twin.t_sink = start.t_die.copy(), start.t_sink.copy()
        twin.fan_rpm = start.fan_rpm.copy()
    hottest = float(twin.t_die.max())
    step = twin.profile.control_period_s
    while twin.time_s < max_s:
        twin.step(step)
        hottest = max(hottest, float(twin.t_die.max()))
        if twin.trip is not None:
            return Outcome(hottest, twin.trip)
    return Outcome(hottest, None)
