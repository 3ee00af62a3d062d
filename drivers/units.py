"""One interface over the S9, LV06 and LB-Box: identify, telemetry, capabilities, settings.

``await open_unit("s9://10.0.0.5")`` returns a :class:`Unit`; ``auto://HOST`` asks the
host what it is first (:func:`identify`, the way third-party clients do it). Every
setting passes the model's safety :class:`~drivers.envelope.Envelope` before anything is
sent, and ``async with unit.session():`` puts the settings back afterwards, also when
the block raises.

Unit URLs: ``s9://HOST[:RPC_PORT][?http=PORT]``, ``lv06://HOST[:HTTP_PORT]``,
``lbbox://HOST[:HTTP_PORT][?rpc=PORT]``, ``auto://HOST[?rpc=PORT&http=PORT]``; web
credentials may ride in the URL (``s9://root:root@HOST``). Default ports: RPC 4028, HTTP 80.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

import aiohttp

from asic_reservoir.drivers import axeos
from asic_reservoir.drivers.antminer import AntminerWeb, config_form, conf_settings
from asic_reservoir.drivers.cgminer import DEFAULT_PORT as RPC_PORT, CgminerRPC
from asic_reservoir.drivers.envelope import ENVELOPES, Envelope
from asic_reservoir.drivers.events import LogEvent
from asic_reservoir.drivers.errors import (AccessDenied, ConnectionRefused, InvalidCommand, MalformedReply,
                            SafeMode, ServerError, Timeout, UnitError, UnsupportedSetting)
from asic_reservoir.drivers.goldshell import (SLEEP_LEVEL, GoldshellClient, current_frequency, is_sleeping,
                                             manual_clocks, plan_clocks, power_plan_frequencies,
                                             select_frequency)
from asic_reservoir.drivers.http import HttpClient
from asic_reservoir.drivers.telemetry import (SETTINGS_KEYS, Capabilities, Chain, Telemetry, as_float, as_int,
                                              sanitize)
from asic_reservoir.drivers.writes import APPLIED, PENDING_RESTART, ApplyResult, SettingOutcome, judge

log = logging.getLogger(__name__)

HTTP_PORT = 80
MODELS = ("s9", "lv06", "lbbox")
S9_WEB_USER = "root"
S9_WEB_PASSWORD = "root"  # Bitmain factory web login


@dataclass(frozen=True)
class UnitAddress:
    """A parsed unit URL."""

    model: str  # one of MODELS or "auto"
    host: str
    rpc_port: int = RPC_PORT
    http_port: int = HTTP_PORT
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        if self.model == "s9":
            return f"s9://{self.host}:{self.rpc_port}?http={self.http_port}"
        if self.model == "lv06":
            return f"lv06://{self.host}:{self.http_port}"
        if self.model == "lbbox":
            return f"lbbox://{self.host}:{self.http_port}?rpc={self.rpc_port}"
        return f"auto://{self.host}?rpc={self.rpc_port}&http={self.http_port}"


def parse_unit_url(url: str) -> UnitAddress:
    """Unit URL -> :class:`UnitAddress`; a clear ValueError for anything else."""
    parts = urlsplit(url)
    model = parts.scheme.lower()
    if model not in MODELS + ("auto",):
        raise ValueError(f"unknown unit URL scheme {parts.scheme!r} in {url!r}; "
                         f"use s9://, lv06://, lbbox:// or auto://")
    if not parts.hostname:
        raise ValueError(f"unit URL without host: {url!r}")
    try:
        port = parts.port
        query = {k: int(v[-1]) for k, v in parse_qs(parts.query).items() if k in ("rpc", "http")}
    except ValueError as exc:
        raise ValueError(f"bad port in unit URL {url!r}: {exc}") from None
    rpc = query.get("rpc", RPC_PORT)
    http = query.get("http", HTTP_PORT)
    if port is not None:
        if model == "s9":
            rpc = port
        elif model in ("lv06", "lbbox"):
            http = port
        else:
            raise ValueError(f"auto:// takes ports as ?rpc=&http=, not :{port}")
    for p in (rpc, http):
        if not 0 < p < 65536:
            raise ValueError(f"port {p} out of range in {url!r}")
    return UnitAddress(model, parts.hostname, rpc, http, parts.username, parts.password)


@dataclass(frozen=True)
class Identity:
    """What :func:`identify` learnt about a host, and from which reply."""

    model: str
    host: str
    rpc_port: int
    http_port: int
    name: str = ""
    firmware: str = ""
    evidence: str = ""

    @property
    def url(self) -> str:
        return UnitAddress(self.model, self.host, self.rpc_port, self.http_port).url


@dataclass
class _SessionState:
    snapshot: dict[str, Any] = field(default_factory=dict)
    restarted: bool = False


class Unit(ABC):
    """A mining unit behind its management API. Subclasses implement the model specifics."""

    model: str = ""
    boot_timeout_s: float = 180.0  # how long a restart may keep the APIs down
    write_deadline_s: float = 60.0  # how long a write may take to show in the read-backs
    verify_interval_s: float = 0.5
    restart_begin_s: float = 30.0   # how long a restart request may take to stop the unit
    # where each setting is read back: (configuration, running value)
    setting_source: str = "settings"
    effect_source: str = "telemetry"
    # what a capture records (drivers/capture.py): read-only GETs and RPC report commands
    capture_paths: tuple[str, ...] = ()
    capture_commands: tuple[str, ...] = ()
    rpc: CgminerRPC | None = None

    def __init__(self, address: UnitAddress, *, timeout: float = 5.0, attempts: int = 3) -> None:
        self.address = address
        self.host = address.host
        self.timeout = timeout
        self.attempts = attempts
        self.name = address.url
        self._sessions: list[_SessionState] = []
        self._write_evidence: tuple[str, ...] = ()   # what the harmless write-back showed

    @property
    def envelope(self) -> Envelope:
        return ENVELOPES[self.model]

    @abstractmethod
    async def identify(self) -> Identity: ...

    @abstractmethod
    async def get_raw(self, path: str) -> tuple[int, str, dict[str, str]]:
        """One GET on the web API as the unit answers it: (status, body, headers), no checks,
        no redirect followed."""

    @abstractmethod
    async def telemetry(self) -> Telemetry: ...

    @abstractmethod
    async def capabilities(self) -> Capabilities: ...

    @abstractmethod
    async def settings(self) -> dict[str, Any]:
        """Current settings in canonical keys (:data:`asic_reservoir.drivers.telemetry.SETTINGS_KEYS`)."""

    @abstractmethod
    async def _write(self, changes: dict[str, Any]) -> bool:
        """Send the changes; True when the write itself restarts the miner."""

    async def running(self, keys: set[str]) -> dict[str, Any]:
        """The running value of those ``keys`` the firmware reports (others are left out)."""
        return {}

    async def _running_from_telemetry(self, keys: set[str]) -> dict[str, Any]:
        """Running clock and active pool as the unit's telemetry reports them (one read,
        only when one of those keys is asked for)."""
        if not keys & {"frequency_mhz", "pool_url", "pool_user"}:
            return {}
        reading = await self.telemetry()
        found = {"frequency_mhz": reading.frequency_mhz, "pool_url": reading.pool_url,
                 "pool_user": reading.pool_user}
        return {k: v for k, v in found.items() if k in keys and v not in (None, "")}

    async def restart(self) -> None:
        """Ask the unit to restart and return once it has gone down (or its uptime started
        again): firmware answers first and restarts a moment later, and a :meth:`wait_ready`
        right after must not mistake the old session for the new one."""
        try:
            before = (await self.telemetry()).uptime_s
        except UnitError:
            before = None
        await self._restart()
        for state in self._sessions:
            state.restarted = True
        if before is not None:
            await self._until_restart_began(before)

    async def _until_restart_began(self, uptime_before: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.restart_begin_s
        while loop.time() < deadline:
            try:
                reading = await self.telemetry()
            except UnitError:
                return                            # down: the restart is under way
            if reading.uptime_s is not None and reading.uptime_s < uptime_before:
                return                            # already back with a new session
            await asyncio.sleep(0.1)
        log.warning("unit %s: still in its old session %gs after the restart request",
                    self.name, self.restart_begin_s)

    async def wait_ready(self, timeout: float | None = None, interval: float = 1.0) -> Telemetry:
        """Poll telemetry until the unit answers again (after a restart its APIs are down)."""
        timeout = self.boot_timeout_s if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await self.telemetry()
            except (Timeout, ConnectionRefused, MalformedReply, ServerError) as exc:
                if loop.time() >= deadline:
                    raise Timeout(f"not answering {timeout:g}s after restart ({exc.detail})",
                                  unit=self.name, command="wait_ready") from None
            await asyncio.sleep(interval)

    @abstractmethod
    async def _restart(self) -> None: ...

    async def pause(self) -> None:
        raise UnsupportedSetting(f"{self.envelope.model} cannot pause hashing", unit=self.name,
                                 command="pause")

    async def resume(self) -> None:
        raise UnsupportedSetting(f"{self.envelope.model} cannot pause hashing", unit=self.name,
                                 command="resume")

    def events(self) -> AsyncIterator[LogEvent]:
        """Typed firmware log events (LV06 websocket); other models have no log stream."""
        raise UnsupportedSetting(f"{self.envelope.model} has no log stream", unit=self.name,
                                 command="events")

    @abstractmethod
    async def close(self) -> None:
        """Release HTTP sessions."""

    async def __aenter__(self) -> Unit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # Why a write of the current value is not harmless on this firmware ("" = it is).
    write_probe_refusal: str = ""

    async def probe_writes(self, keys: tuple[str, ...] = ("frequency_mhz",)) -> dict[str, Any]:
        """Write the current value of ``keys`` back and verify it: shows that the write path
        and its read-back work, and what this firmware reports (setting, running value).
        What it showed joins the learned capabilities (:attr:`Capabilities.learned`)."""
        if self.write_probe_refusal:
            return {"tried": False, "reason": self.write_probe_refusal}
        current = await self.settings()
        same = {k: current[k] for k in keys if isinstance(current.get(k), (int, float))}
        if not same:
            return {"tried": False, "reason": f"no current value for {', '.join(keys)}"}
        result = await self._write_verified(same)
        self._write_evidence = tuple(_write_lesson(o) for o in result.outcomes)
        return {"tried": True, **result.to_dict()}

    async def check_support(self, changes: Mapping[str, Any]) -> None:
        caps = await self.capabilities()
        needs = {"frequency_mhz": caps.frequency, "core_voltage_mv": caps.voltage,
                 "fan_auto": caps.fan, "fan_pct": caps.fan, "temp_target_c": caps.temp_target,
                 "pool_url": caps.pool, "pool_user": caps.pool, "pool_password": caps.pool}
        for key in changes:
            if key in needs and not needs[key]:
                raise UnsupportedSetting(f"{self.envelope.model} has no {key} control",
                                         unit=self.name, command="apply")
        freq = changes.get("frequency_mhz")
        if freq is not None and caps.frequency_steps and float(freq) not in caps.frequency_steps:
            raise UnsupportedSetting(f"frequency {freq} MHz is not one of the clocks this unit "
                                     f"offers (power plans and manual clocks: "
                                     f"{min(caps.frequency_steps):g}-{max(caps.frequency_steps):g} "
                                     f"MHz, {len(caps.frequency_steps)} steps)",
                                     unit=self.name, command="apply")

    async def apply(self, settings: Mapping[str, Any], *,
                    deadline_s: float | None = None) -> ApplyResult:
        """Validate against the envelope and the unit's actuators, write, then verify.

        Nothing is sent when any value is refused. The result says per setting whether it
        is running (``applied``), stored for the next restart (``pending_restart``) or did
        not take (``not_applied``), with the read-backs as evidence; a write that is slow
        to show is waited for up to ``deadline_s`` (default :attr:`write_deadline_s`) and
        never raises for being slow.
        """
        changes = dict(settings)
        if not changes:
            return ApplyResult()
        self.envelope.check_settings(changes, unit=self.name)
        await self.check_support(changes)
        return await self._write_verified(changes, deadline_s)

    async def _write_verified(self, changes: dict[str, Any],
                              deadline_s: float | None = None) -> ApplyResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        restarting = await self._write(changes)
        if restarting:
            for state in self._sessions:  # the new values now run: restore must write them back
                state.restarted = True
        outcomes = await self.verify(changes, deadline_s=deadline_s, restarted=restarting)
        return ApplyResult(outcomes=outcomes, restarting=restarting,
                           elapsed_s=loop.time() - started)

    async def verify(self, changes: Mapping[str, Any], *, deadline_s: float | None = None,
                     restarted: bool = False) -> tuple[SettingOutcome, ...]:
        """Read the settings (and running values) back until each change has a final verdict.

        A change whose running value the firmware reports but does not show yet is waited
        for (the unit may be restarting, its APIs down); at the deadline it is
        ``pending_restart``. A unit that never answers gives ``not_applied`` with the reason.
        ``restarted``: the write itself restarted the miner, so nothing waits for a restart.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.write_deadline_s if deadline_s is None else deadline_s)
        caps = await self.capabilities()
        restart_keys = set() if restarted else caps.restart_keys()
        outcomes: tuple[SettingOutcome, ...] | None = None
        error = ""
        while True:
            try:
                current = await self.settings()
                running = await self.running(set(changes))
            except (Timeout, ConnectionRefused, MalformedReply, ServerError) as exc:
                error = exc.detail          # restarting: the APIs are down for a while
            else:
                outcomes = tuple(
                    judge(key, value, current.get(key), running.get(key),
                          observable=key in running, needs_restart=key in restart_keys,
                          setting_source=self.setting_source, effect_source=self.effect_source)
                    for key, value in changes.items())
                waiting = [o for o in outcomes if o.status == PENDING_RESTART and o.key in running]
                if not waiting:
                    return outcomes
            if loop.time() >= deadline:
                break
            await asyncio.sleep(self.verify_interval_s)
        if outcomes is not None:
            return outcomes
        return tuple(SettingOutcome(key, value, evidence=f"no read-back before the deadline: {error}")
                     for key, value in changes.items())

    async def point_at_pool(self, url: str, worker: str, password: str = "x") -> ApplyResult:
        """Send the unit to the toolkit's pool (``stratum+tcp://host:port``) as ``worker``."""
        return await self.apply({"pool_url": url, "pool_user": worker, "pool_password": password})

    async def _restart_and_verify(self, keys: tuple[str, ...], restored: Mapping[str, Any]) -> None:
        """Restart so that restored settings load, and return only once the unit is back and
        runs them: the next user of the unit (a second PUF read, the next experiment) must
        not meet it half-way through its boot."""
        await self.restart()
        await self.wait_ready()
        outcomes = await self.verify({k: restored[k] for k in keys}, restarted=True)
        failed = [o for o in outcomes if o.status != APPLIED]
        if failed:
            log.error("unit %s: after the restart, restore did not take for %s", self.name,
                      ", ".join(f"{o.key} ({o.evidence})" for o in failed))

    def check_temperature(self, reading: Telemetry) -> None:
        """Raise :class:`~drivers.errors.OverTemperature` when the reading crosses the envelope."""
        self.envelope.check_temperature(reading)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Unit]:
        """Snapshot the settings; on exit (normal or by exception) write back what changed.

        Settings that need a restart to take effect are restored with a restart only if the
        unit was restarted inside the block (otherwise the original still runs).
        """
        state = _SessionState(snapshot=await self.settings())
        self._sessions.append(state)
        failed = False
        try:
            yield self
        except BaseException:
            failed = True
            raise
        finally:
            self._sessions.remove(state)
            try:
                await self._restore(state)
            except Exception as exc:
                if not failed:
                    raise
                log.error("unit %s: restoring settings after an error failed: %s", self.name, exc)

    async def overheat(self, snapshot: Mapping[str, Any] | None = None) -> str:
        """Why the firmware's overheat protection runs the unit ("" when it does not), from
        what the unit reports and, given the settings of a ``snapshot``, what it changed."""
        return ""

    async def _restore(self, state: _SessionState) -> None:
        if state.restarted:
            await self.wait_ready()
        reason = await self.overheat(state.snapshot)
        if reason:
            raise SafeMode(f"firmware overheat safe mode ({reason}); the session's settings were "
                           f"not written back: let the unit cool, check its cooling, then restore "
                           f"them (asic-reservoir set {self.name} --from FILE with "
                           f"{json.dumps(state.snapshot, default=str)})",
                           unit=self.name, command="restore")
        current = await self.settings()
        diff = {k: v for k, v in state.snapshot.items() if current.get(k) != v}
        if diff:
            log.info("unit %s: restoring %s", self.name, sorted(diff))
            result = await self._write_verified(diff)  # the unit's own values: no envelope check
            if result.not_applied:
                log.error("unit %s: restore did not take for %s", self.name,
                          ", ".join(f"{o.key} ({o.evidence})" for o in result.outcomes
                                    if o.key in result.not_applied))
            if result.pending_restart and state.restarted:
                await self._restart_and_verify(result.pending_restart, diff)
        else:
            log.debug("unit %s: settings unchanged, nothing to restore", self.name)


def _write_lesson(outcome: SettingOutcome) -> str:
    """What a write of the current value back taught about one setting."""
    head = f"{outcome.key}: the current value {outcome.commanded!r} written back ({outcome.evidence})"
    if outcome.status == APPLIED and outcome.effective is not None:
        return f"{head}: written and read back, running value reported and equal"
    if outcome.status == APPLIED:
        return f"{head}: written and read back; no running value reported"
    if outcome.status == PENDING_RESTART:
        return (f"{head}: written and read back; the firmware does not report the running "
                f"value, so the write cannot show when it applies (at restart, as learned above)")
    return f"{head}: did not read back: writes of this setting do not take"


def _max(values: list[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return max(seen) if seen else None


# ----------------------------------------------------------------------------- S9

def parse_s9(stats: dict[str, Any], summary: dict[str, Any], pools: dict[str, Any] | None,
             unit: str) -> Telemetry:
    """bmminer stats/summary/pools -> Telemetry. Chains are found by non-zero ``chain_acnN``."""
    head = stats.get("STATS", [{}])[0] if stats.get("STATS") else {}
    body = stats["STATS"][1] if len(stats.get("STATS", [])) > 1 else {}
    summ = (summary.get("SUMMARY") or [{}])[0]
    chains = []
    for n in range(1, 17):
        chips = as_int(body.get(f"chain_acn{n}"))
        if not chips:
            continue
        chains.append(Chain(
            index=n, chips=chips,
            board_temp_c=as_float(body.get(f"temp{n}")),
            chip_temp_c=as_float(body.get(f"temp2_{n}")),
            frequency_mhz=as_float(body.get(f"freq_avg{n}")) or as_float(body.get("frequency")),
            hashrate_ghs=as_float(body.get(f"chain_rate{n}")),
            hw_errors=as_int(body.get(f"chain_hw{n}")),
            status=str(body.get(f"chain_acs{n}", "")).replace(" ", "")))
    fans = [as_int(body.get(f"fan{n}")) for n in range(1, 9)]
    active = None
    for pool in (pools or {}).get("POOLS", []):
        if pool.get("Stratum Active") or active is None:
            active = pool
    return sanitize(Telemetry(
        time=time.time(), unit=unit, model="s9",
        firmware=f"{head.get('Miner', '')} {head.get('CompileTime', '')}".strip(),
        hashrate_ghs=as_float(body.get("GHS 5s", summ.get("GHS 5s"))),
        hashrate_avg_ghs=as_float(body.get("GHS av", summ.get("GHS av"))),
        chains=chains,
        chip_temp_c=_max([c.chip_temp_c for c in chains]),
        board_temp_c=_max([c.board_temp_c for c in chains]),
        frequency_mhz=as_float(body.get("frequency")),
        fan_rpm=[f for f in fans if f],
        hw_errors=as_int(summ.get("Hardware Errors")),
        accepted=as_int(summ.get("Accepted")), rejected=as_int(summ.get("Rejected")),
        best_share=as_float(summ.get("Best Share")),
        pool_difficulty=as_float((active or {}).get("Last Share Difficulty")) or as_float((active or {}).get("Diff")),
        pool_url=str((active or {}).get("URL", "")), pool_user=str((active or {}).get("User", "")),
        uptime_s=as_float(summ.get("Elapsed", body.get("Elapsed"))),
        raw={"stats": stats, "summary": summary, "pools": pools}))


class S9Unit(Unit):
    """Antminer S9, stock bmminer: reads over RPC 4028; settings through the web UI's miner
    config (digest auth), whose CGI restarts bmminer to apply them."""

    model = "s9"
    boot_timeout_s = 240.0  # reboot to first share ~60-90 s; bmminer restart less
    write_deadline_s = 180.0  # CGI reply up to ~31 s, then bmminer's start until RPC shows it
    setting_source = "get_miner_conf"
    effect_source = "RPC stats/pools"
    write_probe_refusal = "every set_miner_conf.cgi write restarts bmminer"
    capture_paths = ("/cgi-bin/get_system_info.cgi", "/cgi-bin/get_miner_conf.cgi",
                     "/cgi-bin/minerStatus.cgi")
    capture_commands = ("version", "config", "summary", "devs", "pools", "stats", "devdetails")

    def __init__(self, address: UnitAddress, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        self.rpc = CgminerRPC(self.host, address.rpc_port, timeout=self.timeout,
                              attempts=self.attempts, unit=self.name)
        auth = aiohttp.DigestAuthMiddleware(address.username or S9_WEB_USER,
                                            address.password or S9_WEB_PASSWORD)
        self.web = AntminerWeb(self.host, address.http_port, timeout=self.timeout,
                               attempts=self.attempts, unit=self.name, middlewares=(auth,))

    async def close(self) -> None:
        await self.web.close()

    async def get_raw(self, path: str) -> tuple[int, str, dict[str, str]]:
        return await self.web.send("GET", path, allow_redirects=False)

    async def identify(self) -> Identity:
        version = await self.rpc.version()
        info = (version.get("VERSION") or [{}])[0]
        return Identity("s9", self.host, self.address.rpc_port, self.address.http_port,
                        name=str(info.get("Type", "")), firmware=str(info.get("Miner", "")),
                        evidence="rpc version Type")

    async def telemetry(self) -> Telemetry:
        replies = await self.rpc.multicommand("stats", "summary", "pools")
        return parse_s9(replies["stats"], replies["summary"], replies["pools"], self.name)

    async def capabilities(self) -> Capabilities:
        return Capabilities(frequency=True, frequency_needs_restart=True, fan=True,
                            fan_needs_restart=True,
                            pool=True, pool_needs_restart=True,
                            learned=("settings: set_miner_conf.cgi restarts bmminer to load them",))

    async def miner_conf(self) -> dict[str, Any]:
        """The web UI's miner configuration (bmminer.conf as JSON)."""
        return await self.web.miner_conf()

    async def settings(self) -> dict[str, Any]:
        return conf_settings(await self.miner_conf())

    async def running(self, keys: set[str]) -> dict[str, Any]:
        """bmminer's running frequency and active pool (the fan duty is not reported)."""
        return await self._running_from_telemetry(keys)

    async def _write(self, changes: dict[str, Any]) -> bool:
        form = config_form(await self.miner_conf(), changes)
        try:
            await self.web.set_miner_conf(form)
        except Timeout as exc:   # the script may still be sleeping: the read-back decides
            log.warning("unit %s: set_miner_conf has not answered (%s); verifying by read-back",
                        self.name, exc.detail)
        return True

    async def _restart(self) -> None:
        try:
            await self.rpc.privileged("restart")
            return
        except (AccessDenied, InvalidCommand):
            pass
        await self.web.reboot()


# --------------------------------------------------------------------------- LV06

def parse_axeos(info: dict[str, Any], unit: str, model: str = "lv06") -> Telemetry:
    """AxeOS ``/api/system/info`` -> Telemetry (one chip, one board)."""
    chip_temp = as_float(info.get("temp"))
    freq = as_float(info.get("frequency"))
    rate = as_float(info.get("hashRate"))
    chain = Chain(index=0, chips=as_int(info.get("asicCount")), chip_temp_c=chip_temp,
                  chip_temps_c=[chip_temp] if chip_temp is not None else [],
                  frequency_mhz=freq, hashrate_ghs=rate)
    pool = axeos.current_pool(info)
    url = str(pool.get("stratumURL", ""))
    if url and "://" not in url:
        url = f"stratum+tcp://{url}:{pool.get('stratumPort', '')}"
    fanrpm = as_int(info.get("fanrpm", info.get("fanSpeedRpm")))  # fanSpeedRpm before v2.2
    paused = info.get("miningPaused", info.get("paused", info.get("isPaused")))
    return sanitize(Telemetry(
        time=time.time(), unit=unit, model=model,
        firmware=str(info.get("version", "")),
        hashrate_ghs=rate, hashrate_avg_ghs=as_float(info.get("hashRate_1m", info.get("hashRate"))),
        chains=[chain], chip_temp_c=chip_temp, vr_temp_c=axeos.vr_temp(info),
        power_w=as_float(info.get("power")), voltage_mv=as_float(info.get("voltage")),
        current_ma=as_float(info.get("current")),
        core_voltage_mv=as_float(info.get("coreVoltageActual", info.get("coreVoltage"))),
        frequency_mhz=freq, fan_rpm=[fanrpm] if fanrpm is not None else [],
        fan_pct=as_float(info.get("fanspeed")),
        hw_errors=None,
        accepted=as_int(info.get("sharesAccepted")), rejected=as_int(info.get("sharesRejected")),
        best_share=as_float(info.get("bestDiff")), pool_difficulty=as_float(info.get("poolDifficulty")),
        pool_url=url, pool_user=str(pool.get("stratumUser", "")),
        uptime_s=as_float(info.get("uptimeSeconds")),
        paused=bool(paused) if paused is not None else None,
        overheat=axeos.overheat_state(info),
        raw={"info": info}))


class LV06Unit(Unit):
    """Lucky Miner LV06 (ESP-Miner/AxeOS clone): HTTP API. What a unit supports is learned
    from the unit (endpoints it serves, fields it reports), never from its version string."""

    model = "lv06"
    boot_timeout_s = 60.0  # ESP32 boot + ASIC init ~5-10 s
    write_deadline_s = 30.0  # the power task ramps a new clock within seconds
    setting_source = "system/info"
    effect_source = "actualFrequency/expectedHashrate"
    # what each ESP-Miner release may serve, and an unknown /api path: its answer (404 JSON,
    # or a 302 to the web UI) tells which release a fork follows
    capture_paths = ("/", "/api/system/info", "/api/system/asic", "/api/system/statistics",
                     "/api/swarm/info", "/api/system/scoreboard", "/api/system/logs",
                     "/api/theme", "/api/system/no-such-route")

    def __init__(self, address: UnitAddress, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        self.api = axeos.AxeOSClient(self.host, address.http_port, timeout=self.timeout,
                                     attempts=self.attempts, unit=self.name)
        self._caps: Capabilities | None = None

    async def close(self) -> None:
        await self.api.close()

    async def get_raw(self, path: str) -> tuple[int, str, dict[str, str]]:
        return await self.api.send("GET", path, allow_redirects=False)

    async def identify(self) -> Identity:
        info = await self.api.system_info()
        return Identity("lv06", self.host, self.address.rpc_port, self.address.http_port,
                        name=str(info.get("minerModel") or info.get("ASICModel", "")),
                        firmware=str(info.get("version", "")), evidence="AxeOS system/info")

    async def telemetry(self) -> Telemetry:
        return parse_axeos(await self.api.system_info(), self.name)

    async def capabilities(self) -> Capabilities:
        """Learned once per driver: which endpoints answer and which fields the unit reports."""
        if self._caps is None:
            info = await self.api.system_info()
            endpoints = await self.api.endpoints()
            learned = [f"endpoints: {', '.join(sorted(endpoints)) or 'none beyond info'}"]
            # ESP-Miner v2.2.0 brought both the live clock transition and overheat_mode; a
            # field set without overheat_mode and without expectedHashrate is the older
            # apply path, which loads frequency, voltage and the fan mode at restart.
            live = "overheat_mode" in info or "expectedHashrate" in info
            learned.append("frequency/voltage/fan mode: " + (
                "live (info reports overheat_mode/expectedHashrate: power task re-reads settings)"
                if live else "at restart (info has neither overheat_mode nor expectedHashrate)"))
            learned.append("pool: at restart (a write only stores the slot; the stratum task "
                           "keeps its connection and reads the pool when it reconnects)")
            self._caps = Capabilities(
                frequency=True, voltage=True, fan=True, temp_target="temptarget" in info,
                pause="pause" in endpoints, pool=True, pool_needs_restart=True,
                frequency_needs_restart=not live, voltage_needs_restart=not live,
                fan_needs_restart=not live,     # autofanspeed is read once at start there
                learned=tuple(learned))
        return replace(self._caps, learned=self._caps.learned + self._write_evidence)

    async def settings(self) -> dict[str, Any]:
        return axeos.read_settings(await self.api.system_info())

    async def overheat(self, snapshot: Mapping[str, Any] | None = None) -> str:
        """``overheat_mode`` or the stored safe values (:func:`axeos.overheat_state`); given a
        snapshot, also v2.15's recovery: clock and core voltage each 100 below the snapshot
        (floors 400 MHz / 1000 mV) with the fan on manual 100 %
        (ESP-Miner v2.15.0 ``power_management_task.c``, ``ASIC_REDUCTION``)."""
        info = await self.api.system_info()
        state = axeos.overheat_state(info)
        if state or not snapshot:
            return state
        now = axeos.read_settings(info)
        try:
            freq, volts = float(snapshot["frequency_mhz"]), float(snapshot["core_voltage_mv"])
            reduced = (float(now["frequency_mhz"]), float(now["core_voltage_mv"]))
        except (KeyError, TypeError, ValueError):
            return ""
        expected = (freq - 100.0 if freq > 100.0 else 400.0, volts - 100.0 if volts > 100.0 else 1000.0)
        if reduced == expected and now.get("fan_auto") is False and now.get("fan_pct") == 100:
            return (f"clock {reduced[0]:g} MHz and core voltage {reduced[1]:g} mV, each 100 below "
                    f"the session's, fan on manual 100 %: the firmware recovered from an overheat "
                    f"at reduced settings")
        return ""

    async def clear_overheat_mode(self) -> None:
        """What the AxeOS "Disable Overheat Mode" button does: ``PATCH {"overheat_mode": 0}``
        (ESP-Miner 2.2+; the only value its check lets through). Verified by read-back; the
        settings the firmware lowered stay lowered until written."""
        info = await self.api.system_info()
        if "overheat_mode" not in info:
            raise UnsupportedSetting("this firmware reports no overheat_mode (v2.1.8-style: write "
                                     "new settings and restart instead)", unit=self.name,
                                     command="clear_overheat_mode")
        await self.api.patch_raw({"overheat_mode": 0})
        if (await self.api.system_info()).get("overheat_mode") not in (0, False):
            raise UnitError("overheat_mode still reads 1 after the PATCH", unit=self.name,
                            command="clear_overheat_mode")

    async def running(self, keys: set[str]) -> dict[str, Any]:
        """The running clock, from ``expectedHashrate`` (running MHz x small cores x chips)."""
        if "frequency_mhz" not in keys:
            return {}
        freq = axeos.running_frequency(await self.api.system_info())
        return {} if freq is None else {"frequency_mhz": freq}

    async def _write(self, changes: dict[str, Any]) -> bool:
        await self.api.apply(changes)
        return False

    async def _restart(self) -> None:
        await self.api.restart()

    async def pause(self) -> None:
        if not (await self.capabilities()).pause:
            await super().pause()
        await self.api.pause()

    async def resume(self) -> None:
        if not (await self.capabilities()).pause:
            await super().resume()
        await self.api.resume()

    def events(self) -> AsyncIterator[LogEvent]:
        return self.api.events()


# ------------------------------------------------------------------------- LB-Box

def parse_lbbox(devs: dict[str, Any], summary: dict[str, Any], pools: dict[str, Any] | None,
                status: dict[str, Any] | None, unit: str) -> Telemetry:
    """Goldshell cgminer devs/summary/pools (+ web status) -> Telemetry (hashrates in GH/s)."""
    chains = []
    fans: list[int] = []
    volts = []
    for i, dev in enumerate(devs.get("DEVS", [])):
        rate_mhs = as_float(dev.get("MHS 20s", dev.get("MHS 5s")))
        chains.append(Chain(
            index=as_int(dev.get("PGA", dev.get("ASC", i))) or i,
            chip_temp_c=as_float(dev.get("tstemp-0")),
            chip_temps_c=[t for t in (as_float(dev.get("tstemp-0")), as_float(dev.get("tstemp-1")))
                          if t is not None],
            board_temp_c=as_float(dev.get("tstemp-2")),
            frequency_mhz=as_float(dev.get("clock")),
            hashrate_ghs=None if rate_mhs is None else rate_mhs / 1000.0,
            hw_errors=as_int(dev.get("Hardware Errors"))))
        if not fans:
            fans = [f for j in range(8) if (f := as_int(dev.get(f"fan{j}")))]
        volts.append(as_float(dev.get("voltage")))
    summ = (summary.get("SUMMARY") or [{}])[0]
    active = None
    for pool in (pools or {}).get("POOLS", []):
        if pool.get("Stratum Active") or active is None:
            active = pool
    rate = as_float(summ.get("MHS 20s"))
    avg = as_float(summ.get("MHS av"))
    volt = _max(volts)
    return sanitize(Telemetry(
        time=time.time(), unit=unit, model="lbbox",
        firmware=str((status or {}).get("firmware", "")),
        hashrate_ghs=None if rate is None else rate / 1000.0,
        hashrate_avg_ghs=None if avg is None else avg / 1000.0,
        chains=chains, chip_temp_c=_max([c.chip_temp_c for c in chains]),
        board_temp_c=_max([c.board_temp_c for c in chains]),
        core_voltage_mv=None if volt is None else volt * 1000.0,
        frequency_mhz=_max([c.frequency_mhz for c in chains]),
        fan_rpm=fans,
        hw_errors=as_int(summ.get("Hardware Errors")),
        accepted=as_int(summ.get("Accepted")), rejected=as_int(summ.get("Rejected")),
        best_share=as_float(summ.get("Best Share")),
        pool_difficulty=as_float((active or {}).get("Last Share Difficulty")) or as_float((active or {}).get("Diff")),
        pool_url=str((active or {}).get("URL", "")), pool_user=str((active or {}).get("User", "")),
        uptime_s=as_float(summ.get("Elapsed")),
        raw={"devs": devs, "summary": summary, "pools": pools, "status": status}))


class LBBoxUnit(Unit):
    """Goldshell LB-Box: web API for settings (rate-limited), cgminer RPC for telemetry."""

    model = "lbbox"
    boot_timeout_s = 180.0  # Linux controller boot ~60 s
    write_deadline_s = 60.0  # a new plan re-tunes the board before it hashes at the new clock
    setting_source = "mcb/setting"
    effect_source = "RPC devs/pools"
    write_probe_refusal = "a settings PUT restarts the fan daemon (fan spike for minutes)"
    capture_paths = ("/", "/mcb/status", "/mcb/setting", "/mcb/pools")
    capture_commands = ("version", "summary", "devs", "pools", "stats", "devdetails")

    def __init__(self, address: UnitAddress, **kwargs: Any) -> None:
        super().__init__(address, **kwargs)
        creds = {}
        if address.username:
            creds["username"] = address.username
        if address.password:
            creds["password"] = address.password
        self.api = GoldshellClient(self.host, address.http_port, rpc_port=address.rpc_port,
                                   timeout=self.timeout, attempts=self.attempts, unit=self.name,
                                   **creds)
        self.rpc = self.api.rpc
        self._status: dict[str, Any] | None = None
        self._awake: dict[str, Any] | None = None   # plan fields to resume from sleep

    async def close(self) -> None:
        await self.api.close()

    async def get_raw(self, path: str) -> tuple[int, str, dict[str, str]]:
        return await self.api.get_raw(path)

    async def status(self) -> dict[str, Any]:
        if self._status is None:
            self._status = await self.api.status()
        return self._status

    async def identify(self) -> Identity:
        status = await self.status()
        return Identity("lbbox", self.host, self.address.rpc_port, self.address.http_port,
                        name=str(status.get("model", "")), firmware=str(status.get("firmware", "")),
                        evidence="mcb/status model")

    async def telemetry(self) -> Telemetry:
        replies = await self.rpc.multicommand("devs", "summary", "pools")
        return parse_lbbox(replies["devs"], replies["summary"], replies["pools"],
                           self._status, self.name)

    async def capabilities(self) -> Capabilities:
        setting = await self.api.setting()
        plans = power_plan_frequencies(setting)
        manual = manual_clocks(setting)
        steps = tuple(sorted(set(plans) | set(manual)))
        levels = plan_clocks(setting)
        learned = (f"frequency: power plans {', '.join(f'level {k} {v:g} MHz' for k, v in levels.items() if v)}"
                   f" in mcb/setting" + (f"; manual mode (manualPowerplan) for {len(manual)} clocks "
                                         f"{manual[0]:g}-{manual[-1]:g} MHz in 25 MHz steps"
                                         if manual else "") +
                   "; applied live (running clock read back from RPC devs)",
                   f"pause: sleep plan (level {SLEEP_LEVEL}, 0 MHz) in mcb/setting"
                   if levels.get(SLEEP_LEVEL) == 0 else "pause: no sleep plan in mcb/setting",
                   "temperature target: temp_target in mcb/setting" if "temp_target" in setting
                   else "temperature target: not in mcb/setting",
                   "pool: mcb/newpool + delpool, live")
        return Capabilities(frequency=bool(steps), frequency_steps=steps,
                            pause=levels.get(SLEEP_LEVEL) == 0,
                            temp_target="temp_target" in setting, pool=True, learned=learned)

    async def settings(self) -> dict[str, Any]:
        setting = await self.api.setting()
        out: dict[str, Any] = {}
        freq = current_frequency(setting)
        if freq is not None:
            out["frequency_mhz"] = freq
        if isinstance(setting.get("temp_target"), (int, float)):
            out["temp_target_c"] = setting["temp_target"]
        pools = await self.api.pools()
        if pools:
            out["pool_url"] = pools[0].get("url", "")
            out["pool_user"] = pools[0].get("user", "")
            out["pool_password"] = pools[0].get("pass", "")
        return out

    async def pause(self) -> None:
        """Sleep: select the 0 MHz plan (level 3); the plan or manual clock it left is kept
        for :meth:`resume`. Verified by read-back of ``select``."""
        setting = await self.api.setting()
        if plan_clocks(setting).get(SLEEP_LEVEL) != 0:
            await super().pause()
        if is_sleeping(setting):
            return
        self._awake = {k: setting.get(k) for k in ("select", "manual", "manualPowerplan")}
        await self._put_verified({**setting, "select": SLEEP_LEVEL, "manual": False}, "sleep")

    async def resume(self) -> None:
        """Back to the plan or manual clock that ran before :meth:`pause` (the stock plan
        when the unit was found asleep)."""
        setting = await self.api.setting()
        if not is_sleeping(setting):
            return
        awake = self._awake or {"select": 0, "manual": False}
        await self._put_verified({**setting, **awake}, "wake")
        self._awake = None

    async def _put_verified(self, setting: dict[str, Any], what: str) -> None:
        await self.api.put_setting(setting)
        back = await self.api.setting()
        keys = ("select", "manual") + (("manualPowerplan",) if setting.get("manual") else ())
        if any(back.get(k) != setting.get(k) for k in keys):
            raise UnitError(f"{what} did not take: mcb/setting reads "
                            f"{ {k: back.get(k) for k in keys} }", unit=self.name, command=what)

    async def running(self, keys: set[str]) -> dict[str, Any]:
        """The boards' running clock and the active pool, from the cgminer RPC."""
        return await self._running_from_telemetry(keys)

    async def _write(self, changes: dict[str, Any]) -> bool:
        if "frequency_mhz" in changes or "temp_target_c" in changes:
            setting = await self.api.setting()
            if "frequency_mhz" in changes:
                select_frequency(setting, float(changes["frequency_mhz"]))
            if "temp_target_c" in changes:
                setting["temp_target"] = changes["temp_target_c"]
            await self.api.put_setting(setting)
        if any(k.startswith("pool_") for k in changes):
            pools = await self.api.pools()
            first = pools[0] if pools else {}
            await self.api.set_pool(changes.get("pool_url", first.get("url", "")),
                                    changes.get("pool_user", first.get("user", "")),
                                    changes.get("pool_password", first.get("pass", "x")))
        return False

    async def _restart(self) -> None:
        await self.api.restart()


UNIT_CLASSES: dict[str, type[Unit]] = {"s9": S9Unit, "lv06": LV06Unit, "lbbox": LBBoxUnit}


# ----------------------------------------------------------------------- identify

async def _http_probe(host: str, port: int, timeout: float) -> tuple[str, str, str] | None:
    """(model, name, evidence) from the web UI, the AxeOS API or the Goldshell status."""
    client = HttpClient(host, port, timeout=timeout, attempts=1)
    try:
        try:
            status, body, headers = await client.send("GET", "/", command="GET /")
        except UnitError:
            return None
        realm = headers.get("WWW-Authenticate", "")
        if status == 401 and 'realm="antMiner' in realm:
            return "s9", "", "HTTP 401 digest realm antMiner"
        for path, command in (("/api/system/info", "system/info"), ("/mcb/status", "mcb/status")):
            try:
                reply = await client.get_json(path, command=command)
            except UnitError:
                continue
            if not isinstance(reply, dict):
                continue
            if command == "system/info" and ("ASICModel" in reply or "minerModel" in reply):
                name = str(reply.get("minerModel") or reply.get("ASICModel"))
                return "lv06", name, f"AxeOS system/info {name}"
            if command == "mcb/status" and "goldshell" in str(reply.get("model", "")).lower():
                return "lbbox", str(reply["model"]), f"mcb/status model {reply['model']}"
        if "cloud-box" in body:
            return "lbbox", "", "web page 'cloud-box'"
        if "AxeOS" in body or "Lucky miner" in body:
            return "lv06", "", "web page AxeOS/Lucky miner"
        return None
    finally:
        await client.close()


async def _rpc_probe(host: str, port: int, timeout: float) -> tuple[str, str, str] | None:
    rpc = CgminerRPC(host, port, timeout=timeout, attempts=1)
    for command in ("version", "stats"):
        try:
            reply = await rpc.command(command)
        except UnitError:
            continue
        for section in ("VERSION", "STATS"):
            for item in reply.get(section) or []:
                kind = str(item.get("Type", ""))
                if "Antminer S9" in kind:
                    return "s9", kind, f"rpc {command} Type {kind!r}"
                if "goldshell" in kind.lower() or "intminer" in item:
                    return "lbbox", kind, f"rpc {command} {'Type ' + kind if kind else 'intminer'}"
    return None


def _combine(host: str, web: list[tuple[int, tuple[str, str, str]]],
             rpc: list[tuple[int, tuple[str, str, str]]], rpc_port: int, http_port: int) -> Identity | None:
    """Pick the model from web evidence first (it is specific), then RPC; attach both ports."""
    found = web[0] if web else (rpc[0] if rpc else None)
    if found is None:
        return None
    model, name, evidence = found[1]
    http = web[0][0] if web else http_port
    match = [(port, r) for port, r in rpc if r[0] == model]
    rpc_at = match[0][0] if match else rpc_port
    if match and web:
        evidence += f"; {match[0][1][2]}"
        name = match[0][1][1] or name
    return Identity(model, host, rpc_at, http, name=name, evidence=evidence)


async def identify(host: str, *, rpc_port: int = RPC_PORT, http_port: int = HTTP_PORT,
                   timeout: float = 2.0) -> Identity:
    """Which model answers at ``host``: web and RPC probes run concurrently; web evidence wins."""
    web, rpc = await asyncio.gather(_http_probe(host, http_port, timeout),
                                    _rpc_probe(host, rpc_port, timeout))
    ident = _combine(host, [(http_port, web)] if web else [], [(rpc_port, rpc)] if rpc else [],
                     rpc_port, http_port)
    if ident is None:
        raise UnitError(f"no S9, LV06 or LB-Box answers on rpc {rpc_port} / http {http_port}",
                        unit=host, command="identify")
    return ident


async def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def identify_ports(host: str, ports: list[int], *, timeout: float = 2.0) -> Identity | None:
    """Like :func:`identify`, but tries web and RPC probes on every open port of a list
    (scans of simulators on ephemeral ports); None when nothing known answers."""
    open_ports = [p for p, ok in zip(ports, await asyncio.gather(
        *(_port_open(host, p, timeout) for p in ports))) if ok]
    if not open_ports:
        return None
    web = await asyncio.gather(*(_http_probe(host, p, timeout) for p in open_ports))
    rpc = await asyncio.gather(*(_rpc_probe(host, p, timeout) for p in open_ports))
    return _combine(host, [(p, w) for p, w in zip(open_ports, web) if w],
                    [(p, r) for p, r in zip(open_ports, rpc) if r], RPC_PORT, HTTP_PORT)


async def open_unit(url: str, *, timeout: float = 5.0, attempts: int = 3) -> Unit:
    """Unit URL -> a ready :class:`Unit` (``auto://`` identifies the model first)."""
    address = parse_unit_url(url)
    if address.model == "auto":
        ident = await identify(address.host, rpc_port=address.rpc_port,
                               http_port=address.http_port, timeout=timeout)
        address = UnitAddress(ident.model, address.host, address.rpc_port, address.http_port,
                              address.username, address.password)
    return UNIT_CLASSES[address.model](address, timeout=timeout, attempts=attempts)


__all__ = ["ApplyResult", "Capabilities", "Identity", "LBBoxUnit", "LV06Unit", "S9Unit",
           "SETTINGS_KEYS", "Telemetry", "Unit", "UnitAddress", "identify", "identify_ports",
           "open_unit", "parse_unit_url"]
