"""Parameters of the simulated Antminer S9, Lucky Miner LV06 and Goldshell LB-Box.

Every number here carries a source in ``Profile.sources`` (a test checks that no field
is left without one). A source is a datasheet, a firmware default, a published
measurement, or it says plainly ``estimate`` and why the value is plausible. These
values were fixed before any reservoir task was run and must never be tuned to make a
task score look better.

Sources consulted
-----------------
- [bmminer-c5] Bitmain bmminer S9 driver header ``driver-btm-c5.h``: ``ASIC_CORE_NUM 114``
  (BM1387), ``CHIP_ADDR_INTERVAL 4``; the ideal-rate formula in ``driver-btm-c5.c``
  ``GetTotalRate``: sum over chips of frequency x (114 - bad cores) / 1000 GH/s.
- [bmminer-s9] Bitmain ``bmminer-mix`` (github.com/bitmaintech/bmminer-mix, commit 729f03e,
  2017-04-28; the repository has no release tags), S9 branch of ``driver-btm-c5.h`` (``PWM_T 1``):
  ``MIN_PWM_PERCENT 0``, ``MAX_PWM_PERCENT 100``, ``MIN_FAN_TEMP 40``, ``MAX_FAN_TEMP 90``,
  ``MAX_FAN_PCB_TEMP 75``, ``MAX_PCB_TEMP 90``, ``MAX_TEMP 125``, ``MIN_FAN_NUM 2``,
  ``MAX_FAN_SPEED 6000``, ``MIN_TEMP_CONTINUE_DOWN_FAN 80``, ``MAX_TEMP_NEED_UP_FANSTEP 85``;
  ``driver-btm-c5.c``: ``set_PWM_according_to_temperature`` (hottest temp2 drives the pwm),
  ``read_temp_func`` (stops after 3 consecutive reads with PCB > MAX_PCB_TEMP or a fan lost,
  then ``disable_pic_dac`` powers the boards off; one read pass plus ``sleep(1)`` per loop),
  ``check_fan`` (rpm = tach pulses x 120). Older 2016 sources (``MIN_PWM_PERCENT 20``,
  ``MAX_FAN_TEMP 75``, ``MAX_TEMP 85``) are the non-S9 branch of the same header.
- [bitmain-s9] Bitmain Antminer S9 product specification as reproduced by miner
  comparison tables (e.g. MineROI-Net ``miner_specs.py``: 13.5 TH/s, 1323 W,
  98 J/TH); 3 hash boards x 63 BM1387, APW3++ power supply, two 12038 fans.
- [pyasic] pyasic device models: ``S9`` expected_chips 63, hashboards 3, fans 2;
  ``LV07``/``LV08`` (LV06 siblings) 1 chip, 1 fan; Goldshell ``KDBoxII``/``KDBoxPro``
  (LB-Box siblings, same enclosure family) 1 hashboard, 2 fans.
- [esp-miner-bm1366] ESP-Miner ``components/asic/include/bm1366.h``:
  ``BM1366_CORE_COUNT 112``, ``BM1366_SMALL_CORE_COUNT 894``,
  ``BM1366_ASIC_DIFFICULTY 256``; ``/api/system/asic`` for BM1366 lists frequencies
  400-575 MHz (default 485) and core voltages 1100-1300 mV (default 1200).
- [esp-miner-fan] ESP-Miner (github.com/bitaxeorg/ESP-Miner) tag v2.13.0,
  ``main/tasks/fan_controller_task.c``: PID on the hotter of ``chip_temp_avg`` /
  ``chip_temp2_avg``, ``PID_P 3.0``, ``PID_I 0.1``, ``PID_D 1.0``, ``POLL_TIME_MS 100``,
  output limits ``minFanSpeed``..100; ``main/thermal/PID.c`` (Arduino PID: ki x sample
  time, kd / sample time, integral clamped to the output limits); ``main/nvs_config.c``
  defaults ``temptarget 60`` (35-66), ``minfanspeed 25``, ``autofanspeed true``.
- [esp-miner-power] ESP-Miner v2.13.0 ``main/tasks/power_management_task.c``: every
  ``POLL_RATE`` 1800 ms, overheat when ``chip_temp_avg`` or ``chip_temp2_avg`` >
  ``THROTTLE_TEMP`` 75 or ``vr_temp`` > ``TPS546_THROTTLE_TEMP`` 105: logs ``OVERHEAT!``,
  sets the fan to 100 % and stops mining (v2.2-v2.10: safe values into NVS and a reboot that
  keeps them; v2.11+: resumes at reduced settings after cooling; firmware/overheat.py).
- [esp-miner-sensors] ESP-Miner v2.1.8 and v2.15.0, the sensor drivers an Ultra-class
  (BM1366, ``boardVersion`` 0.11) board reads: ``main/thermal/EMC2101.c``
  ``EMC2101_get_internal_temp`` (an 8-bit register in whole degrees, plus ``temp_offset``
  5), ``main/power/INA260.c`` (power register x 10 mW, current x 1.25 mA, voltage x 1.25 mV),
  ``main/power/power.c`` ``Power_get_vreg_temp`` (a TPS546 only, else 0.0);
  firmware_notes/lucky-miner-lv06.md, "Sensor read path".
- [subthreshold] Sub-threshold off-current ``I ~ mu (kT/q)^2 exp(-Vth / (n kT/q))`` with
  ``dVth/dT ~ -0.5 mV/K``: ``d ln I / dT ~ [Vth / (n kT/q) + 0.5] / T + |dVth/dT| / (n kT/q)``
  (textbook MOSFET physics, e.g. Taur & Ning, "Fundamentals of Modern VLSI Devices").
- [dreslinski-2010] R. Dreslinski et al., "Near-threshold computing", Proc. IEEE 2010:
  near threshold, leakage takes a larger share of energy than at nominal voltage (it equals
  the dynamic share at the minimum-energy point below threshold).
- [s9-field] Public captures of stock-clock S9s (project reference protocols.md): PCB
  ``tempN`` ~49-65 degC, chip ``temp2_N`` ~65-87 degC, fans ~2,900-5,900 rpm; inlet-outlet
  air difference ~12 K (as quoted in the project's issue 11; not re-measured here).
- [tmp451] TI TMP451 datasheet (remote-diode sensor used on Bitmain hash boards):
  +-1 degC remote accuracy, 0.0625 degC resolution.
- [borkar-2003] S. Borkar et al., "Parameter variations and impact on circuits and
  microarchitecture", DAC 2003: ~30 % spread of maximum frequency and 5-20x spread of
  leakage across dies of one process.
- [sakurai-1990] T. Sakurai, A. R. Newton, "Alpha-power law MOSFET model...", IEEE
  JSSC 1990: gate delay ~ V / (V - Vth)^alpha, alpha ~ 1.3 for short-channel devices.
- [dittus-boelter] Forced-convection heat-transfer coefficient ~ (air speed)^0.8
  (Dittus-Boelter correlation for turbulent flow); used for heatsink-to-air conductance
  versus fan speed.
- [fan-tolerance] Typical DC axial fan datasheets give rated speed +-10 %.
- [lucky-lv06] Lucky Miner LV06 vendor listing: ~500 GH/s, ~13 W, 5 V DC input, one
  fan (recalled vendor figures, not re-verified for this project: treated as estimates).
- [goldshell-lbbox] Goldshell LB-Box vendor listing: LBRY, 175 GH/s, 165 W (recalled
  vendor figures, not re-verified for this project: treated as estimates; 175 MH/s, an
  earlier reading, would make the ASIC slower than one GPU on LBRY). Goldshell
  does not publish chip counts or frequencies of the LB-Box; those are estimates.
- [goldshell-box-api] Observed Box-series web API (SC-BOX, firmware 2.2.5, same "cloud-box"
  UI): github.com/crProductGuy/goldshell-box-tools-productguy, docs/firmware-api.md and
  tests/fixtures/mcb_setting.json (commit 94816622, plans level 0 "725 MHz ..." and level 3
  "0 MHz 0 V ..."), gbox/web/app.js (`clockRange`: manual clocks in 25 MHz steps from
  300 MHz to the highest plan; `presetRequest`: ``select`` is the plan level).

Where a calibration is derived (effective switched capacitance, thermal resistances),
the derivation is given: it reproduces the published operating point (rated hashrate,
power, and typical field temperatures) at the stock settings; it is never fitted to a
reservoir task.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Mapping

__all__ = ["Profile", "PROFILES", "profile", "MODELS"]


@dataclass(frozen=True)
class Profile:
    """Static description of one unit model; values per chip unless named otherwise."""

    model: str                      # "s9" | "lv06" | "lbbox"
    name: str                       # human model name as the firmware reports it
    chip_model: str
    algorithm: str                  # "sha256d" | "lbry"
    flavor: str                     # StratumMiner flavor
    firmware: str                   # firmware version string the unit reports
    n_chains: int
    chips_per_chain: int
    hashes_per_clock: float         # hashes per chip per clock cycle (= active cores)
    bad_core_mean: float            # mean disabled cores per chip (Poisson, from the identity)
    freq_default_mhz: float
    freq_options_mhz: tuple[float, ...]
    freq_min_mhz: float
    freq_max_mhz: float
    voltage_default_mv: float       # chip core voltage at the default setting
    voltage_options_mv: tuple[float, ...]   # empty: not user-settable
    voltage_min_mv: float
    voltage_max_mv: float
    voltage_droop_mohm: float       # core-rail droop per chip current (actual vs set)
    voltage_domains: int            # series voltage domains per chain (0: each chip regulated)
    input_voltage_mv: float         # unit supply voltage reported by the firmware
    rated_power_w: float            # at the unit input (wall for S9, DC jack otherwise)
    psu_efficiency: float           # input power -> power delivered to the chips
    overhead_power_w: float         # controller, fans at nominal speed, misc.
    leakage_fraction: float         # share of chip power that is leakage at T_ref and V_default
    leakage_efold_c: float          # leakage current grows e-fold every this many K
    t_ref_c: float                  # reference die temperature for the calibration
    vth_fraction: float             # threshold voltage / default core voltage
    alpha_power: float              # alpha of the alpha-power law
    timing_guardband: float         # f_max / f_default of the median chip at V_default, T_ref
    timing_temp_coeff: float        # relative f_max loss per degC above T_ref
    hw_error_width: float           # relative width of the error onset around f_max
    hw_error_floor: float           # error fraction per returned nonce with full margin
    chip_floor_difficulty: float    # ticket mask: smallest difficulty a chip reports
    r_die_sink: float               # K/W die -> heatsink (per chip)
    r_sink_air_full: float          # K/W heatsink segment -> air at full fan (per chip)
    r_sink_air_still: float         # K/W heatsink segment -> air with fans stopped
    c_die: float                    # J/K die + package
    c_sink: float                   # J/K heatsink share per chip
    g_lateral: float                # W/K between neighbouring chips' heatsink segments
    t_junction_max_c: float         # physical limit of a die (the property test's bound)
    airflow_heat_capacity: float    # W/K of the air stream at full fan (m_dot * c_p)
    r_vr_air: float                 # K/W voltage regulator -> air (VR temperature)
    vr_tau_s: float                 # VR / PSU thermal time constant
    chip_sensor_positions: tuple[float, ...]   # chips with a temperature sensor (0..1 along flow)
    n_fans: int
    fan_max_rpm: float
    fan_floor_fraction: float       # speed at 0 % pwm / full speed (4-wire fans keep turning)
    fan_min_pwm: float              # lowest pwm the firmware sets in auto mode
    fan_tau_s: float                # fan speed time constant
    fan_control: str                # "bmminer" (S9 branch) | "pid" (ESP-Miner, Goldshell)
    temp_target_c: float            # auto fan target (pid) / middle of bmminer's hold band
    fan_pid: tuple[float, float, float]   # kp (%/K), ki (%/(K s)), kd (% s/K)
    control_period_s: float         # firmware fan / protection loop period (simulated)
    protect_temp_c: float           # firmware stops hashing above this sensor temperature
    protect_sensor: str             # "board" | "chip": which sensor the protection watches
    protect_reads: int              # consecutive reads over the limit before the stop
    protect_vr_c: float             # regulator temperature stop (inf: none)
    hashrate_window_s: float        # window of the firmware's current-hashrate figure
    boot_time_s: float              # restart until hashing resumes
    idle_activity: float            # dynamic power fraction when chips get no work
    spread_speed: float             # sigma of per-chip f_max (relative)
    spread_leakage: float           # sigma of ln(per-chip leakage)
    spread_r_thermal: float         # sigma of per-chip thermal resistance (relative)
    spread_sensor_offset_c: float   # sigma of temperature sensor offsets
    sensor_noise_c: float           # sigma of temperature sensor noise per reading
    spread_fan_rpm: float           # sigma of fan max rpm (relative)
    temp_reading_step_c: float      # resolution of the chip temperature the firmware reads (0: exact)
    power_reading_step_w: float     # resolution of the power reading (0: exact)
    current_reading_step_ma: float  # resolution of the input-current reading (0: exact)
    vr_sensor: bool                 # the board has a regulator temperature sensor (else it reads 0)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_chips(self) -> int:
        return self.n_chains * self.chips_per_chain

    @property
    def nominal_rate_hs(self) -> float:
        """Ideal unit hashrate (H/s) at the default frequency."""
        return self.n_chips * self.hashes_per_clock * self.freq_default_mhz * 1e6

    @property
    def chip_power_w(self) -> float:
        """Power per chip at the stock operating point, derived from the rated power."""
        return (self.rated_power_w * self.psu_efficiency - self.overhead_power_w) / self.n_chips

    def source(self, name: str) -> str:
        return self.sources[name]


def _check(profile: Profile) -> Profile:
    missing = [f.name for f in fields(Profile) if f.name != "sources" and f.name not in profile.sources]
    if missing:
        raise ValueError(f"profile {profile.model}: no source for {missing}")
    object.__setattr__(profile, "sources", MappingProxyType(dict(profile.sources)))
    return profile


_COMMON_SOURCES = {
    "model": "project naming",
    "vth_fraction": "estimate: threshold voltage ~60-70 % of the near-threshold core supply these "
                    "chips run at (mining ASICs operate close to Vth for efficiency)",
    "alpha_power": "[sakurai-1990] alpha ~1.3 for short-channel devices",
    "timing_temp_coeff": "estimate: ~0.1 %/K loss of f_max with temperature (mobility); "
                         "temperature inversion at near-threshold voltage is ignored",
    "hw_error_width": "estimate: errors rise over ~2 % of frequency around f_max",
    "t_junction_max_c": "estimate: 125 degC, the usual maximum junction temperature of "
                        "commercial CMOS (bmminer's S9 branch also sets MAX_TEMP 125 for the chip "
                        "sensors, [bmminer-s9])",
    "spread_speed": "[borkar-2003] ~30 % total f_max spread across dies ~ +-3 sigma -> ~4-5 %; "
                    "estimate 4 % inside one sorted product",
    "spread_leakage": "[borkar-2003] 5-20x leakage spread ~ ln(20)/6 ~ 0.5; estimate 0.3 inside "
                      "one binned product",
    "spread_r_thermal": "estimate: thermal-interface / heatsink contact variation ~8 %",
    "spread_fan_rpm": "[fan-tolerance] rated speed +-10 % -> sigma ~4 %",
    "spread_sensor_offset_c": "[tmp451] +-1 degC remote accuracy -> sigma ~0.5 degC; on-chip diode "
                              "sensors of the BM1366/Goldshell parts assumed a little worse (estimate)",
    "sensor_noise_c": "estimate: reading-to-reading jitter of a few tenths of a degC "
                      "([tmp451] resolution 0.0625 degC plus airflow turbulence)",
    "idle_activity": "estimate: clock tree and control logic keep ~8 % of dynamic power without work",
    "fan_tau_s": "estimate: axial fan spin-up ~1-2 s",
    "vr_tau_s": "estimate: regulator / PSU heatsink time constant (tens of seconds to minutes)",
    "protect_vr_c": "no regulator-temperature stop in this firmware",
}

S9 = _check(Profile(
    model="s9", name="Antminer S9", chip_model="BM1387", algorithm="sha256d", flavor="bmminer",
    firmware="Antminer S9 bmminer 2.0.0 (16.8.1.3)",
    n_chains=3, chips_per_chain=63, hashes_per_clock=114.0, bad_core_mean=0.3,
    freq_default_mhz=650.0,
    freq_options_mhz=tuple(float(f) for f in range(100, 875, 25)),
    freq_min_mhz=100.0, freq_max_mhz=850.0,
    voltage_default_mv=420.0, voltage_options_mv=(), voltage_min_mv=420.0, voltage_max_mv=420.0,
    voltage_droop_mohm=2.0, voltage_domains=21,
    input_voltage_mv=12000.0,
    rated_power_w=1323.0, psu_efficiency=0.93, overhead_power_w=45.0,
    leakage_fraction=0.10, leakage_efold_c=25.0, t_ref_c=75.0,
    vth_fraction=0.65, alpha_power=1.3, timing_guardband=1.35, timing_temp_coeff=0.001,
    hw_error_width=0.02, hw_error_floor=2e-5,
    chip_floor_difficulty=64.0,
    r_die_sink=3.0, r_sink_air_full=3.3, r_sink_air_still=30.0,
    c_die=0.15, c_sink=11.4, g_lateral=1.0, t_junction_max_c=125.0,
    airflow_heat_capacity=135.0, r_vr_air=0.08, vr_tau_s=120.0,
    chip_sensor_positions=(0.5, 1.0), n_fans=2, fan_max_rpm=6000.0, fan_floor_fraction=0.2, fan_min_pwm=0.0, fan_tau_s=1.5,
    fan_control="bmminer", temp_target_c=82.5, fan_pid=(0.0, 0.0, 0.0), control_period_s=2.0,
    protect_temp_c=90.0, protect_sensor="board", protect_reads=3, protect_vr_c=float("inf"),
    hashrate_window_s=5.0, boot_time_s=75.0, idle_activity=0.08,
    spread_speed=0.04, spread_leakage=0.3, spread_r_thermal=0.08,
    spread_sensor_offset_c=0.5, sensor_noise_c=0.3, spread_fan_rpm=0.04,
    temp_reading_step_c=0.0, power_reading_step_w=0.0, current_reading_step_ma=0.0,
    vr_sensor=True,
    sources={
        **_COMMON_SOURCES,
        "temp_reading_step_c": "not modelled at the register: bmminer's own code truncates to "
                               "integer degrees where it uses a reading (fan law)",
        "power_reading_step_w": "stock bmminer reports no power reading",
        "current_reading_step_ma": "stock bmminer reports no current reading",
        "vr_sensor": "as modelled: the PSU/regulator temperature of the profile (not checked)",
        "name": "[bitmain-s9] STATS[0] Type 'Antminer S9'",
        "chip_model": "[bitmain-s9]",
        "algorithm": "[bitmain-s9] SHA-256d",
        "flavor": "bmminer (stock S9 firmware)",
        "firmware": "[bitmain-s9] stock firmware reports BMMiner 2.0.0 / Miner 16.8.1.3",
        "n_chains": "[bitmain-s9] [pyasic] 3 hash boards",
        "chips_per_chain": "[bitmain-s9] [pyasic] 63 BM1387 per board",
        "hashes_per_clock": "[bmminer-c5] ASIC_CORE_NUM 114; ideal rate = freq x 114 per chip",
        "bad_core_mean": "[bmminer-c5] GetTotalRate subtracts per-chip bad cores (chain_badcore_num); "
                         "estimate ~0.3 disabled cores per chip on a sorted part",
        "freq_default_mhz": "[bmminer-c5] 650 MHz = 14.0 TH/s ideal; 13.5 TH/s units run ~631 MHz",
        "freq_options_mhz": "estimate: bmminer PLL table spans 100-850 MHz; 25 MHz steps offered",
        "freq_min_mhz": "estimate: lowest bmminer PLL table entry ~100 MHz",
        "freq_max_mhz": "estimate: highest overclock entry commonly offered ~850 MHz",
        "voltage_default_mv": "estimate: hash board ~8.8 V over 21 series domains of 3 chips -> ~0.42 V/chip",
        "voltage_options_mv": "stock bmminer has no user voltage setting",
        "voltage_min_mv": "stock bmminer: fixed",
        "voltage_max_mv": "stock bmminer: fixed",
        "voltage_droop_mohm": "estimate: small series-string droop",
        "voltage_domains": "estimate: 63 chips as 21 series domains of 3 in parallel, fed ~8.8 V by "
                           "the board regulator; a domain that draws more current (hotter, leakier) "
                           "gets less of the string voltage, so its power falls",
        "input_voltage_mv": "[bitmain-s9] APW3++ supplies 12 V",
        "rated_power_w": "[bitmain-s9] 1323 W at the wall",
        "psu_efficiency": "estimate: APW3++ ~93 % at 230 V (vendor claim)",
        "overhead_power_w": "estimate: two 12038 fans ~15-20 W each at typical speed + controller ~8 W",
        "leakage_fraction": "estimate: 10 % of chip power at 75 degC and 0.42 V. The BM1387 "
                            "(16 nm FinFET) runs ~0.15 V above threshold (vth_fraction), where "
                            "the leakage share is larger than in nominal-voltage logic "
                            "[dreslinski-2010]; 10-15 % is plausible, the lower end is used",
        "leakage_efold_c": "derived [subthreshold]: Vth ~0.27 V, n ~1.1 (FinFET ~65-70 mV/dec), "
                           "T ~350 K (kT/q 30 mV): 0.024 + 0.015 + 0.0014 ~ 0.040 /K -> e-fold "
                           "every 25 K (doubling every ~17 K)",
        "t_ref_c": "estimate: typical S9 chip temperature at stock (field readings 70-85 degC)",
        "timing_guardband": "estimate: ~35 % f_max margin for the median chip at 0.42 V, so that "
                            "the slowest of 189 chips (~-2.8 sigma) in the lowest domain of the "
                            "string (~-6 % voltage: g(V) ~-15 %) still has margin at stock, "
                            "consistent with the stock 'Device Hardware%' of ~0.001-0.01 %; chains "
                            "then gather errors from ~700-750 MHz as overclocked S9s do",
        "hw_error_floor": "estimate: stock S9 'Device Hardware%' typically ~0.001-0.01 %",
        "chip_floor_difficulty": "protocols.md: ticket mask ~64 (unconfirmed for stock bmminer)",
        "r_die_sink": "derived [s9-field]: temp2 reads 16-22 K above the PCB sensor "
                      "(65-87 vs 49-65 degC): the middle, 19 K, at ~6.3 W/chip -> 3.0 K/W",
        "r_sink_air_full": "derived [s9-field]: at 25 degC bmminer holds the hottest temp2 at "
                           "80-85 degC; fans in the middle of the field range (~4,400 rpm, 73 %) "
                           "need sink->air ~4.1 K/W there, i.e. 3.3 K/W at full fan (flow^0.8)",
        "r_sink_air_still": "estimate: natural convection of a ~0.8 kg finned heatsink",
        "c_die": "estimate: BM1387 die + package ~50 mm^3 at ~2 J/(cm^3 K) plus the PCB copper "
                 "under it ~0.15 J/K; with r_die_sink the die time constant is ~0.45 s, the "
                 "fastest thermal state (it bounds how fast a virtual node can be)",
        "c_sink": "estimate: ~0.8 kg aluminium heatsink per board (900 J/kgK) / 63 chips "
                  "(sink time constant ~45-60 s at typical fan)",
        "g_lateral": "derived: aluminium base (k ~200 W/mK) ~3 mm x 25 mm between chips ~15 mm "
                     "apart -> ~1 W/K between neighbouring segments",
        "airflow_heat_capacity": "derived [s9-field]: ~1,185 W of chip heat warms the air ~12 K "
                                 "inlet to outlet at typical fans (73 %) -> m_dot c_p ~135 W/K at "
                                 "full fan (~0.11 m^3/s through two 12038 fans in push-pull)",
        "r_vr_air": "estimate: PSU/regulator temperature rise ~0.08 K/W of loss",
        "chip_sensor_positions": "a public S9 boot log (bmminer 2019: 'temp offset record: "
                                 "62,-5,32,-5') names chips 32 and 62 of 63 as each board's "
                                 "sensor chips; estimate: the chain runs with the airflow, so "
                                 "they sit mid-board and at the outlet",
        "n_fans": "[pyasic] [bitmain-s9] 2 fans",
        "fan_max_rpm": "[bmminer-s9] MAX_FAN_SPEED 6000",
        "fan_floor_fraction": "estimate: the S9's 12038 4-wire fans keep turning at ~20 % speed "
                              "(~1,200 rpm) at 0 % duty, as server fans commonly do; bmminer's S9 "
                              "branch sets MIN_PWM_PERCENT 0 while stopping on a fan that reads "
                              "0 rpm, which only works with such fans",
        "fan_min_pwm": "[bmminer-s9] MIN_PWM_PERCENT 0 (S9 branch)",
        "fan_control": "[bmminer-s9] set_PWM_according_to_temperature: hottest temp2 drives the pwm",
        "temp_target_c": "[bmminer-s9] no user target: the fan steps hold the hottest temp2 between "
                         "MIN_TEMP_CONTINUE_DOWN_FAN 80 and MAX_TEMP_NEED_UP_FANSTEP 85 (middle 82.5)",
        "fan_pid": "not used: bmminer has its own law (simulator/control.py BmminerFan)",
        "control_period_s": "estimate: read_temp_func reads every chain's sensors over I2C, then "
                            "sleep(1) [bmminer-s9] -> ~2 s per loop",
        "protect_temp_c": "[bmminer-s9] MAX_PCB_TEMP 90 (PCB sensor, S9 branch)",
        "protect_sensor": "[bmminer-s9] read_temp_func checks temp_top1[TEMP_POS_LOCAL] (PCB)",
        "protect_reads": "[bmminer-s9] fatal_error_counter >= 3",
        "hashrate_window_s": "bmminer 'GHS 5s'",
        "boot_time_s": "estimate: S9 reboot to first share ~60-90 s (chain detection, frequency ramp)",
    },
))

LV06 = _check(Profile(
    model="lv06", name="LV06", chip_model="BM1366", algorithm="sha256d", flavor="esp-miner",
    firmware="v2.1.8",
    n_chains=1, chips_per_chain=1, hashes_per_clock=894.0, bad_core_mean=0.0,
    freq_default_mhz=485.0,
    freq_options_mhz=(400.0, 425.0, 450.0, 475.0, 485.0, 500.0, 525.0, 550.0, 575.0),
    freq_min_mhz=400.0, freq_max_mhz=575.0,
    voltage_default_mv=1200.0, voltage_options_mv=(1100.0, 1150.0, 1200.0, 1250.0, 1300.0),
    voltage_min_mv=1100.0, voltage_max_mv=1300.0,
    voltage_droop_mohm=1.5, voltage_domains=0,
    input_voltage_mv=5000.0,
    rated_power_w=13.0, psu_efficiency=0.88, overhead_power_w=1.0,
    leakage_fraction=0.10, leakage_efold_c=23.0, t_ref_c=60.0,
    vth_fraction=0.6, alpha_power=1.3, timing_guardband=1.25, timing_temp_coeff=0.001,
    hw_error_width=0.02, hw_error_floor=5e-5,
    chip_floor_difficulty=256.0,
    r_die_sink=1.0, r_sink_air_full=1.3, r_sink_air_still=12.0,
    c_die=0.2, c_sink=55.0, g_lateral=0.0, t_junction_max_c=125.0,
    airflow_heat_capacity=8.0, r_vr_air=8.0, vr_tau_s=20.0,
    chip_sensor_positions=(0.0,), n_fans=1, fan_max_rpm=6500.0, fan_floor_fraction=0.0, fan_min_pwm=25.0, fan_tau_s=1.0,
    fan_control="pid", temp_target_c=60.0, fan_pid=(3.0, 0.1, 1.0), control_period_s=1.0,
    protect_temp_c=75.0, protect_sensor="chip", protect_reads=1, protect_vr_c=105.0,
    hashrate_window_s=60.0, boot_time_s=8.0, idle_activity=0.08,
    spread_speed=0.04, spread_leakage=0.3, spread_r_thermal=0.08,
    spread_sensor_offset_c=0.7, sensor_noise_c=0.25, spread_fan_rpm=0.04,
    temp_reading_step_c=1.0, power_reading_step_w=0.01, current_reading_step_ma=1.25,
    vr_sensor=False,
    sources={
        **_COMMON_SOURCES,
        "temp_reading_step_c": "[esp-miner-sensors] Ultra-class boards (boardVersion 0.11): `temp` is "
                               "the EMC2101's internal register, whole degrees (+5 offset, a "
                               "board sensor not the die: firmware_notes, 'Sensor read path'); "
                               "rounding to the nearest degree assumed",
        "power_reading_step_w": "[esp-miner-sensors] INA260 power register x 10 mW",
        "current_reading_step_ma": "[esp-miner-sensors] INA260 current register x 1.25 mA",
        "vr_sensor": "[esp-miner-sensors] Power_get_vreg_temp reads a TPS546 only; INA260 boards "
                     "return 0.0, so the VR throttle (105 C) never fires on them",
        "name": "protocols.md: Lucky firmware reports minerModel 'LV06'",
        "chip_model": "[esp-miner-bm1366] ASICModel BM1366",
        "algorithm": "SHA-256d (Bitcoin)",
        "flavor": "ESP-Miner clone (Lucky firmware)",
        "firmware": "estimate: a Lucky AxeOS-clone version string",
        "n_chains": "[pyasic] LV07/LV08 siblings: 1 board",
        "chips_per_chain": "[pyasic] 1 chip",
        "hashes_per_clock": "[esp-miner-bm1366] 894 small cores; ESP-Miner expected rate = freq x small cores",
        "bad_core_mean": "ESP-Miner assumes all 894 small cores work (no per-core accounting)",
        "freq_default_mhz": "[esp-miner-bm1366] default 485 MHz",
        "freq_options_mhz": "[esp-miner-bm1366] /api/system/asic frequencyOptions 400-575",
        "freq_min_mhz": "[esp-miner-bm1366]",
        "freq_max_mhz": "[esp-miner-bm1366]",
        "voltage_default_mv": "[esp-miner-bm1366] default 1200 mV",
        "voltage_options_mv": "[esp-miner-bm1366] voltageOptions 1100-1300",
        "voltage_min_mv": "[esp-miner-bm1366]",
        "voltage_max_mv": "[esp-miner-bm1366]",
        "voltage_droop_mohm": "estimate: coreVoltageActual reads a few mV under the set value",
        "voltage_domains": "[esp-miner-power] one chip on a regulated core rail (TPS546 / DAC); "
                           "whether the BM1366 stacks domains inside is not published",
        "input_voltage_mv": "[lucky-lv06] 5 V DC input",
        "rated_power_w": "[lucky-lv06] ~13 W (estimate; Bitaxe Ultra BM1366 boards measure 11-13 W)",
        "psu_efficiency": "estimate: on-board buck converter ~88 %",
        "overhead_power_w": "estimate: ESP32 + fan ~1 W",
        "leakage_fraction": "estimate: ~10 % of chip power at 60 degC for 5 nm FinFET logic",
        "leakage_efold_c": "derived [subthreshold]: Vth ~0.25 V, n ~1.05, T ~333 K (kT/q 28.7 mV): "
                           "0.025 + 0.017 + 0.0015 ~ 0.043 /K -> e-fold every 23 K",
        "t_ref_c": "[esp-miner-fan] chip held near the 60 degC PID target",
        "timing_guardband": "estimate: ESP-Miner offers 575 MHz at the default 1200 mV, so the "
                            "median chip must still work there: 575/485 = 1.19 -> ~25 % margin",
        "hw_error_floor": "estimate: small error rate with full margin",
        "chip_floor_difficulty": "[esp-miner-bm1366] BM1366_ASIC_DIFFICULTY 256",
        "r_die_sink": "estimate: small-die BM1366 to heatsink through TIM ~1 K/W",
        "r_sink_air_full": "derived: ~50 degC chip at full fan, ~70 degC at min fan at 25 degC ambient",
        "r_sink_air_still": "estimate: small finned heatsink natural convection",
        "c_die": "estimate: BM1366 die + package + board copper under it ~0.2 J/K "
                 "(die time constant ~0.2 s)",
        "c_sink": "estimate: ~60 g aluminium heatsink",
        "g_lateral": "one chip: no neighbours",
        "airflow_heat_capacity": "estimate: 40 mm fan ~6-7 CFM -> m_dot c_p ~8 W/K",
        "r_vr_air": "estimate: VR reads ~40-55 degC (typical AxeOS vrTemp)",
        "chip_sensor_positions": "ESP-Miner reads the single BM1366's temperature",
        "n_fans": "[pyasic] [lucky-lv06] 1 fan",
        "fan_max_rpm": "estimate: small 5 V fan ~6000-7000 rpm at 100 %",
        "fan_floor_fraction": "estimate: ESP-Miner's manual 0 % stops the small fan",
        "fan_min_pwm": "[esp-miner-fan] minfanspeed default 25",
        "fan_control": "[esp-miner-fan] PID on chip temperature",
        "temp_target_c": "[esp-miner-fan] temptarget default 60",
        "fan_pid": "[esp-miner-fan] PID_P 3.0, PID_I 0.1, PID_D 1.0 (Arduino-PID units: %/K, "
                   "%/(K s), % s/K)",
        "control_period_s": "approximation: the firmware's PID polls every 100 ms; the simulator "
                            "runs it every 1 s with the same per-second gains (the fan's ~1 s "
                            "spin-up and the ~1 min heatsink dominate the loop), and checks the "
                            "1.8 s overheat rule on that grid",
        "protect_temp_c": "[esp-miner-power] THROTTLE_TEMP 75: above it ESP-Miner logs OVERHEAT, "
                          "turns the core voltage off, runs the fan at 100 % and stops",
        "protect_sensor": "[esp-miner-power] chip_temp_avg / chip_temp2_avg",
        "protect_reads": "[esp-miner-power] the first reading over the limit",
        "protect_vr_c": "[esp-miner-power] TPS546_THROTTLE_TEMP 105, compared with the VR "
                        "reading, which is 0.0 on this board ([esp-miner-sensors]): never fires",
        "hashrate_window_s": "estimate: ESP-Miner averages nonce difficulty over a longer span; "
                             "at a 256 ticket floor a 5 s window would hold ~2 nonces",
        "boot_time_s": "estimate: ESP32 boot + ASIC init ~5-10 s",
    },
))

LBBOX = _check(Profile(
    model="lbbox", name="Goldshell-LBBox", chip_model="Goldshell LBRY ASIC", algorithm="lbry",
    flavor="goldshell", firmware="2.2.5",
    n_chains=1, chips_per_chain=8, hashes_per_clock=21.875, bad_core_mean=0.0,
    freq_default_mhz=1000.0,
    freq_options_mhz=tuple(float(f) for f in range(300, 1001, 25)),
    freq_min_mhz=300.0, freq_max_mhz=1000.0,
    voltage_default_mv=750.0, voltage_options_mv=(), voltage_min_mv=750.0, voltage_max_mv=750.0,
    voltage_droop_mohm=2.0, voltage_domains=8,
    input_voltage_mv=12000.0,
    rated_power_w=165.0, psu_efficiency=0.9, overhead_power_w=10.0,
    leakage_fraction=0.10, leakage_efold_c=25.0, t_ref_c=70.0,
    vth_fraction=0.6, alpha_power=1.3, timing_guardband=1.20, timing_temp_coeff=0.001,
    hw_error_width=0.02, hw_error_floor=5e-5,
    chip_floor_difficulty=1024.0,
    r_die_sink=0.6, r_sink_air_full=1.0, r_sink_air_still=12.0,
    c_die=0.3, c_sink=40.0, g_lateral=2.0, t_junction_max_c=125.0,
    airflow_heat_capacity=30.0, r_vr_air=0.5, vr_tau_s=60.0,
    chip_sensor_positions=(0.3, 0.7), n_fans=2, fan_max_rpm=4500.0, fan_floor_fraction=0.0, fan_min_pwm=20.0, fan_tau_s=1.5,
    fan_control="pid", temp_target_c=70.0, fan_pid=(4.0, 0.05, 8.0), control_period_s=1.0,
    protect_temp_c=95.0, protect_sensor="chip", protect_reads=1, protect_vr_c=float("inf"),
    hashrate_window_s=20.0, boot_time_s=60.0, idle_activity=0.08,
    spread_speed=0.04, spread_leakage=0.3, spread_r_thermal=0.08,
    spread_sensor_offset_c=0.7, sensor_noise_c=0.3, spread_fan_rpm=0.04,
    temp_reading_step_c=0.0, power_reading_step_w=0.0, current_reading_step_ma=0.0,
    vr_sensor=True,
    sources={
        **_COMMON_SOURCES,
        "temp_reading_step_c": "not published (Goldshell web API); read as modelled",
        "power_reading_step_w": "not published (Goldshell web API); read as modelled",
        "current_reading_step_ma": "not published (Goldshell web API); read as modelled",
        "vr_sensor": "as modelled (not checked)",
        "name": "protocols.md: /mcb/status model string (unconfirmed; sibling reports 'Goldshell-SCBox')",
        "chip_model": "estimate: Goldshell does not publish the chip name",
        "algorithm": "[goldshell-lbbox] LBRY",
        "flavor": "Goldshell firmware",
        "firmware": "protocols.md: /mcb/status firmware '2.2.5'",
        "n_chains": "[pyasic] Box-series siblings: 1 hashboard",
        "chips_per_chain": "estimate: chip count not published",
        "hashes_per_clock": "derived: 175 GH/s / (8 chips x 1000 MHz)",
        "bad_core_mean": "estimate: no per-core information published; none modelled",
        "freq_default_mhz": "estimate: the clock of the stock plan (level 0); Goldshell "
                            "publishes no LB-Box plan table",
        "freq_options_mhz": "[goldshell-box-api] Box units offer the stock plan (level 0) and sleep "
                            "(level 3); other clocks only through manual mode; the grid (25 MHz "
                            "steps from 300 MHz up to the stock plan) is what a Box-series tool "
                            "allows (estimate for the LB-Box)",
        "freq_min_mhz": "[goldshell-box-api] 300 MHz, the lowest manual clock a Box tool allows (estimate)",
        "freq_max_mhz": "[goldshell-box-api] the stock plan's clock: manual clocks go no higher (estimate)",
        "voltage_default_mv": "estimate: core voltage not exposed by the firmware",
        "voltage_options_mv": "not user-settable on the Goldshell firmware",
        "voltage_min_mv": "not user-settable",
        "voltage_max_mv": "not user-settable",
        "voltage_droop_mohm": "estimate",
        "voltage_domains": "estimate: the 8 chips in one series string (as mining boards commonly "
                           "stack chips, e.g. the S9's 21 domains); the board is not documented",
        "input_voltage_mv": "estimate: 12 V external adapter",
        "rated_power_w": "[goldshell-lbbox] 165 W",
        "psu_efficiency": "estimate: on-board conversion ~90 %",
        "overhead_power_w": "estimate: controller + two fans ~10 W",
        "leakage_fraction": "estimate: ~10 % at 70 degC (process not published)",
        "leakage_efold_c": "estimate: the FinFET derivation of the S9 ([subthreshold], 25 K); "
                           "the process is not published",
        "t_ref_c": "estimate: chip temperature near the fan target",
        "timing_guardband": "estimate: same ~20 % margin as the S9 (stock units show few HW errors)",
        "hw_error_floor": "estimate",
        "chip_floor_difficulty": "estimate: a ticket mask giving ~10 chip nonces/s at 175 GH/s "
                                 "(LBRY difficulty 1 = 2^24 hashes), the same order as the S9",
        "r_die_sink": "estimate: ~17 W/chip, chip ~10 K above its heatsink",
        "r_sink_air_full": "derived: chips ~60 degC at full fan at 25 degC ambient",
        "r_sink_air_still": "estimate",
        "c_die": "estimate: larger package ~0.3 J/K (die time constant ~0.2 s)",
        "c_sink": "estimate: ~0.35 kg heatsink / 8 chips",
        "g_lateral": "estimate: one shared heatsink base, chips ~20 mm apart, ~4 mm x 50 mm "
                     "aluminium between them -> ~2 W/K",
        "airflow_heat_capacity": "estimate: two small fans ~50 CFM",
        "r_vr_air": "estimate",
        "chip_sensor_positions": "estimate: two sensed chips (RPC tstemp-0/tstemp-1)",
        "n_fans": "[pyasic] Box-series siblings KDBoxII/KDBoxPro: 2 fans",
        "fan_max_rpm": "estimate",
        "fan_floor_fraction": "estimate: fans stop at 0 %",
        "fan_min_pwm": "estimate",
        "fan_control": "estimate: firmware regulates chip temperature to a target",
        "temp_target_c": "estimate",
        "fan_pid": "estimate",
        "control_period_s": "estimate: a fan daemon polling about once a second",
        "protect_temp_c": "estimate: Goldshell firmware protection threshold not published",
        "protect_sensor": "estimate",
        "protect_reads": "estimate",
        "hashrate_window_s": "protocols.md: Goldshell RPC reports 'MHS 20s'",
        "boot_time_s": "estimate: Linux controller boot + hashboard init ~60 s",
    },
))

PROFILES: Mapping[str, Profile] = MappingProxyType({p.model: p for p in (S9, LV06, LBBOX)})
MODELS = tuple(PROFILES)


def profile(model: str) -> Profile:
    """The profile of ``model`` ("s9", "lv06", "lbbox"); ValueError names the choices."""
    try:
        return PROFILES[model.lower()]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}") from None
