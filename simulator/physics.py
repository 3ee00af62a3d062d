"""Chip, power, thermal, fan and error physics of one simulated unit (vectorised per chip).

Model (all parameters from :mod:`asic_reservoir.simulator.profiles`, each with its source):

- **Hashrate** of chip *i*: ``f_i x (hashes_per_clock - bad_cores_i)`` while it has work.
- **Electrical**: each chip is a conductance ``G_i = C_eff f_i a + G_leak,i(T_i)`` (switched
  capacitance times clock and activity, plus leakage ``P_leak,ref s_i exp((T - T_ref)/T_e) /
  V0^2``), so ``P_i = G_i V_i^2``. Regulated units hold ``V_i`` at the set voltage. Series
  boards (S9, LB-Box) stack ``voltage_domains`` domains of parallel chips on one string at
  ``domains x V_set``: a domain's voltage is ``I / G_domain``, so a hotter, leakier domain
  takes a smaller share of the string voltage and its power *falls*. That negative feedback
  is why a series board has a stable operating point for every identity.
- **Timing margin**: ``f_max,i = f_ref x speed_i x g(V_i)/g(V0) x (1 - k_T (T_die - T_ref))``
  with the alpha-power law ``g(V) = (V - Vth)^alpha / V``. The fraction of a chip's
  returned nonces that are hardware errors rises as a logistic function of
  ``(f - f_max)/(width x f_max)`` above a small floor.
- **Thermal network** per chip: die -C_die- (R_die_sink) - heatsink segment -C_sink-
  (R_sink_air(fan)) - local air, with conductance ``g_lateral`` between the heatsink
  segments of neighbouring chips; the air stream of each chain warms along the board by
  the heat of the chips upstream (``m_dot c_p``). Conductance to air grows with
  airflow^0.8. Each stage advances by the exact exponential of its own linear equation
  with its neighbours and inputs held over the substep (the die stage with its leakage
  linearised), so every update is a convex combination: stable for any step, exact in the
  steady state. Substeps follow the firmware's control period, so the fan law and the
  protection run at their real cadence whatever the caller's tick.
- **Firmware**: the fan law and the over-temperature protection of each firmware
  (:mod:`asic_reservoir.simulator.control`) read the sensors the real firmware reads;
  a protection trip powers the chips off (:attr:`UnitPhysics.trip`).
- **Fans**: pwm from the fan law (or manual); rpm follows pwm with a first-order lag,
  each fan with its own max-rpm tolerance.
- **Ambient**: Ornstein-Uhlenbeck drift around ``ambient_c`` with std ``ambient_drift_c``.
- **Process variation** comes from the identity seed (model, seed): per-chip speed,
  leakage and thermal resistance, sensor offsets, fan tolerances. It is identical for
  the same seed and differs across seeds. Sensor noise, ambient drift and error
  sampling come from a separate *noise* stream (fresh entropy unless ``noise_seed`` is
  given), so readings of one identity repeat in distribution, not value by value.
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from dataclasses import dataclass

import numpy as np

from asic_reservoir.drivers.stratum.work import LBRY_DIFFICULTY_FACTOR
from asic_reservoir.simulator.control import Sensors, fan_law, protection
from asic_reservoir.simulator.profiles import Profile

__all__ = ["SettingsError", "ChainReading", "UnitReading", "Variation", "UnitPhysics",
           "AmbientDrift", "identity_rng"]

TWO32 = float(1 << 32)
AMBIENT_TAU_S = 1800.0      # estimate: room temperature drifts over ~half an hour
FLOW_EXPONENT = 0.8         # Dittus-Boelter: h ~ v^0.8 (see profiles sources)
STILL_AIR_FLOW = 0.15       # estimate: buoyant flow through the chassis with fans stopped
NOMINAL_FLOW = 0.75         # overhead_power_w is quoted with fans near 75 %
CORRECTOR_ABOVE_S = 0.5     # longer substeps get the trapezoidal corrector
MAX_EXPONENT = 60.0         # numerical guard only (e^60): protection acts long before


def as_read(value: np.ndarray | float, step: float) -> np.ndarray | float:
    """``value`` as a sensor register of resolution ``step`` holds it (nearest step; 0: exact)."""
    if step <= 0:
        return value
    if isinstance(value, np.ndarray):
        return np.round(value / step) * step
    return float(round(value / step) * step)


class SettingsError(ValueError):
    """A setting is unknown, out of range, or not changeable on this model."""


@dataclass(frozen=True)
class ChainReading:
    """One hash board (chain) as the firmware sees it.

    ``chip_temp_c`` is the hottest of the chips the firmware has a sensor on (S9 temp2_N);
    ``chip_temps_c`` lists every die (ground truth the real firmware does not expose).
    """

    index: int
    chips: int
    chip_temps_c: list[float]
    board_temp_c: float
    chip_temp_c: float
    freq_mhz: float
    rate_ghs: float
    rate_ideal_ghs: float
    hw_errors: int
    status: str


@dataclass(frozen=True)
class UnitReading:
    """Ground-truth telemetry snapshot (sensor values include offsets and noise).

    Hashrates and difficulties are on the real hardware's scale: a simulated unit
    divides its scaled figures by ``hash_scale`` so that its telemetry reads like the
    real unit's (the pool, meanwhile, sees difficulties multiplied by ``hash_scale``).
    """

    model: str
    name: str
    seed: int
    firmware: str
    chip_model: str
    uptime_s: float
    time_s: float
    hashrate_ghs: float
    hashrate_avg_ghs: float
    hashrate_ideal_ghs: float
    power_w: float
    input_voltage_mv: float
    current_ma: float
    core_voltage_mv: float
    core_voltage_actual_mv: float
    frequency_mhz: float
    chains: list[ChainReading]
    chip_temp_c: float
    board_temp_c: float
    vr_temp_c: float
    ambient_c: float
    fans: list[tuple[float, float]]
    fan_auto: bool
    fan_target_pct: float
    temp_target_c: float
    accepted: int
    rejected: int
    stale: int
    hw_errors: int
    best_share: float
    difficulty_accepted: float
    pool_url: str
    pool_user: str
    pool_difficulty: float
    pool_connected: bool
    last_share_time: float | None
    paused: bool
    booting: bool
    pending_restart: bool
    hash_scale: float
    mac: str
    serial: str
    overheated: bool = False


def identity_rng(model: str, seed: int) -> np.random.Generator:
    """Generator fixed by (model, seed): the unit's identity (process variation)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1),
                                                          zlib.crc32(model.encode())]))


@dataclass(frozen=True)
class Variation:
    """Per-unit process variation, drawn once from the identity seed."""

    speed: np.ndarray               # per chip, multiplies f_max (median 1)
    leakage: np.ndarray             # per chip, multiplies leakage (median 1)
    r_thermal: np.ndarray           # per chip, multiplies die->sink and sink->air resistance
    chip_sensor_offset_c: np.ndarray
    board_sensor_offset_c: np.ndarray   # per chain
    vr_sensor_offset_c: float
    fan_rpm_factor: np.ndarray      # per fan
    bad_cores: np.ndarray           # per chip, disabled cores (reduce its hashrate)
    mac: str
    serial: str

    @classmethod
    def from_seed(cls, profile: Profile, seed: int) -> "Variation":
        rng = identity_rng(profile.model, seed)
        n = profile.n_chips
        speed = np.exp(rng.normal(0.0, profile.spread_speed, n))
        leakage = np.exp(rng.normal(0.0, profile.spread_leakage, n))
        r_thermal = np.clip(rng.normal(1.0, profile.spread_r_thermal, n), 0.5, 1.5)
        chip_off = rng.normal(0.0, profile.spread_sensor_offset_c, n)
        board_off = rng.normal(0.0, profile.spread_sensor_offset_c, profile.n_chains)
        vr_off = float(rng.normal(0.0, profile.spread_sensor_offset_c))
        fans = np.clip(rng.normal(1.0, profile.spread_fan_rpm, profile.n_fans), 0.8, 1.2)
        tail = rng.integers(0, 256, 3)
        mac = ":".join(f"{b:02X}" for b in (0x02, 0x5A, 0x1D, *tail))   # locally administered
        serial = "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"), 12))
        max_bad = max(int(profile.hashes_per_clock) - 1, 0)
        bad = np.minimum(rng.poisson(profile.bad_core_mean, n), max_bad)
        return cls(speed, leakage, r_thermal, chip_off, board_off, vr_off, fans, bad, mac, serial)


class _Window:
    """Nonce counts of the last few seconds, for the firmware-style 5 s hashrate.

    Running sums of the covered time and the counts: a read costs the same whatever the
    window holds (a 60 s window has 600 ticks)."""

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self.entries: deque = deque()   # (t_end, dt, counts per chain)
        self._covered = 0.0
        self._total: np.ndarray | None = None

    def add(self, t_end: float, dt: float, counts: np.ndarray) -> None:
        self.entries.append((t_end, dt, counts))
        self._covered += dt
        self._total = counts.copy() if self._total is None else self._total + counts
        while len(self.entries) > 1 and self.entries[0][0] <= t_end - self.span_s + 1e-9:
            _, old_dt, old_counts = self.entries.popleft()
            self._covered -= old_dt
            self._total -= old_counts

    def rate(self, weight: float) -> np.ndarray | None:
        """Per-chain hashes/s = counts x weight / covered time, or None when empty."""
        if not self.entries:
            return None
        return self._total * weight / max(self._covered, 1e-9)


def _poisson(rng: np.random.Generator, lam: np.ndarray) -> np.ndarray:
    """``rng.poisson(lam)``: the same draws in the same order; a one-element array is drawn as
    a scalar, which skips the array checks that cost more than the draw."""
    if lam.size == 1:
        return np.array([rng.poisson(float(lam[0]))], dtype=np.int64)
    return rng.poisson(lam)


class AmbientDrift:
    """Room temperature: Ornstein-Uhlenbeck process around ``mean_c`` (exact steps)."""

    def __init__(self, mean_c: float, std_c: float, rng: np.random.Generator,
                 tau_s: float = AMBIENT_TAU_S) -> None:
        self.mean_c, self.std_c, self.tau_s, self._rng = float(mean_c), float(std_c), tau_s, rng
        self.value_c = float(mean_c)

    def advance(self, dt: float) -> float:
        if self.std_c > 0:
            a = math.exp(-dt / self.tau_s)
            self.value_c = (self.mean_c + (self.value_c - self.mean_c) * a
                            + self.std_c * math.sqrt(1.0 - a * a) * self._rng.normal())
        return self.value_c



class UnitPhysics:
    """Physical state of one unit, advanced by :meth:`step` in simulated seconds."""

    def __init__(self, profile: Profile, seed: int, ambient_c: float = 25.0,
                 ambient_drift_c: float = 0.0, noise_seed: int | None = None) -> None:
        self.profile = p = profile
        self.seed = int(seed)
        self.variation = var = Variation.from_seed(profile, seed)
        self._noise = np.random.default_rng(noise_seed)
        self.ambient = AmbientDrift(ambient_c, ambient_drift_c, self._noise)
        self.ambient_c = float(ambient_c)
        n, k = p.n_chips, p.chips_per_chain
        self._chain_of = np.repeat(np.arange(p.n_chains), k)
        sensed = {round(pos * (k - 1)) for pos in p.chip_sensor_positions}
        self._sensed = np.tile([j in sensed for j in range(k)], p.n_chains)
        if p.voltage_domains and k % p.voltage_domains:
            raise ValueError(f"{p.model}: {k} chips do not split into {p.voltage_domains} domains")
        # Calibration at the stock operating point (derivations in profiles.py).
        p_chip = p.chip_power_w
        self._v0 = v0 = p.voltage_default_mv / 1000.0
        self._c_eff = (1.0 - p.leakage_fraction) * p_chip / (v0 * v0 * p.freq_default_mhz * 1e6)
        self._g_leak_ref = p.leakage_fraction * p_chip / (v0 * v0) * var.leakage
        self._vth = p.vth_fraction * v0
        self._g0 = max(v0 - self._vth, 1e-6) ** p.alpha_power / v0
        self._f_ref = p.timing_guardband * p.freq_default_mhz
        self._hashes_per_clock = p.hashes_per_clock - var.bad_cores
        factor = LBRY_DIFFICULTY_FACTOR if p.algorithm == "lbry" else 1.0
        self.hashes_per_floor_nonce = TWO32 * p.chip_floor_difficulty / factor
        # Thermal network: per-chip resistances, neighbours along the heatsink.
        self._r_ds = p.r_die_sink * var.r_thermal
        inner = np.ones(n, dtype=bool)
        first, last = np.arange(0, n, k), np.arange(k - 1, n, k)
        self._has_prev, self._has_next = inner.copy(), inner.copy()
        self._has_prev[first] = False
        self._has_next[last] = False
        self._n_lateral = self._has_prev.astype(float) + self._has_next.astype(float)
        # Constants of the tick (one numpy call per term; see _derived and _now).
        self._inv_efold = 1.0 / p.leakage_efold_c
        self._g_ds = 1.0 / self._r_ds
        self._inv_r_thermal = 1.0 / var.r_thermal
        self._lat_prev = p.g_lateral * self._has_prev[1:]     # segment i <- segment i-1
        self._lat_next = p.g_lateral * self._has_next[:-1]    # segment i <- segment i+1
        self._g_lat_total = p.g_lateral * self._n_lateral
        self._lateral = n > 1 and p.g_lateral > 0
        self._domain_shape = ((p.n_chains, p.voltage_domains, k // p.voltage_domains)
                              if p.voltage_domains else None)
        self._fmax_per_g = self._f_ref * var.speed / self._g0     # f_max = this x g(v) x thermal
        # One chip on a regulated rail (LV06): the tick's arithmetic in Python floats, where
        # a numpy call on a one-element array costs ten times its work (same formulas, same
        # order of operations; the pinned trajectories hold to rounding).
        self._one_chip = n == 1 and not p.voltage_domains
        self._fan_full_rpm = p.fan_max_rpm * var.fan_rpm_factor
        self._sensed_idx = np.array([np.flatnonzero((self._chain_of == c) & self._sensed)
                                     for c in range(p.n_chains)])    # (chains, sensed per chain)
        self._epoch = 0                      # bumped by every setting that changes the chips
        self._derived_cache: tuple | None = None
        self._now_cache: tuple | None = None
        # Settings and state.
        self.freq_mhz = np.full(n, p.freq_default_mhz)
        self.voltage_mv = p.voltage_default_mv
        self.fan_auto = True
        self.fan_manual_pct = 100.0
        self.temp_target_c = p.temp_target_c
        self.fan_override_pct: float | None = None
        self.powered = True
        self.hashing = False
        self.trip: str | None = None          # why the firmware protection stopped the unit
        self.trip_sensors: Sensors | None = None    # what the firmware read when it stopped
        # True: sample returned nonces from the modelled rate (standalone physics);
        # False: the owner reports genuine chip results through add_nonces().
        self.sample_nonces = True
        self.time_s = 0.0
        self.t_die = np.full(n, self.ambient_c)
        self.t_sink = np.full(n, self.ambient_c)
        self.t_vr = self.ambient_c
        self._fan_law = fan_law(p)
        self._protection = protection(p)
        start_pwm = 100.0 if p.fan_control == "bmminer" else p.fan_min_pwm
        self._fan_law.reset(start_pwm)
        self.fan_pwm = np.full(p.n_fans, start_pwm)
        self.fan_rpm = self.fan_target_rpm(self.fan_pwm)
        self._fan_target = (self.fan_pwm.tobytes(), self.fan_rpm.copy())
        self.control_temp_c = self.ambient_c
        self._since_control = 0.0
        self.reset_counters()

    # ----------------------------------------------------------------- settings
    def set_frequency(self, mhz: float) -> None:
        self.freq_mhz[:] = float(mhz)
        self._epoch += 1

    def set_voltage(self, mv: float) -> None:
        self.voltage_mv = float(mv)

    def set_fan(self, auto: bool | None = None, pct: float | None = None) -> None:
        if auto is not None:
            if auto and not self.fan_auto:
                self._fan_law.reset(float(self.fan_pwm.mean()))
            self.fan_auto = bool(auto)
        if pct is not None:
            self.fan_manual_pct = float(min(max(pct, 0.0), 100.0))
        if not self.fan_auto and self.fan_override_pct is None:
            self.fan_pwm[:] = self.fan_manual_pct        # a manual setting takes effect at once
            self._fan_law.reset(self.fan_manual_pct)     # (bmminer: until its next read)

    def set_temp_target(self, celsius: float) -> None:
        self.temp_target_c = float(celsius)

    def set_hashing(self, hashing: bool) -> None:
        """True while the chips receive work (full dynamic power, nonces counted)."""
        self.hashing = bool(hashing)

    def set_powered(self, powered: bool, fan_override_pct: float | None = None) -> None:
        """Hash boards powered or not (reboot); optionally force the fans (boot: 100 %).

        Powering up is a firmware start: the protection re-arms and the fan law restarts.
        """
        self.powered = bool(powered)
        self.fan_override_pct = fan_override_pct
        if fan_override_pct is not None:
            self.fan_pwm[:] = fan_override_pct
        if powered:
            self.trip = self.trip_sensors = None
            self._protection.reset()
            self._fan_law.reset(float(self.fan_pwm.mean()))

    def reset_counters(self) -> None:
        """Start a new uptime: hashrate windows, averages and HW error counts."""
        self.uptime_start_s = self.time_s
        self._window = _Window(self.profile.hashrate_window_s)
        self._nonces_total = np.zeros(self.profile.n_chains)
        self._hashing_time_s = 0.0
        self.hw_errors_chain = np.zeros(self.profile.n_chains, dtype=np.int64)
        self._hw_pending = 0

    # ------------------------------------------------------------ chip model
    def _g(self, v: np.ndarray | float) -> np.ndarray | float:
        return np.maximum(v - self._vth, 1e-6) ** self.profile.alpha_power / v

    def _derived(self) -> tuple:
        """What holds between setting changes: (g_dyn, rates, f_max at t_ref or None,
        frequency / error width).

        f_max is fixed only on a regulated rail (series boards share their string by
        temperature); the tick reads this instead of recomputing it every substep.
        """
        p = self.profile
        key = (self._epoch, self.hashing, self.powered, self.voltage_mv)
        cached = self._derived_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        activity = 1.0 if self.hashing else p.idle_activity
        hz = self.freq_mhz * 1e6
        g_dyn = self._c_eff * hz * activity
        rates = (hz * self._hashes_per_clock if self.powered and self.hashing
                 else np.zeros(p.n_chips))
        fmax_ref = None
        if not p.voltage_domains:
            v = self.voltage_mv / 1000.0
            fmax_ref = self._f_ref * self.variation.speed * (self._g(max(v, 1e-3)) / self._g0)
        derived = (g_dyn, rates, fmax_ref, self.freq_mhz / p.hw_error_width)
        self._derived_cache = (key, derived)
        return derived

    def _now(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(power, voltage, slope, error fraction, valid rates) at the present temperatures,
        computed once per substep and shared by the step, the miner's budget and the readings."""
        key = (self._epoch, self.hashing, self.powered, self.voltage_mv)
        cached = self._now_cache
        if cached is not None and cached[0] == key and cached[1] is self.t_die:
            return cached[2]
        power, v, slope = self._electrical(self.t_die)
        err = self._error_fraction(v, self.t_die)
        now = (power, v, slope, err, self._derived()[1] * (1.0 - err))
        self._now_cache = (key, self.t_die, now)
        return now

    def _thermal_factor(self, t_die: np.ndarray) -> np.ndarray:
        p = self.profile
        return 1.0 - p.timing_temp_coeff * (t_die - p.t_ref_c)

    def chip_fmax_mhz(self, voltage: np.ndarray | None = None) -> np.ndarray:
        v = np.maximum(self.chip_voltage_v() if voltage is None else voltage, 1e-3)
        return self._f_ref * self.variation.speed * (self._g(v) / self._g0) * self._thermal_factor(self.t_die)

    def _error_fraction(self, v: np.ndarray | float, t_die: np.ndarray) -> np.ndarray:
        p = self.profile
        derived = self._derived()
        fmax_ref = derived[2]
        if self._one_chip and isinstance(v, float) and t_die.ndim == 1:
            fmax = float(fmax_ref[0]) * (1.0 - p.timing_temp_coeff * (float(t_die[0]) - p.t_ref_c))
            x = (float(self.freq_mhz[0]) - fmax) / (p.hw_error_width * fmax)
            x = min(max(x, -60.0), 60.0)
            return np.array([p.hw_error_floor + (1.0 - p.hw_error_floor) / (math.exp(-x) + 1.0)])
        # f_max = f_ref speed_i g(v_i) / g(V0) x (1 - k_T (T_i - T_ref)), x = (f - f_max) /
        # (w f_max); the error fraction floor + (1 - floor) / (1 + e^-x), with -x = 1/w - (f/w) / f_max
        fmax = t_die * -p.timing_temp_coeff
        fmax += 1.0 + p.timing_temp_coeff * p.t_ref_c
        if fmax_ref is not None and isinstance(v, float):
            fmax *= fmax_ref
        else:
            v = np.maximum(v, 1e-3)
            g = v - self._vth
            np.maximum(g, 1e-6, out=g)
            g **= p.alpha_power
            g /= v
            g *= self._fmax_per_g
            fmax *= g
        y = np.divide(derived[3], fmax, out=fmax)
        np.subtract(1.0 / p.hw_error_width, y, out=y)
        np.minimum(y, 60.0, out=y)
        np.maximum(y, -60.0, out=y)
        np.exp(y, out=y)
        y += 1.0
        np.divide(1.0 - p.hw_error_floor, y, out=y)
        y += p.hw_error_floor
        return y

    def chip_error_fraction(self, voltage: np.ndarray | None = None) -> np.ndarray:
        """Fraction of each chip's returned nonces that are hardware errors."""
        if voltage is None:
            return self._now()[3]
        return self._error_fraction(voltage, self.t_die)

    def chip_rates_hs(self) -> np.ndarray:
        """Hashes/s each chip evaluates right now (nominal scale; 0 without work/power)."""
        return self._derived()[1]

    def valid_rates_hs(self) -> np.ndarray:
        """Hashes/s whose results are correct: the miner's per-chip budget (x hash_scale)."""
        return self._now()[4]

    def ideal_rates_hs(self) -> np.ndarray:
        """Configured hashrate per chip (firmware "ideal", good cores only), hashing or not."""
        return self.freq_mhz * 1e6 * self._hashes_per_clock

    # ------------------------------------------------------------ electrical
    def conductances(self, t_die: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(dynamic, leakage) conductance of every chip, S (``t_die`` may be batched: (..., n))."""
        p = self.profile
        t = self.t_die if t_die is None else t_die
        g_leak = (t - p.t_ref_c) * self._inv_efold
        np.minimum(g_leak, MAX_EXPONENT, out=g_leak)
        np.exp(g_leak, out=g_leak)
        g_leak *= self._g_leak_ref
        return self._derived()[0], g_leak

    def _electrical(self, t_die: np.ndarray) -> tuple[np.ndarray, np.ndarray | float, np.ndarray]:
        """(power, voltage, own slope dP_i/dT_i) at ``t_die``; a regulated rail's voltage is a
        scalar here (:meth:`electrical` broadcasts it)."""
        p = self.profile
        if self._one_chip and t_die.ndim == 1:
            return self._electrical_one(float(t_die[0]))
        g_dyn, g_leak = self.conductances(t_die)
        g = g_dyn + g_leak
        if not p.voltage_domains:
            v = self.voltage_mv / 1000.0
            v2 = v * v
            slope = g_leak * (v2 * self._inv_efold)
        else:
            # Domain d of the string: conductance G_d, voltage v_d = I / G_d; per chip
            # dP_i/dT_i = dg_i v_d^2 (1 - 2 (g_i / G_d) (1 - v_d / v_string)), computed as
            # dg_i (a_d + g_i b_d) with the domain factors a, b broadcast over its chips.
            lead = g.shape[:-1]
            g3 = g.reshape(*lead, *self._domain_shape)
            inv = np.add.reduce(g3, axis=-1)
            np.divide(1.0, inv, out=inv)
            v_string = p.voltage_domains * self.voltage_mv / 1000.0
            vd = np.add.reduce(inv, axis=-1, keepdims=True)
            np.divide(v_string, vd, out=vd)
            vd = vd * inv                                 # (..., chains, domains)
            a = vd * vd
            b = vd * (2.0 / v_string)
            b -= 2.0
            b *= inv
            b *= a
            slope = g3 * b[..., None]
            slope += a[..., None]
            slope = slope.reshape(g.shape)
            slope *= g_leak
            slope *= self._inv_efold
            v = vd.repeat(self._domain_shape[-1], axis=-1).reshape(g.shape)
            if self.powered:
                g3 *= a[..., None]
                return g, v, slope
        if not self.powered:
            zero = np.zeros(g.shape)
            return zero, v, zero
        g *= v2
        return g, v, slope

    def _electrical_one(self, t_die: float) -> tuple[np.ndarray, float, np.ndarray]:
        """:meth:`_electrical` of one regulated chip, in floats."""
        p = self.profile
        g_leak = math.exp(min((t_die - p.t_ref_c) * self._inv_efold, MAX_EXPONENT))
        g_leak *= float(self._g_leak_ref[0])
        v = self.voltage_mv / 1000.0
        v2 = v * v
        if not self.powered:
            return np.zeros(1), v, np.zeros(1)
        g = float(self._derived()[0][0]) + g_leak
        return np.array([g * v2]), v, np.array([g_leak * (v2 * self._inv_efold)])

    def electrical(self, t_die: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(power W, leakage power W, voltage V, own slope dP_i/dT_i W/K) of every chip.

        The slope holds the other dies: leakage slope less what the series string takes
        back (a domain drawing more current gets less of the string voltage).
        ``t_die`` may be batched, shape (..., n).
        """
        t = self.t_die if t_die is None else t_die
        power, v, slope = self._now()[:3] if t_die is None else self._electrical(t)
        g_leak = self.conductances(t)[1]
        v = np.broadcast_to(v, t.shape).copy() if np.ndim(v) == 0 else v
        leak = np.zeros(t.shape) if not self.powered else g_leak * v * v
        return power, leak, v, slope

    def power_jacobian(self, t_die: np.ndarray | None = None) -> np.ndarray:
        """``J[c, i, j] = dP_i / dT_j`` within each chain (chains do not share a string).

        On a series string a die that warms draws more current: its own power rises by
        less than its leakage, its domain-mates lose voltage, the other domains gain a little.
        """
        p = self.profile
        c, k = p.n_chains, p.chips_per_chain
        g_dyn, g_leak = self.conductances(t_die)
        dg = (g_leak / p.leakage_efold_c).reshape(c, k)
        if not self.powered:
            return np.zeros((c, k, k))
        if not p.voltage_domains:
            v = self.voltage_mv / 1000.0
            return np.eye(k)[None] * (v * v * dg)[:, None, :]
        per = k // p.voltage_domains
        g = (g_dyn + g_leak).reshape(c, k)
        gd = np.repeat(g.reshape(c, p.voltage_domains, per).sum(axis=-1), per, axis=-1)
        v_string = p.voltage_domains * self.voltage_mv / 1000.0
        current = v_string / np.sum(1.0 / gd, axis=-1, keepdims=True) * per
        vd = current / gd
        dom = np.arange(k) // per
        same = dom[:, None] == dom[None, :]
        other = 2.0 * (g * vd / (v_string * gd))[:, :, None] * (vd * vd)[:, None, :]
        mates = (-2.0 * g * vd * vd * (1.0 - vd / v_string) / gd)[:, :, None]
        jac = np.where(same[None], mates, other)
        jac[:, np.arange(k), np.arange(k)] += vd * vd
        return jac * dg[:, None, :]

    def chip_voltage_v(self, t_die: np.ndarray | None = None) -> np.ndarray:
        """Core voltage across each chip (series boards share the string by conductance)."""
        return self.electrical(t_die)[2]

    def chip_power_w(self, t_die: np.ndarray | None = None) -> np.ndarray:
        """Power of every chip at die temperatures ``t_die`` (default: the present ones)."""
        return self._now()[0] if t_die is None else self.electrical(t_die)[0]

    def fan_target_rpm(self, pwm: np.ndarray | float) -> np.ndarray:
        """Speed each fan settles at for ``pwm`` %: from its floor at 0 % duty to full."""
        p = self.profile
        duty = np.asarray(pwm, dtype=float) / 100.0
        return self._fan_full_rpm * (p.fan_floor_fraction + (1.0 - p.fan_floor_fraction) * duty)

    def flow_fraction(self) -> float:
        """Airflow relative to full fan speed (mean over fans)."""
        return float(np.add.reduce(self.fan_rpm) / self.profile.n_fans) / self.profile.fan_max_rpm

    def input_power_w(self, chip_power: np.ndarray | None = None,
                      flow: float | None = None) -> float:
        """Power at the unit's input (S9: wall incl. PSU; LV06/LB-Box: DC jack)."""
        p = self.profile
        chip_power = self.chip_power_w() if chip_power is None else chip_power
        chips = float(chip_power[0]) if self._one_chip else float(np.add.reduce(chip_power, axis=None))
        flow = self.flow_fraction() if flow is None else flow
        overhead = p.overhead_power_w * (0.4 + 0.6 * (flow / NOMINAL_FLOW) ** 3)
        return (chips + overhead) / p.psu_efficiency

    # ---------------------------------------------------------------- thermal
    def sink_air_conductance(self, flow: float) -> np.ndarray:
        """W/K from each heatsink segment to its air at relative airflow ``flow``."""
        p = self.profile
        g_full, g_still = 1.0 / p.r_sink_air_full, 1.0 / p.r_sink_air_still
        g = g_still + (g_full - g_still) * min(max(flow, 0.0), 1.2) ** FLOW_EXPONENT
        return self._inv_r_thermal * g

    def air_heat_capacity(self, flow: float) -> float:
        """m_dot c_p (W/K) of the air stream through one chain."""
        p = self.profile
        return p.airflow_heat_capacity * max(flow, STILL_AIR_FLOW) / p.n_chains

    def air_temps_c(self, power: np.ndarray, flow: float, ambient_c: float) -> np.ndarray:
        """Air at each chip: inlet plus the heat of the chips upstream (and half its own)."""
        p = self.profile
        k = p.chips_per_chain
        if k == 1:                                  # one chip per air stream: half its own heat
            upstream = 0.5 * power
        else:
            lead = power.shape[:-1]
            upstream = np.add.accumulate(power.reshape(*lead, p.n_chains, k), axis=-1)
            upstream = upstream.reshape(power.shape)
            upstream -= 0.5 * power
        upstream *= 1.0 / self.air_heat_capacity(flow)
        upstream += ambient_c
        return upstream

    def thermal_matrix(self, flow: float) -> np.ndarray:
        """Steady-state K/W per chain: ``T_die = T_ambient + M[c] @ P`` (chains independent)."""
        p = self.profile
        k = p.chips_per_chain
        g_a = self.sink_air_conductance(flow).reshape(p.n_chains, k)
        r_ds = self._r_ds.reshape(p.n_chains, k)
        lat = np.zeros((k, k))
        if k > 1 and p.g_lateral > 0:
            idx = np.arange(k - 1)
            lat[idx, idx + 1] = lat[idx + 1, idx] = -p.g_lateral
            lat[np.arange(k), np.arange(k)] = -lat.sum(axis=1)
        mcp = self.air_heat_capacity(flow)
        upstream = (np.tril(np.ones((k, k)), -1) + 0.5 * np.eye(k)) / mcp
        out = np.empty((p.n_chains, k, k))
        for c in range(p.n_chains):
            a = lat + np.diag(g_a[c])
            out[c] = np.linalg.solve(a, g_a[c][:, None] * upstream + np.eye(k)) + np.diag(r_ds[c])
        return out

    # ---------------------------------------------------------------- dynamics
    def step(self, dt: float) -> None:
        """Advance ``dt`` simulated seconds (any size: substeps follow the control period)."""
        if dt <= 0:
            return
        period = self.profile.control_period_s
        floor = self.hashes_per_floor_nonce
        valid_nonces = error_nonces = None
        one_valid = one_error = 0.0
        left = dt
        while left > 1e-12:
            h = min(left, max(period - self._since_control, 1e-9))
            power, v, slope, err, valid = self._now()
            rates = self._derived()[1]
            scale = h / floor
            if self._one_chip:
                e, r = float(err[0]), float(rates[0])
                one_valid += (1.0 - e) * r * scale
                one_error += r * e * scale
                self._substep(h, (power, slope))
                left -= h
                continue
            good = valid * scale
            bad = rates * err
            bad *= scale
            if valid_nonces is None:
                valid_nonces, error_nonces = good, bad
            else:
                valid_nonces += good
                error_nonces += bad
            self._substep(h, (power, slope))
            left -= h
        if self._one_chip:
            self._count_one(dt, one_valid, one_error)
            return
        if valid_nonces is None:
            valid_nonces = error_nonces = np.zeros(self.profile.n_chips)
        self._count(dt, valid_nonces, error_nonces)

    def _substep(self, h: float, state: tuple[np.ndarray, np.ndarray]) -> None:
        """Advance ``h`` from ``state`` (this moment's power and slope)."""
        p = self.profile
        self.ambient_c = self.ambient.advance(h)
        self._since_control += h
        if self._since_control >= p.control_period_s - 1e-9:
            self._control(self._since_control)
            self._since_control = 0.0
            if not self.powered:                # the protection may just have cut the power
                power, _, slope, _, _ = self._now()
                state = (power, slope)
        pwm = self.fan_pwm.tobytes()                # set in place; changes at control steps
        if pwm != self._fan_target[0]:
            self._fan_target = (pwm, self.fan_target_rpm(self.fan_pwm))
        target_rpm = self._fan_target[1]
        self.fan_rpm = target_rpm + (self.fan_rpm - target_rpm) * math.exp(-h / p.fan_tau_s)
        flow = self.flow_fraction()
        power, slope = state
        sink, die = self._thermal(h, flow, power, slope, self.t_sink, self.t_die)
        if h > CORRECTOR_ABOVE_S:
            # exponential trapezoid: redo the step with the inputs (chip heat, air,
            # neighbouring segments) averaged over its start and its predicted end
            power_end, _, slope_end = self._electrical(die)
            sink, die = self._thermal(h, flow, 0.5 * (power + power_end),
                                      0.5 * (slope + slope_end), 0.5 * (self.t_sink + sink),
                                      self.t_die)
        self.t_sink, self.t_die = sink, die
        loss = self.input_power_w(power, flow) * (1.0 - p.psu_efficiency)
        vr_eq = self.ambient_c + loss * p.r_vr_air
        self.t_vr = vr_eq + (self.t_vr - vr_eq) * math.exp(-h / p.vr_tau_s)
        self.time_s += h

    def _thermal(self, h: float, flow: float, power: np.ndarray, slope: np.ndarray,
                 neighbour_src: np.ndarray, t_die0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One exponential step of the heatsink segments, then the dies.

        Each segment relaxes exactly toward the equilibrium set by its air, its neighbours
        (taken from ``neighbour_src``) and the chip's heat held over ``h``; the die stores a
        negligible share (C_die << C_sink), so the segment takes P. Each die then relaxes
        exactly toward its new segment with its power linearised in its own temperature,
        ``P(T) ~ P0 + slope (T - T0)``. Every update is a convex combination: any ``h`` is
        stable and the steady state is exact. (In-place arithmetic: a tick is a few dozen
        numpy calls, whose overhead, not the chip count, is its cost.)
        """
        if self._one_chip:
            return self._thermal_one(h, flow, float(power[0]), float(slope[0]), float(t_die0[0]))
        p = self.profile
        g_a = self.sink_air_conductance(flow)
        sink_eq = self.air_temps_c(power, flow, self.ambient_c)
        sink_eq *= g_a
        sink_eq += power
        if self._lateral:
            sink_eq[1:] += neighbour_src[:-1] * self._lat_prev
            sink_eq[:-1] += neighbour_src[1:] * self._lat_next
        g_tot = g_a + self._g_lat_total
        sink_eq /= g_tot
        g_tot *= -h / p.c_sink
        sink = self.t_sink - sink_eq
        sink *= np.exp(g_tot, out=g_tot)
        sink += sink_eq
        g_eff = self._g_ds - slope
        die_eq = self._g_ds * sink
        die_eq += power
        die_eq -= slope * t_die0
        if np.minimum.reduce(np.abs(g_eff)) > 1e-12:
            die_eq /= g_eff
        else:
            die_eq /= np.where(np.abs(g_eff) > 1e-12, g_eff, 1e-12)
        g_eff *= -h / p.c_die
        np.minimum(g_eff, MAX_EXPONENT, out=g_eff)
        die = t_die0 - die_eq
        die *= np.exp(g_eff, out=g_eff)
        die += die_eq
        return sink, die

    def _thermal_one(self, h: float, flow: float, power: float, slope: float, t_die0: float
                     ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_thermal` of one chip (no neighbours), in floats."""
        p = self.profile
        g_full, g_still = 1.0 / p.r_sink_air_full, 1.0 / p.r_sink_air_still
        g_a = g_still + (g_full - g_still) * min(max(flow, 0.0), 1.2) ** FLOW_EXPONENT
        g_a /= float(self.variation.r_thermal[0])
        air = 0.5 * power / self.air_heat_capacity(flow) + self.ambient_c
        g_tot = g_a + float(self._g_lat_total[0])
        sink_eq = (g_a * air + power) / g_tot
        sink = (float(self.t_sink[0]) - sink_eq) * math.exp(g_tot * (-h / p.c_sink)) + sink_eq
        g_ds = float(self._g_ds[0])
        g_eff = g_ds - slope
        safe = g_eff if abs(g_eff) > 1e-12 else 1e-12
        die_eq = (g_ds * sink + power - slope * t_die0) / safe
        die = (t_die0 - die_eq) * math.exp(min(g_eff * (-h / p.c_die), MAX_EXPONENT)) + die_eq
        return np.array([sink]), np.array([die])

    def sensors(self) -> Sensors:
        """One firmware read: hottest sensed chip and board sensor per chain, VR, tachometers."""
        chip_c = self.chip_temps_c()[self._sensed_idx].max(axis=1)
        rpm = np.array([r for r, _ in self.fan_readings()])
        return Sensors(chip_c=chip_c, board_c=self.board_temps_c(), vr_c=self.vr_temp_c(),
                       fan_rpm=rpm)

    def _control(self, dt: float) -> None:
        """One pass of the firmware loop: fan law, then the protection (as bmminer orders them)."""
        p = self.profile
        s = self.sensors()
        self.control_temp_c = float(np.max(s.chip_c))
        if self.fan_override_pct is not None:
            self.fan_pwm[:] = self.fan_override_pct
        elif self.fan_auto or self._fan_law.overrides_manual:
            self.fan_pwm[:] = self._fan_law.update(s, self.temp_target_c, dt)
        else:
            self.fan_pwm[:] = self.fan_manual_pct
        if self.powered and self.trip is None:
            reason = self._protection.check(s)
            if reason is not None:
                self.trip, self.trip_sensors = reason, s
                self.powered = self.hashing = False
                if p.fan_control != "bmminer":     # ESP-Miner: overheat mode runs the fan at 100 %
                    self.fan_override_pct = 100.0
                    self.fan_pwm[:] = 100.0

    def _count(self, dt: float, valid: np.ndarray, errors: np.ndarray) -> None:
        """Sample hardware errors, and returned nonces unless the owner reports them."""
        err_chain = self._per_chain(_poisson(self._noise, errors))
        self.hw_errors_chain += err_chain
        self._hw_pending += int(np.add.reduce(err_chain))
        if self.sample_nonces:
            self._record(dt, _poisson(self._noise, valid).astype(float))

    def _count_one(self, dt: float, valid: float, errors: float) -> None:
        """:meth:`_count` of one chip: the same draws, as scalars."""
        n = int(self._noise.poisson(errors))
        self.hw_errors_chain[0] += n
        self._hw_pending += n
        if self.sample_nonces:
            self._record(dt, np.array([float(self._noise.poisson(valid))]))

    def _per_chain(self, per_chip: np.ndarray) -> np.ndarray:
        """Sums over each chain's chips (chains are contiguous in chip order)."""
        p = self.profile
        return np.add.reduce(per_chip.reshape(p.n_chains, p.chips_per_chain), axis=1)

    def add_nonces(self, dt: float, per_chip: np.ndarray) -> None:
        """Genuine chip results (nonces at the chip floor) found during the last ``dt``."""
        self._record(dt, np.asarray(per_chip, dtype=float))

    def _record(self, dt: float, per_chip: np.ndarray) -> None:
        if not (self.powered and self.hashing):
            return
        per_chain = per_chip.copy() if self._one_chip else self._per_chain(per_chip)
        self._window.add(self.time_s, dt, per_chain)
        self._nonces_total += per_chain
        self._hashing_time_s += dt

    def take_hw_errors(self) -> int:
        """Hardware errors since the last call (the unit hands them to the miner)."""
        n, self._hw_pending = self._hw_pending, 0
        return n

    # ---------------------------------------------------------------- sensors
    @property
    def sensed(self) -> np.ndarray:
        """Mask of the chips with a temperature sensor the firmware reads."""
        return self._sensed

    def chip_temps_c(self) -> np.ndarray:
        """Every die's temperature as its sensor reads (ground truth + offset + noise), to the
        resolution the firmware gets (``temp_reading_step_c``)."""
        noise = self._noise.normal(0.0, self.profile.sensor_noise_c, self.profile.n_chips)
        return as_read(self.t_die + self.variation.chip_sensor_offset_c + noise,
                       self.profile.temp_reading_step_c)

    def power_reading_w(self) -> float:
        """The input power as the firmware's power sensor reads it (``power_reading_step_w``)."""
        return as_read(self.input_power_w(), self.profile.power_reading_step_w)

    def current_reading_ma(self) -> float:
        """The input current as the firmware's sensor reads it (``current_reading_step_ma``)."""
        p = self.profile
        amps = self.input_power_w() / (p.input_voltage_mv / 1000.0)
        return as_read(amps * 1000.0, p.current_reading_step_ma)

    def board_temps_c(self) -> np.ndarray:
        """PCB sensor per chain: the heatsink segment under its sensed chips (hottest)."""
        p = self.profile
        sink = self.t_sink[self._sensed_idx].max(axis=1)
        noise = self._noise.normal(0.0, p.sensor_noise_c, p.n_chains)
        return sink + self.variation.board_sensor_offset_c + noise

    def vr_temp_c(self) -> float:
        """The regulator sensor's reading; 0.0 on a board without one (as ESP-Miner reports)."""
        if not self.profile.vr_sensor:
            return 0.0
        return float(self.t_vr + self.variation.vr_sensor_offset_c
                     + self._noise.normal(0.0, self.profile.sensor_noise_c))

    def fan_readings(self) -> list[tuple[float, float]]:
        """(rpm, pwm %) per fan; tachometer readings jitter by ~1 % (estimate)."""
        rpm = self.fan_rpm * (1.0 + self._noise.normal(0.0, 0.01, self.profile.n_fans))
        return [(float(max(r, 0.0)), float(w)) for r, w in zip(rpm, self.fan_pwm)]

    def chain_rates_hs(self) -> np.ndarray:
        """Firmware-style 5 s hashrate per chain, from sampled nonce counts."""
        rate = self._window.rate(self.hashes_per_floor_nonce)
        return np.zeros(self.profile.n_chains) if rate is None or not self.hashing else rate

    def average_rate_hs(self) -> float:
        if self._hashing_time_s <= 0:
            return 0.0
        return float(self._nonces_total.sum() * self.hashes_per_floor_nonce / self._hashing_time_s)

    def chain_readings(self) -> list[ChainReading]:
        p = self.profile
        k = p.chips_per_chain
        chips = self.chip_temps_c()
        boards = self.board_temps_c()
        rates = self.chain_rates_hs()
        ideal = np.bincount(self._chain_of, weights=self.ideal_rates_hs(), minlength=p.n_chains)
        err = self.chip_error_fraction().tolist()
        out = []
        for c in range(p.n_chains):                # chains are contiguous in chip order
            chain = slice(c * k, (c + 1) * k)
            temps = chips[chain]
            status = "x" * k if not self.powered else "".join(
                "x" if e > 0.5 else "o" for e in err[chain])
            out.append(ChainReading(
                index=c, chips=k, chip_temps_c=temps.tolist(),
                board_temp_c=float(boards[c]),
                chip_temp_c=float(temps[self._sensed[chain]].max()),
                freq_mhz=float(self.freq_mhz[chain].mean()), rate_ghs=float(rates[c]) / 1e9,
                rate_ideal_ghs=float(ideal[c]) / 1e9, hw_errors=int(self.hw_errors_chain[c]),
                status=status))
        return out

    def core_voltage_actual_mv(self) -> float:
        p = self.profile
        if not self.powered:
            return 0.0
        amps = float(np.mean(self.chip_power_w())) / (self.voltage_mv / 1000.0)
        return float(self.voltage_mv - amps * p.voltage_droop_mohm
                     + self._noise.normal(0.0, 1.0))

    def uptime_s(self) -> float:
        return self.time_s - self.uptime_start_s
