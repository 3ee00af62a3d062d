"""One simulated unit: physics + Stratum miner + firmware servers on the experiment clock.

Time (ARCHITECTURE.md): the unit lives on a :class:`~asic_reservoir.drivers.clock.Clock`,
scaled (``speed`` simulated seconds per wall second, for outside clients) or virtual (as
fast as the CPU allows, in-process runs). Either way it ticks every ``tick_s`` simulated
seconds (:data:`TICK_S` = 0.1 s unless ``UnitConfig.tick_s`` says otherwise), whatever the
speed or mode: finer than the die's thermal time constant and than a virtual-node slot.

Each tick advances the physics by the simulated time elapsed, then draws how many results
each chip returns at its ticket-mask floor during the tick: Poisson with the mean the
physics gives (``valid_rate x dt / hashes per floor result``), as a real chip's results are
(its ~10^12 hashes per second each succeed with probability ~10^-11). The miner then
*finds* that many genuine results by hashing (:meth:`StratumMiner.mine_results`): every
result, and so every share the pool sees, is a real solution. Share statistics match a real
unit when every difficulty is multiplied by ``hash_scale`` (``difficulty_scale``): the chip
floor is ``profile floor x hash_scale`` and the pool should set ``real difficulty x
difficulty_scale``; a result reaches a pool difficulty ``d`` with probability ``floor / d``,
as on the real chip.

What the CPU pays is the hashing per result: ``1 / P(hash <= scaled floor)``.
``hash_scale=None`` picks :data:`HASHES_PER_CHIP_RESULT` = 2 (:func:`auto_hash_scale`), so a
simulated second costs ``2 x`` the unit's floor results (:func:`auto_budget`: S9 ~100
hashes, LB-Box ~20 LBRY hashes, LV06 ~1) at every speed and in virtual time. The result
counts, and so the shares and the hashrate telemetry, do not depend on that choice: they
are drawn from the physics. (An earlier version hashed a fixed budget of 8 hashes per
expected result, at least 100 per second, and took whatever it found: binomial counts with
0.875 of the Poisson variance, at four times the CPU.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Sequence

import numpy as np
from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import LBRY_DIFFICULTY_FACTOR
from asic_reservoir.simulator.firmware.antminer_web import AntminerWebServer
from asic_reservoir.simulator.firmware.axeos import AxeOSServer
from asic_reservoir.simulator.firmware.cgminer_rpc import CgminerRpcServer
from asic_reservoir.simulator.firmware.generations import Generation, generation
from asic_reservoir.simulator.firmware.goldshell_web import GoldshellWebServer
from asic_reservoir.simulator.firmware.overheat import response as overheat_response
from asic_reservoir.simulator.firmware.serial_console import SerialConsole
from asic_reservoir.simulator.miner import (
    FoundShare,
    MinerError,
    StratumMiner,
    parse_pool_url,
)
from asic_reservoir.simulator.physics import SettingsError, UnitPhysics, UnitReading
from asic_reservoir.simulator.profiles import MODELS, Profile, profile
from asic_reservoir.simulator.ticker import Ticker

log = logging.getLogger(__name__)

__all__ = ["UnitConfig", "SimulatedUnit", "start_units", "auto_hash_scale", "auto_budget"]

HASHES_PER_CHIP_RESULT = 2.0   # auto hash_scale: the scaled floor accepts one hash in two
RESULTS_STREAM = 0x5E5         # noise_seed sub-stream of the chip result counts
BACKOFF_STREAM = 0xB0F         # noise_seed sub-stream of the miner's reconnect jitter
TICK_S = 0.1                # simulated seconds per physics tick, in every mode and at every speed
MAX_CATCH_UP_TICKS = 50     # ticks run back to back before yielding to the event loop
WARMUP_S = 900.0            # simulated seconds of running before the unit appears
RETUNE_PAUSE_S = 10.0       # LB-Box: hashing stops briefly while a new power plan settles (estimate)
FAN_LOG_PERIOD_S = 2.0      # ESP-Miner fan_controller logs its PID state every 2 s
DEFAULT_RPC_PORT = 4028
DEFAULT_HTTP_PORT = 80

SETTING_KEYS = ("frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct", "temp_target_c",
                "pool_url", "pool_user", "pool_password")
TEMP_TARGET_RANGE_C = (35.0, 90.0)   # estimate: range the AxeOS/Goldshell UIs accept


def auto_budget(prof: Profile) -> float:
    """Genuine hashes per simulated second at the nominal rate with the auto hash_scale:
    :data:`HASHES_PER_CHIP_RESULT` per result the chips return at their ticket-mask floor."""
    factor = LBRY_DIFFICULTY_FACTOR if prof.algorithm == "lbry" else 1.0
    results_per_s = prof.nominal_rate_hs * factor / (2.0 ** 32 * prof.chip_floor_difficulty)
    return HASHES_PER_CHIP_RESULT * results_per_s


def auto_hash_scale(prof: Profile, budget: float | None = None) -> float:
    """hash_scale at which the nominal rate costs ``budget`` genuine hashes per simulated
    second (default :func:`auto_budget`); below one hash per floor result every hash is a
    result (the floor target is capped), which only wastes nothing."""
    budget = auto_budget(prof) if budget is None else budget
    if not budget > 0:
        raise ValueError(f"hash budget must be > 0 hashes per simulated second, got {budget!r}")
    return budget / prof.nominal_rate_hs


@dataclass(frozen=True)
class UnitConfig:
    """How to build one simulated unit (see common contract)."""

    model: str = "s9"
    seed: int = 0
    host: str = "127.0.0.1"
    pool_url: str = "stratum+tcp://127.0.0.1:3333"
    worker: str = ""                     # "" -> "<model>.sim"
    password: str = "x"
    speed: float = 1.0
    hash_scale: float | None = None      # None: auto (auto_budget)
    rpc_port: int | None = DEFAULT_RPC_PORT
    http_port: int | None = DEFAULT_HTTP_PORT
    ambient_c: float = 25.0
    ambient_drift_c: float = 0.0
    serial: bool = False
    noise_seed: int | None = None        # noise, result counts, backoff jitter; None: fresh
    warmup_s: float = WARMUP_S
    tick_s: float = TICK_S               # simulated seconds per physics tick
    firmware: str | None = None          # firmware generation; None: what a stock unit ships

    def __post_init__(self) -> None:
        if self.model.lower() not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        object.__setattr__(self, "model", self.model.lower())
        generation(self.model, self.firmware)          # ValueError names the choices
        if not self.worker:
            object.__setattr__(self, "worker", f"{self.model}.sim")
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed!r}")
        if self.hash_scale is not None and not self.hash_scale > 0:
            raise ValueError(f"hash_scale must be > 0 or None, got {self.hash_scale!r}")
        for name in ("rpc_port", "http_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be 0..65535 or None, got {port!r}")
        if self.warmup_s < 0:
            raise ValueError("warmup_s must be >= 0")
        if not self.tick_s > 0:
            raise ValueError(f"tick_s must be > 0 simulated seconds, got {self.tick_s!r}")
        try:
            parse_pool_url(self.pool_url)
        except MinerError as exc:
            raise ValueError(str(exc)) from None


@dataclass
class _TickGrid:
    """Ticks at ``start + k x tick_s``: on a grid, so long runs do not drift."""

    start: float
    k: int = 1
    last: float = 0.0

    def __post_init__(self) -> None:
        self.last = self.start

    def due(self, tick_s: float) -> float:
        return self.start + self.k * tick_s

    def advance(self, due: float) -> None:
        self.last, self.k = due, self.k + 1


@dataclass
class TickStats:
    """Pace of the tick loop (wall seconds), for the benchmark and diagnostics."""

    ticks: int = 0
    late_ticks: int = 0          # ticks that started more than one tick period late
    lag_sum_s: float = 0.0
    lag_max_s: float = 0.0

    def add(self, lag_s: float, period_s: float) -> None:
        self.ticks += 1
        self.lag_sum_s += lag_s
        self.lag_max_s = max(self.lag_max_s, lag_s)
        if lag_s > period_s:
            self.late_ticks += 1

    @property
    def lag_mean_s(self) -> float:
        return self.lag_sum_s / self.ticks if self.ticks else 0.0


class SimulatedUnit:
    """A software S9 / LV06 / LB-Box: start it, point tools at :attr:`url`."""

    def __init__(self, config: UnitConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.profile: Profile = profile(config.model)
        self.generation: Generation = generation(config.model, config.firmware)
        self.clock = clock if clock is not None else Clock.for_running_loop(config.speed)
        self.speed = self.clock.speed
        p = self.profile
        self.physics = UnitPhysics(p, config.seed, config.ambient_c, config.ambient_drift_c,
                                   noise_seed=config.noise_seed)
        self.physics.sample_nonces = False       # the miner's genuine chip results feed it
        self.hash_scale = (config.hash_scale if config.hash_scale is not None
                           else auto_hash_scale(p))
        self._settings: dict[str, Any] = {
            "frequency_mhz": p.freq_default_mhz, "core_voltage_mv": p.voltage_default_mv,
            "fan_auto": True, "fan_pct": 100.0, "temp_target_c": p.temp_target_c,
            "pool_url": config.pool_url, "pool_user": config.worker,
            "pool_password": config.password}
        self._active = dict(self._settings)
        self.miner = self._make_miner()
        self.rpc_port: int | None = None
        self.http_port: int | None = None
        self.serial_path: str | None = None
        self.paused = False
        self.booting = False
        self.overheated = False
        self.overheat_mode = False            # the firmware's NVS flag (ESP-Miner); survives restarts
        self._overheat = overheat_response(self.generation.name)
        self.stats = TickStats()
        self._servers: list[Any] = []
        self._listeners: list[Callable[[str], None]] = []
        self._result_listeners: list[Callable[[FoundShare], None]] = []
        self._results_rng = np.random.default_rng(
            None if config.noise_seed is None else [config.noise_seed, RESULTS_STREAM])
        self._no_results = np.zeros(p.n_chips, dtype=np.int64)
        self._ticking = False
        self._ticks = _TickGrid(0.0)
        self._restart_lock = asyncio.Lock()
        self._hold_until = -math.inf          # LB-Box re-tune pause (clock seconds)
        self._started = False
        self._fan_log_due = 0.0
        self._results_seen = (0, 0)
        self._polled: UnitReading | None = None   # the firmware's last sensor read, if it polls
        self._poll_due = 0.0

    # ------------------------------------------------------------------ identity
    @property
    def difficulty_scale(self) -> float:
        return self.hash_scale

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        """Unit URL as the drivers parse it (``s9://host:rpc?http=port`` etc.)."""
        host, model = self.config.host, self.profile.model
        if model == "s9":
            base = f"s9://{host}" + (f":{self.rpc_port}" if self.rpc_port is not None else "")
            return base + (f"?http={self.http_port}" if self.http_port is not None else "")
        if model == "lv06":
            return f"lv06://{host}" + (f":{self.http_port}" if self.http_port is not None else "")
        base = f"lbbox://{host}" + (f":{self.http_port}" if self.http_port is not None else "")
        return base + (f"?rpc={self.rpc_port}" if self.rpc_port is not None else "")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Warm up the physics, connect the miner, open the firmware's ports, start ticking."""
        if self._started:
            return
        self._started = True
        ph = self.physics
        ph.set_hashing(True)
        ph.step(self.config.warmup_s)         # a unit found running, not a cold one
        ph.set_hashing(False)
        ph.reset_counters()
        await self.miner.start()
        try:
            await self._start_servers()
        except BaseException:
            await self.stop()
            raise
        self._ticks = _TickGrid(self.clock.now())
        self._ticking = True
        Ticker.of(asyncio.get_running_loop()).add(self, self._next_tick_at())

    async def stop(self) -> None:
        if self._ticking:
            self._ticking = False
            Ticker.of(asyncio.get_running_loop()).remove(self)
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                await server.stop()
        self._servers.clear()
        await self.miner.stop()
        self._started = False

    async def _start_servers(self) -> None:
        # Imported here: the firmware modules import simulator types themselves.

        cfg, model = self.config, self.profile.model
        if model in ("s9", "lbbox") and cfg.rpc_port is not None:
            server = CgminerRpcServer(self)
            self._servers.append(server)
            self.rpc_port = await server.start(cfg.host, cfg.rpc_port)
        if cfg.http_port is not None:
            web_cls = {"s9": AntminerWebServer, "lv06": AxeOSServer,
                       "lbbox": GoldshellWebServer}[model]
            server = web_cls(self)
            self._servers.append(server)
            self.http_port = await server.start(cfg.host, cfg.http_port)
        if model == "lv06" and cfg.serial:
            console = SerialConsole(self)
            self._servers.append(console)
            await console.start()
            self.serial_path = console.path

    def _make_miner(self) -> StratumMiner:
        p, s = self.profile, self._active
        return StratumMiner(flavor=p.flavor, algorithm=p.algorithm, url=s["pool_url"],
                            worker=s["pool_user"], password=s["pool_password"],
                            n_chips=p.n_chips, clock=self.clock,
                            chip_floor_difficulty=p.chip_floor_difficulty * self.hash_scale,
                            on_share=self._on_chip_result, jitter_seed=self._jitter_seed(),
                            stored_pool=(self._read_pool_at_connect
                                         if self.generation.read_at_connect else None))

    def _jitter_seed(self) -> int | None:
        """The miner's backoff jitter follows ``noise_seed`` (a sub-stream), fresh without it."""
        seed = self.config.noise_seed
        if seed is None:
            return None
        return int(np.random.SeedSequence([seed, BACKOFF_STREAM]).generate_state(1)[0])

    def _read_pool_at_connect(self) -> tuple[str, str, str] | None:
        """What the firmware's stratum task reads from storage when it connects: stored pool
        settings it re-reads become the running ones; None when nothing changed."""
        changed = [k for k in self.generation.read_at_connect if self._settings[k] != self._active[k]]
        if not changed:
            return None
        for k in changed:
            self._active[k] = self._settings[k]
        return self._active["pool_url"], self._active["pool_user"], self._active["pool_password"]

    # ------------------------------------------------------------------ tick loop
    @property
    def tick_s(self) -> float:
        """Simulated seconds per physics tick."""
        return self.config.tick_s

    def _next_tick_at(self) -> float:
        """Loop time of the next grid point (as ``call_later`` would compute it)."""
        wait = self.clock.wall_seconds(self._ticks.due(self.tick_s) - self.clock.now())
        return asyncio.get_running_loop().time() + max(wait, 0.0)

    def on_timer(self) -> float | None:
        """Tick on the simulated-time grid; a late wake-up catches up tick by tick. Returns
        the loop time of the next tick for the loop's :class:`Ticker` (None once stopped).

        Catching up keeps every physics step at ``tick_s`` (a host too slow for the
        requested speed falls behind wall time instead of coarsening the physics).
        """
        if not self._ticking:
            return None
        tick, grid = self.tick_s, self._ticks
        now = self.clock.now()
        for _ in range(MAX_CATCH_UP_TICKS):         # then let the event loop breathe
            due = grid.due(tick)
            if due > now + 1e-9:
                break
            self.stats.add(self.clock.wall_seconds(now - due), self.clock.wall_seconds(tick))
            try:
                self._tick(due - grid.last, due)
            except Exception:                       # a bug in one tick must not kill the unit
                log.exception("%s: tick failed", self.config.worker)
            grid.advance(due)
        return self._next_tick_at() if self._ticking else None

    def _tick(self, dt: float, now: float) -> None:
        """One physics tick of ``dt`` simulated seconds ending at clock time ``now``."""
        ph, miner = self.physics, self.miner
        hashing = (not self.booting and not self.paused and not self.overheated
                   and now >= self._hold_until and miner.connected and miner.job is not None)
        ph.set_hashing(hashing)
        ph.step(dt)
        if not self.booting and not self.overheated:
            self._check_temperature()
        found = self._no_results
        if hashing:
            counts = self._result_counts(ph.valid_rates_hs(), dt)
            # the miner hashes until every chip found its count, or finds none (no job)
            if counts is not None and miner.mine_results(counts):
                found = counts
        ph.add_nonces(dt, found)
        errors = ph.take_hw_errors()
        if errors:
            miner.inject_hw_errors(errors)
        if self.profile.model == "lv06" and self._listeners:
            self._esp_miner_lines(now)
        poll = self.generation.sensor_poll_s
        if poll and now >= self._poll_due - 1e-9:
            self._polled = self._fresh_reading()
            self._poll_due = now + poll

    def _result_counts(self, valid_rates_hs: np.ndarray, dt: float) -> np.ndarray | None:
        """Chip results at the floor during ``dt`` (None: none at all): independent Poisson
        counts per chip, drawn as one Poisson total split multinomially (the same law; two
        draws, not one per chip)."""
        rate = valid_rates_hs * (dt / self.physics.hashes_per_floor_nonce)
        total_rate = float(rate.sum())
        total = self._results_rng.poisson(total_rate) if total_rate > 0 else 0
        if not total:
            return None
        if rate.size == 1:
            return np.array([total], dtype=np.int64)
        return self._results_rng.multinomial(total, rate / total_rate)

    def _esp_miner_lines(self, now: float) -> None:
        """Periodic and per-result console lines of ESP-Miner (formats from its sources)."""
        ms = self._uptime_ms()
        accepted, rejected = self.miner.accepted, self.miner.rejected
        seen_acc, seen_rej = self._results_seen
        for _ in range(max(0, accepted - seen_acc)):
            self._emit(f"I ({ms}) stratum_task: message result accepted")
        for _ in range(max(0, rejected - seen_rej)):
            self._emit(f"W ({ms}) stratum_task: message result rejected")
        self._results_seen = (accepted, rejected)
        ph = self.physics
        if now >= self._fan_log_due and ph.fan_auto and ph.powered and not self.booting:
            self._fan_log_due = now + FAN_LOG_PERIOD_S
            kp, ki, kd = self.profile.fan_pid
            self._emit(f"I ({ms}) fan_controller: Temp: {ph.control_temp_c:.1f} °C, SetPoint: "
                       f"{ph.temp_target_c:.1f} °C, Output: {ph.fan_pwm[0]:.1f}% "
                       f"(P:{kp:.1f} I:{ki:.1f} D_val:{kd:.1f})")

    def _check_temperature(self) -> None:
        """The firmware's protection acts inside the physics (control.py); report its stop."""
        p, ph = self.profile, self.physics
        if ph.trip is None:
            return
        self.overheated = True
        ph.set_hashing(False)
        log.warning("%s: firmware protection stopped hashing: %s", self.config.worker, ph.trip)
        if p.model == "lv06" and ph.trip_sensors is not None:
            read = ph.trip_sensors
            self._emit(f"E ({self._uptime_ms()}) power_management: OVERHEAT! "
                       f"VR: {read.vr_c:f}C ASIC {float(read.chip_c.max()):f}C")
        self._overheat.react(self)

    def _on_chip_result(self, share: FoundShare) -> None:
        for callback in self._result_listeners:
            callback(share)
        if self.profile.model == "lv06" and self._listeners:
            self._emit(self._asic_result_line(share))

    def _asic_result_line(self, share: FoundShare) -> str:
        """ESP-Miner ``asic_result`` line (ESP-Miner 2.x asic_result_task.c format).

        Core ids as BM1366 reports them: core in nonce bits 25-31, small core from the
        rolled version bits (protocols.md).
        """
        core = (share.nonce >> 25) & 0x7F
        small = (share.version >> 13) & 0x7
        return (f"I ({self._uptime_ms()}) asic_result: ID: {share.job_id}, ASIC nr: {share.chip}, "
                f"Core: {core}/{small}, ver: {share.version:08X} Nonce {share.nonce:08X} "
                f"diff {share.difficulty / self.hash_scale:.1f} of "
                f"{int(share.pool_difficulty / self.hash_scale)}.")

    def _uptime_ms(self) -> int:
        return int(self.physics.uptime_s() * 1000)

    # ------------------------------------------------------------------ listeners
    def add_result_listener(self, callback: Callable[[FoundShare], None]) -> None:
        """Called with every chip result (the firmware's own bookkeeping, e.g. a scoreboard)."""
        self._result_listeners.append(callback)

    def remove_result_listener(self, callback: Callable[[FoundShare], None]) -> None:
        with contextlib.suppress(ValueError):
            self._result_listeners.remove(callback)

    def add_log_listener(self, callback: Callable[[str], None]) -> None:
        self._listeners.append(callback)

    def remove_log_listener(self, callback: Callable[[str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def _emit(self, line: str) -> None:
        for callback in list(self._listeners):
            try:
                callback(line)
            except Exception:
                log.exception("log listener failed; removed")
                self.remove_log_listener(callback)

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        """Configured settings (for the S9 this includes values pending a restart)."""
        return dict(self._settings)

    @property
    def pending_restart(self) -> bool:
        return any(self._settings[k] != self._active[k] for k in SETTING_KEYS)

    def apply(self, **changes: Any) -> dict[str, list[str]]:
        """Validate all changes, then apply them live or keep them for the next restart.

        Returns ``{"live": [...], "pending": [...]}``. Raises :class:`SettingsError`
        (nothing changed) on an unknown key, a bad value, or a setting the model's
        firmware cannot change.
        """
        clean = {key: self._validate(key, value) for key, value in changes.items()}
        live: list[str] = []
        pending: list[str] = []
        for key, value in clean.items():
            self._settings[key] = value
            (live if self.generation.applies_live(key) else pending).append(key)
        if live:
            self._apply_live(live)
        return {"live": live, "pending": pending}

    def _validate(self, key: str, value: Any) -> Any:
        p = self.profile
        if key not in SETTING_KEYS:
            raise SettingsError(f"unknown setting {key!r}; known: {', '.join(SETTING_KEYS)}")
        if key in ("pool_url", "pool_user", "pool_password"):
            if not isinstance(value, str):
                raise SettingsError(f"{key} must be a string")
            if key == "pool_url":
                try:
                    parse_pool_url(value)
                except MinerError as exc:
                    raise SettingsError(str(exc)) from None
            if key == "pool_user" and not value.strip():
                raise SettingsError("pool_user must not be empty")
            return value
        if key == "fan_auto":
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise SettingsError(f"fan_auto must be a boolean, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SettingsError(f"{key} must be a finite number, got {value!r}")
        value = float(value)
        if key == "frequency_mhz":
            if p.model == "lbbox" and value not in p.freq_options_mhz:
                raise SettingsError(f"frequency {value:g} MHz is neither the stock plan nor a "
                                    f"manual clock ({p.freq_min_mhz:g}-{p.freq_max_mhz:g} MHz "
                                    f"in 25 MHz steps)")
            if not p.freq_min_mhz <= value <= p.freq_max_mhz:
                raise SettingsError(f"frequency {value:g} MHz outside {p.freq_min_mhz:g}-"
                                    f"{p.freq_max_mhz:g} MHz")
        elif key == "core_voltage_mv":
            if not p.voltage_options_mv and value != self._settings[key]:
                raise SettingsError(f"core voltage is not settable on the {p.name} firmware")
            if not p.voltage_min_mv <= value <= p.voltage_max_mv:
                raise SettingsError(f"core voltage {value:g} mV outside {p.voltage_min_mv:g}-"
                                    f"{p.voltage_max_mv:g} mV")
        elif key == "fan_pct":
            if not 0.0 <= value <= 100.0:
                raise SettingsError(f"fan_pct {value:g} outside 0-100 %")
        elif key == "temp_target_c":
            if p.fan_control != "pid" and value != self._settings[key]:
                raise SettingsError(f"the {p.name} firmware has no temperature target setting")
            lo, hi = TEMP_TARGET_RANGE_C
            if p.fan_control == "pid" and not lo <= value <= hi:
                raise SettingsError(f"temp_target_c {value:g} outside {lo:g}-{hi:g} degC")
        return value

    def _apply_live(self, keys: Sequence[str]) -> None:
        ph, s = self.physics, self._settings
        for key in keys:
            self._active[key] = s[key]
        if "frequency_mhz" in keys:
            ph.set_frequency(s["frequency_mhz"])
            if self.profile.model == "lbbox":
                self._hold_until = self.clock.now() + RETUNE_PAUSE_S
        if "core_voltage_mv" in keys:
            ph.set_voltage(s["core_voltage_mv"])
        if "fan_auto" in keys or "fan_pct" in keys:
            ph.set_fan(auto=s["fan_auto"], pct=s["fan_pct"])
        if "temp_target_c" in keys:
            ph.set_temp_target(s["temp_target_c"])
        if any(k.startswith("pool_") for k in keys):
            self._spawn(self.miner.set_pool(s["pool_url"], s["pool_user"], s["pool_password"]))

    def store_firmware(self, **values: Any) -> None:
        """A write by the firmware itself (its overheat values into NVS): not checked against
        what a user may set; applied live or at restart as the generation does with writes."""
        self._settings.update({k: bool(v) if k == "fan_auto" else float(v) for k, v in values.items()})
        live = [k for k in values if self.generation.applies_live(k)]
        if live:
            self._apply_live(live)

    def rearm(self) -> None:
        """The firmware starts mining again after its protection stopped it (no reboot)."""
        self.overheated = False
        self.physics.set_powered(True)
        self.physics.set_fan(auto=self._active["fan_auto"], pct=self._active["fan_pct"])

    def firmware_log(self, level: str, text: str) -> None:
        """Emit one ESP_LOG-style line (``level`` I/W/E) with the current uptime."""
        self._emit(f"{level} ({self._uptime_ms()}) {text}")

    def spawn(self, coro) -> None:
        """Run ``coro`` in the background; an error is logged, never lost."""
        self._spawn(coro)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: t.cancelled() or t.exception() is None
                               or log.error("%s: %s", self.config.worker, t.exception()))

    # ------------------------------------------------------------------ restart / pause
    async def restart(self) -> None:
        """Reboot: hashing stops, pending settings load, boot takes ``profile.boot_time_s``.

        Clears the protection's stop; what the firmware stored on overheat (safe values,
        ``overheat_mode``) stays, as NVS does (``firmware/overheat.py``).
        """
        self._overheat.cancel()
        async with self._restart_lock:
            p, ph = self.profile, self.physics
            self.booting = True
            await self.miner.stop()
            ph.set_powered(False, fan_override_pct=100.0 if p.model == "s9" else None)
            self._emit(f"I ({self._uptime_ms()}) system: Restarting System")
            await self.clock.sleep(p.boot_time_s)
            if not self._started:                 # stopped while rebooting: stay down
                return
            self._active = dict(self._settings)
            ph.set_frequency(self._active["frequency_mhz"])
            ph.set_voltage(self._active["core_voltage_mv"])
            ph.set_fan(auto=self._active["fan_auto"], pct=self._active["fan_pct"])
            ph.set_temp_target(self._active["temp_target_c"])
            ph.set_powered(True)
            ph.reset_counters()
            self.paused = False
            self.overheated = False
            self._results_seen = (0, 0)
            self.miner = self._make_miner()
            await self.miner.start()
            self.booting = False

    def pause(self) -> None:
        if not self.generation.pause:
            raise SettingsError(f"the {self.profile.name} firmware {self.generation.name} has no pause")
        self.paused = True
        self.miner.paused = True

    def resume(self) -> None:
        if not self.generation.pause:
            raise SettingsError(f"the {self.profile.name} firmware {self.generation.name} has no resume")
        self.paused = False
        self.miner.paused = False

    # ------------------------------------------------------------------ telemetry
    def reading(self) -> UnitReading:
        """What the firmware reports now. A firmware that polls its sensors
        (``generation.sensor_poll_s``: stock ESP-Miner v2.1.8, every 2 s) serves the
        temperatures, power, current and fan speed of its last poll."""
        fresh = self._fresh_reading()
        polled = self._polled
        if polled is None:
            return fresh
        return replace(
            fresh, power_w=polled.power_w, current_ma=polled.current_ma,
            chip_temp_c=polled.chip_temp_c, board_temp_c=polled.board_temp_c,
            vr_temp_c=polled.vr_temp_c, fans=polled.fans)

    def _fresh_reading(self) -> UnitReading:
        p, ph, miner = self.profile, self.physics, self.miner
        chains = ph.chain_readings()
        fans = ph.fan_readings()
        chip_temp = max(c.chip_temp_c for c in chains)
        return UnitReading(
            model=p.model, name=p.name, seed=self.config.seed, firmware=p.firmware,
            chip_model=p.chip_model, uptime_s=ph.uptime_s(), time_s=self.clock.now(),
            hashrate_ghs=sum(c.rate_ghs for c in chains),
            hashrate_avg_ghs=ph.average_rate_hs() / 1e9,
            hashrate_ideal_ghs=sum(c.rate_ideal_ghs for c in chains),
            power_w=ph.power_reading_w(), input_voltage_mv=p.input_voltage_mv,
            current_ma=ph.current_reading_ma(),
            core_voltage_mv=ph.voltage_mv, core_voltage_actual_mv=ph.core_voltage_actual_mv(),
            frequency_mhz=float(ph.freq_mhz.mean()), chains=chains, chip_temp_c=chip_temp,
            board_temp_c=max(c.board_temp_c for c in chains), vr_temp_c=ph.vr_temp_c(),
            ambient_c=ph.ambient_c, fans=fans, fan_auto=ph.fan_auto,
            fan_target_pct=float(ph.fan_pwm.mean()), temp_target_c=ph.temp_target_c,
            accepted=miner.accepted, rejected=miner.rejected, stale=miner.stale,
            hw_errors=int(ph.hw_errors_chain.sum()),
            best_share=miner.best_share / self.hash_scale,
            difficulty_accepted=miner.difficulty_accepted / self.hash_scale,
            pool_url=miner.pool_url, pool_user=miner.worker,
            pool_difficulty=miner.difficulty / self.hash_scale, pool_connected=miner.connected,
            last_share_time=miner.last_share_time, paused=self.paused, booting=self.booting,
            pending_restart=self.pending_restart, hash_scale=self.hash_scale,
            mac=ph.variation.mac, serial=ph.variation.serial, overheated=self.overheated)


@contextlib.asynccontextmanager
async def start_units(configs: Sequence[UnitConfig], clock: Clock | None = None
                      ) -> AsyncIterator[list[SimulatedUnit]]:
    """Start several units (sharing ``clock`` if given); stop them all on exit."""
    units = [SimulatedUnit(cfg, clock=clock) for cfg in configs]
    started: list[SimulatedUnit] = []
    try:
        for unit in units:
            await unit.start()
            started.append(unit)
        yield units
    finally:
        for unit in reversed(started):
            await unit.stop()
