"""Fan laws and over-temperature protection of each firmware, as their sources have them.

The physics (:mod:`asic_reservoir.simulator.physics`) calls one :class:`FanLaw` and one
:class:`Protection` every ``profile.control_period_s`` with the readings the real firmware
takes (:class:`Sensors`); both keep the firmware's own state (bmminer's ``fix_fan_steps``,
ESP-Miner's PID integral, bmminer's three-strikes counter). Sources, cited in
``firmware_notes/``:

- bmminer S9: Bitmain ``bmminer-mix`` ``driver-btm-c5.h`` / ``driver-btm-c5.c`` (S9 branch,
  ``PWM_T 1``: the middle (chip, temp2) reading drives the fan; the local (PCB) reading
  decides full fan and the stop), ``set_PWM_according_to_temperature``, ``check_fan``,
  ``read_temp_func``.
- ESP-Miner (LV06): ``main/tasks/fan_controller_task.c``, ``main/thermal/PID.c`` and
  ``main/tasks/power_management_task.c`` at tag v2.13.0.
- Goldshell (LB-Box): not published; a PID toward the target and a chip-sensor stop
  (estimate, same shape as ESP-Miner).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from asic_reservoir.simulator.profiles import Profile

__all__ = ["Sensors", "FanLaw", "BmminerFan", "PidFan", "Protection", "BoardStop", "ChipStop",
           "fan_law", "protection", "TACH_RPM_STEP"]

# bmminer check_fan: rpm = pulses x 60 x 2, so a fan under one pulse per read reads 0 (lost).
TACH_RPM_STEP = 120.0


@dataclass(frozen=True)
class Sensors:
    """What the firmware reads each control period (sensor values: offsets and noise included)."""

    chip_c: np.ndarray      # per chain: hottest chip sensor (S9 temp2_N, ESP-Miner chip temp)
    board_c: np.ndarray     # per chain: board (PCB) sensor (S9 tempN)
    vr_c: float
    fan_rpm: np.ndarray     # per fan, as the tachometer reads it


class FanLaw(ABC):
    """Automatic fan control of one firmware: pwm (%) from the sensors."""

    overrides_manual = False    # True: the firmware runs the law even with a manual fan set

    @abstractmethod
    def reset(self, pwm: float) -> None:
        """Firmware (re)start with the fans at ``pwm``."""

    @abstractmethod
    def update(self, s: Sensors, target_c: float, dt: float) -> float:
        """New pwm after one control period of ``dt`` seconds."""

    @abstractmethod
    def holds(self, target_c: float) -> float:
        """Hottest chip-sensor reading the loop settles at while its pwm is not pinned."""


class BmminerFan(FanLaw):
    """bmminer ``set_PWM_according_to_temperature`` (S9 branch, integer degrees).

    pwm = 2 %/K x (temp2 - 40 + fix_fan_steps); full fan when temp2 >= 90 or PCB >= 75;
    fix_fan_steps rises each read while temp2 >= 85 and falls while temp2 <= 80, so the
    loop holds the hottest temp2 between 80 and 85 degC whenever the pwm is not pinned.
    ``read_temp_func`` calls it after every read whatever the fan setting: a custom pwm
    (``bitmain-fan-pwm``) is set once at start-up and replaced at the first read.
    """

    overrides_manual = True

    MIN_PWM, MAX_PWM = 0, 100               # MIN_PWM_PERCENT / MAX_PWM_PERCENT (PWM_T == 1)
    MIN_FAN_TEMP, MAX_FAN_TEMP = 40, 90     # chip (temp2) curve ends
    MAX_FAN_PCB_TEMP = 75                   # PCB reading that forces full fan
    TEMP_INTERVAL = 2                       # a new curve point only after a 2 K change
    DOWN_BELOW, UP_FROM = 80, 85            # MIN_TEMP_CONTINUE_DOWN_FAN / MAX_TEMP_NEED_UP_FANSTEP
    FACTOR = (MAX_PWM - MIN_PWM) // (MAX_FAN_TEMP - MIN_FAN_TEMP)    # PWM_ADJUST_FACTOR (int)

    def __init__(self) -> None:
        self.reset(float(self.MAX_PWM))

    def reset(self, pwm: float) -> None:
        self.steps = 0
        self.last_c = 0
        self.pwm = int(pwm)

    def _curve(self, temp: int) -> int:
        pwm = self.MIN_PWM + (temp - self.MIN_FAN_TEMP + self.steps) * self.FACTOR
        return min(max(pwm, 0), self.MAX_PWM)

    def update(self, s: Sensors, target_c: float, dt: float) -> float:
        temp, pcb = int(np.max(s.chip_c)), int(np.max(s.board_c))
        change = temp - self.last_c
        if temp >= self.MAX_FAN_TEMP or temp == 0 or pcb >= self.MAX_FAN_PCB_TEMP:
            self.pwm = self.MAX_PWM
            self.steps = max(self.steps, 0)
            return float(self.pwm)
        if abs(change) >= self.TEMP_INTERVAL:
            self.pwm = self._curve(temp)
            if temp >= self.UP_FROM and self.pwm < self.MAX_PWM:
                self.steps += 1
                self.pwm = self._curve(temp)
            self.last_c = temp
        elif (temp <= self.DOWN_BELOW and self.steps > self.MIN_FAN_TEMP - self.DOWN_BELOW
              and self.pwm > self.MIN_PWM):
            self.steps -= 1
            self.pwm = self._curve(temp)
        elif temp >= self.UP_FROM and self.pwm < self.MAX_PWM:
            self.steps += 1
            self.pwm = self._curve(temp)
        return float(self.pwm)

    def holds(self, target_c: float) -> float:
        return 0.5 * (self.DOWN_BELOW + self.UP_FROM)


class PidFan(FanLaw):
    """ESP-Miner ``PID.c`` (Arduino PID, reverse acting, P on error) on the hottest chip sensor.

    Gains are per second (the firmware scales ki by, and kd against, its sample time), so
    running the loop at the physics' control period keeps the continuous-time controller.
    Output limits: the firmware's minimum fan speed .. 100 %; the integral is clamped there.
    """

    def __init__(self, gains: tuple[float, float, float], min_pwm: float) -> None:
        self.kp, self.ki, self.kd = gains
        self.min_pwm = float(min_pwm)
        self.reset(self.min_pwm)

    def reset(self, pwm: float) -> None:
        self.output_sum = min(max(float(pwm), self.min_pwm), 100.0)
        self.last_input: float | None = None

    def update(self, s: Sensors, target_c: float, dt: float) -> float:
        temp = float(np.max(s.chip_c))
        d_input = 0.0 if self.last_input is None else temp - self.last_input
        error = temp - target_c                    # reverse acting: hotter -> more fan
        self.output_sum = min(max(self.output_sum + self.ki * dt * error, self.min_pwm), 100.0)
        out = self.kp * error + self.output_sum + self.kd * d_input / max(dt, 1e-9)
        if out > 100.0:
            self.output_sum -= out - 100.0
            out = 100.0
        elif out < self.min_pwm:
            self.output_sum += self.min_pwm - out
            out = self.min_pwm
        self.last_input = temp
        return out

    def holds(self, target_c: float) -> float:
        return float(target_c)


class Protection(ABC):
    """The firmware's over-temperature / fan stop: a reason string once it trips."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def check(self, s: Sensors) -> str | None: ...

    @abstractmethod
    def would_trip(self, s: Sensors) -> bool:
        """True when these readings, held, make the firmware stop hashing."""


class BoardStop(Protection):
    """bmminer ``read_temp_func``: stop after 3 consecutive reads with the hottest PCB sensor
    above ``MAX_PCB_TEMP`` (90) or fewer than ``MIN_FAN_NUM`` (2) fans turning."""

    def __init__(self, limit_c: float, reads: int, n_fans: int) -> None:
        self.limit_c, self.reads, self.n_fans = float(limit_c), int(reads), int(n_fans)
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def _reason(self, s: Sensors) -> str | None:
        if int(np.max(s.board_c)) > self.limit_c:
            return f"board temperature {np.max(s.board_c):.0f} C > {self.limit_c:g} C"
        if int(np.sum(s.fan_rpm >= TACH_RPM_STEP)) < self.n_fans:
            return "fan lost"
        return None

    def check(self, s: Sensors) -> str | None:
        reason = self._reason(s)
        self.count = self.count + 1 if reason else 0
        return reason if self.count >= self.reads else None

    def would_trip(self, s: Sensors) -> bool:
        return self._reason(s) is not None


class ChipStop(Protection):
    """ESP-Miner ``power_management_task``: overheat when a chip reading exceeds
    ``THROTTLE_TEMP`` or the regulator exceeds ``TPS546_THROTTLE_TEMP``, at the first read."""

    def __init__(self, chip_limit_c: float, vr_limit_c: float) -> None:
        self.chip_limit_c, self.vr_limit_c = float(chip_limit_c), float(vr_limit_c)

    def reset(self) -> None:
        pass

    def check(self, s: Sensors) -> str | None:
        if float(np.max(s.chip_c)) > self.chip_limit_c:
            return f"chip temperature {np.max(s.chip_c):.1f} C > {self.chip_limit_c:g} C"
        if s.vr_c > self.vr_limit_c:
            return f"VR temperature {s.vr_c:.1f} C > {self.vr_limit_c:g} C"
        return None

    def would_trip(self, s: Sensors) -> bool:
        return self.check(s) is not None


def fan_law(p: Profile) -> FanLaw:
    """The automatic fan law of ``p``'s firmware."""
    if p.fan_control == "bmminer":
        return BmminerFan()
    return PidFan(p.fan_pid, p.fan_min_pwm)


def protection(p: Profile) -> Protection:
    """The over-temperature protection of ``p``'s firmware."""
    if p.protect_sensor == "board":
        return BoardStop(p.protect_temp_c, p.protect_reads, p.n_fans)
    return ChipStop(p.protect_temp_c, p.protect_vr_c)
