"""Client for the AxeOS / ESP-Miner HTTP API and its log websocket (Lucky Miner LV06).

The PATCH key set changed between firmware generations, so every write goes through
:func:`patch_body`, which maps the toolkit's canonical keys onto the generation the
unit reports:

- ``2.9``:  ``stratumURL/stratumPort/stratumUser/stratumPassword``, ``frequency``,
  ``coreVoltage``, ``autofanspeed`` (0/1), ``fanspeed`` (%), ``temptarget``;
- ``2.12``: as 2.9 but the manual fan duty is ``manualFanSpeed`` (plus ``minFanSpeed``);
- ``2.15``: pools move into ``pools: [{id, stratumURL, stratumPort, stratumUser, ...}]``
  (an item without its numeric ``id``, URL, port or user is refused with 400; an item
  replaces its whole slot, so the driver sends the slot back as read with its changes).

The generation comes from the fields ``/api/system/info`` returns (``pools``,
``manualFanSpeed``/``minFanSpeed``), never from the ``version`` string: vendor forks
report their own versions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from asic_reservoir.drivers.errors import ConnectionRefused, MalformedReply, Timeout
from asic_reservoir.drivers.events import LogEvent, parse_line
from asic_reservoir.drivers.http import HttpClient, connect_failure
from asic_reservoir.drivers.telemetry import as_float

log = logging.getLogger(__name__)

GENERATIONS = ("2.9", "2.12", "2.15")


def detect_generation(info: dict[str, Any]) -> str:
    """Which PATCH key set the firmware accepts, from the fields its info reply carries."""
    if isinstance(info.get("pools"), list):
        return "2.15"
    if "manualFanSpeed" in info or "minFanSpeed" in info:
        return "2.12"
    return "2.9"


def running_frequency(info: dict[str, Any]) -> float | None:
    """The clock the chip runs at: ``actualFrequency`` (ESP-Miner 2.14+), else from
    ``expectedHashrate`` (GH/s = MHz x small cores x chips / 1000, 2.9+). ``frequency``
    itself is the stored setting, so older firmware does not report its running clock: None."""
    actual = info.get("actualFrequency")
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return float(actual)
    rate = info.get("expectedHashrate")
    cores = info.get("smallCoreCount")
    chips = info.get("asicCount") or 1
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (rate, cores, chips)):
        return None
    if not cores or not chips:
        return None
    return round(float(rate) * 1000.0 / (float(cores) * float(chips)), 1)


# What ESP-Miner's power task stores in NVS on overheat before it reboots
# (main/tasks/power_management_task.c: v2.1.8 990 mV / 50 MHz; v2.2.0-v2.10 1000 mV / 50 MHz),
# manual fan at 100 %: a unit found with these runs in the firmware's safe mode.
SAFE_MODE_FREQUENCY_MHZ = 50.0
SAFE_MODE_VOLTAGES_MV = (990.0, 1000.0)


def overheat_state(info: dict[str, Any]) -> str:
    """The firmware's overheat safe mode as the info reply shows it, with the evidence
    ("" when none): ``overheat_mode`` 1 (v2.2.0+), or the safe values the power task stores
    before its reboot (every release up to v2.10, including those without the flag)."""
    if info.get("overheat_mode") in (1, True):
        return "overheat_mode 1: the firmware's overheat protection stopped mining"
    freq, volts = info.get("frequency"), info.get("coreVoltage")
    if (isinstance(freq, (int, float)) and isinstance(volts, (int, float))
            and float(freq) == SAFE_MODE_FREQUENCY_MHZ and float(volts) in SAFE_MODE_VOLTAGES_MV
            and not info.get("autofanspeed")):
        return (f"frequency {float(freq):g} MHz, core voltage {float(volts):g} mV, manual fan: "
                f"the values the firmware stores after an overheat (safe mode until new settings "
                f"are written and the unit restarts)")
    return ""


def vr_temp(info: dict[str, Any]) -> float | None:
    """The regulator temperature, or None where the board has no sensor for it: ESP-Miner's
    ``Power_get_vreg_temp`` reads a TPS546 only and returns 0.0 on every other board
    (``main/power/power.c`` at v2.15.0; the INA260 Ultra class, as the LV06). v2.1.8's info
    has no ``vrTemp`` at all."""
    value = as_float(info.get("vrTemp"))
    return None if value == 0 else value


def split_pool_url(url: str) -> tuple[str, int]:
    """``stratum+tcp://host:port`` -> (host, port); AxeOS stores them separately."""
    parts = urlsplit(url if "://" in url else f"stratum+tcp://{url}")
    if not parts.hostname or parts.port is None:
        raise ValueError(f"pool URL needs host and port: {url!r}")
    return parts.hostname, parts.port


def current_pool(info: dict[str, Any]) -> dict[str, Any]:
    """The active pool's fields (top-level before 2.15, first entry of ``pools`` after)."""
    pools = info.get("pools")
    if isinstance(pools, list) and pools and isinstance(pools[0], dict):
        return pools[0]
    return info


def read_settings(info: dict[str, Any]) -> dict[str, Any]:
    """Canonical settings from an info reply (the pool password is never returned by AxeOS)."""
    gen = detect_generation(info)
    pool = current_pool(info)
    fan_key = "fanspeed" if gen == "2.9" else "manualFanSpeed"
    out: dict[str, Any] = {}
    for key, src in (("frequency_mhz", "frequency"), ("core_voltage_mv", "coreVoltage"),
                     ("fan_pct", fan_key), ("temp_target_c", "temptarget")):
        if isinstance(info.get(src), (int, float)):
            out[key] = info[src]
    if "autofanspeed" in info:
        out["fan_auto"] = bool(info["autofanspeed"])
    if pool.get("stratumURL") and pool.get("stratumPort"):
        url = str(pool["stratumURL"])
        out["pool_url"] = url if "://" in url else f"stratum+tcp://{url}:{pool['stratumPort']}"
    if pool.get("stratumUser"):
        out["pool_user"] = pool["stratumUser"]
    return out


def patch_body(changes: dict[str, Any], generation: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Canonical settings -> the PATCH body for this firmware generation."""
    if generation not in GENERATIONS:
        raise ValueError(f"unknown AxeOS generation {generation!r}")
    body: dict[str, Any] = {}
    pool: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "frequency_mhz":
            body["frequency"] = value
        elif key == "core_voltage_mv":
            body["coreVoltage"] = int(value)
        elif key == "fan_auto":
            body["autofanspeed"] = 1 if value else 0
        elif key == "fan_pct":
            body["fanspeed" if generation == "2.9" else "manualFanSpeed"] = int(round(value))
        elif key == "temp_target_c":
            body["temptarget"] = int(round(value))
        elif key == "pool_url":
            pool["stratumURL"], pool["stratumPort"] = split_pool_url(value)
        elif key == "pool_user":
            pool["stratumUser"] = value
        elif key == "pool_password":
            pool["stratumPassword"] = value
        else:
            raise ValueError(f"unknown setting {key!r}")
    if pool:
        if generation == "2.15":   # every pool item names its slot: 400 without an id
            current = current_pool(info or {})
            # the item replaces its whole slot (v2.15.0 update_pool_nvs: a field left out
            # takes its default), so the slot goes back as read; its masked password
            # ("*****") tells the firmware to keep the stored one
            base = {k: v for k, v in current.items() if k.startswith("stratum")}
            body["pools"] = [{"id": current.get("id", 0), **base, **pool}]
        else:
            body.update(pool)
    return body


class AxeOSClient(HttpClient):
    """HTTP + websocket client for one ESP-Miner unit."""

    def __init__(self, host: str, port: int = 80, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.generation: str | None = None

    async def system_info(self) -> dict[str, Any]:
        info = await self.get_json("/api/system/info", command="system/info")
        if not isinstance(info, dict):
            raise MalformedReply("system/info is not an object", unit=self.unit, command="system/info")
        self.generation = detect_generation(info)
        return info

    async def endpoints(self) -> set[str]:
        """Which optional endpoints this unit serves, found by asking, not by version.

        ``asic`` and ``statistics`` by a GET whose reply must carry their fields (old
        firmware answers unknown paths with its web UI); ``pause`` by a harmless
        ``POST /api/system/resume`` on a unit that is not paused.
        """
        found: set[str] = set()
        for name, path, field in (("asic", "/api/system/asic", "frequencyOptions"),
                                  ("statistics", "/api/system/statistics", "statistics")):
            try:
                status, body, _ = await self.send("GET", path, command=f"system/{name}")
            except (Timeout, ConnectionRefused, MalformedReply):
                continue
            if status == 200:
                try:
                    reply = self.parse_json(body, name)
                except MalformedReply:
                    continue
                if isinstance(reply, dict) and field in reply:
                    found.add(name)
        info = await self.system_info()
        if not (info.get("miningPaused") or info.get("paused") or info.get("isPaused")):
            try:
                status, _, _ = await self.send("POST", "/api/system/resume", command="resume")
            except (Timeout, ConnectionRefused, MalformedReply):
                status = 0
            if status == 200:
                found.add("pause")
        return found

    async def asic_info(self) -> dict[str, Any]:
        return await self.get_json("/api/system/asic", command="system/asic")

    async def statistics(self) -> dict[str, Any]:
        """Recent history the firmware keeps (newer firmware; 404 -> HTTPError on older)."""
        return await self.get_json("/api/system/statistics", command="system/statistics")

    async def patch_raw(self, body: dict[str, Any]) -> None:
        """PATCH /api/system with a firmware-keyed body. A write: never retried."""
        status, text, _ = await self.send("PATCH", "/api/system", json_body=body,
                                          command="PATCH system")
        self.check(status, text, "PATCH system")

    async def apply(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Write canonical settings in this unit's key set; returns the body that was sent."""
        info = await self.system_info()
        body = patch_body(changes, self.generation or "2.9", info)
        await self.patch_raw(body)
        return body

    async def _post(self, path: str, command: str) -> None:
        status, text, _ = await self.send("POST", path, command=command)
        self.check(status, text, command)

    async def restart(self) -> None:
        await self._post("/api/system/restart", "restart")

    async def pause(self) -> None:
        await self._post("/api/system/pause", "pause")

    async def resume(self) -> None:
        await self._post("/api/system/resume", "resume")

    async def log_lines(self) -> AsyncIterator[str]:
        """Raw console lines from ``/api/ws`` until the unit closes the socket.

        A clean close ends the stream; a connection that drops (a reboot, a reset, the
        network) raises :class:`ConnectionRefused` after the lines received before it, so a
        caller can tell "the unit hung up" from "the unit went away".
        """
        try:
            async with self.session().ws_connect(self.base_url + "/api/ws", heartbeat=None,
                                                 timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout)) as ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        for line in msg.data.splitlines():
                            if line.strip():
                                yield line
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        for line in msg.data.decode("utf-8", errors="replace").splitlines():
                            if line.strip():
                                yield line
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                        break
                if ws.close_code != aiohttp.WSCloseCode.OK:
                    raise ConnectionRefused(f"websocket dropped (close code {ws.close_code})",
                                            unit=self.unit, command="ws")
        except aiohttp.WSServerHandshakeError as exc:
            self.check(exc.status, exc.message, "ws")
            raise MalformedReply(f"websocket handshake failed: {exc}", unit=self.unit,
                                 command="ws") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionRefused(connect_failure(self.port, exc.os_error), unit=self.unit,
                                    command="ws") from None
        except TimeoutError:
            raise Timeout("websocket timed out", unit=self.unit, command="ws") from None

    async def events(self) -> AsyncIterator[LogEvent]:
        """Typed events from the log stream (the same parser as the serial console)."""
        async for line in self.log_lines():
            event = parse_line(line)
            if event is not None:
                yield event
