"""Lucky Miner LV06 HTTP API on port 80: the AxeOS/ESP-Miner web server as Lucky ships it.

The LV06 runs a closed clone of ESP-Miner (BM1366).  Behaviour follows
ESP-Miner's ``main/http_server/http_server.c`` with the Lucky changes; what differs
between releases lives in one small class per firmware generation (:data:`RELEASES`):
:class:`LuckyFork218` (the stock fork, upstream v2.1.8 behaviour: info with
``fanSpeedRpm`` and the *stored* ``frequency``, PATCH stores without validation and
answers 200, no asic/statistics/pause endpoints) and :class:`AxeOS215` (current
AxeOS: the list below). Common to both:

* every route first checks the client: the peer address and, when present, the
  ``Origin`` header (``http://<ipv4>...``) must be private (10/8, 172.16/12,
  192.168/16), else ``401 Unauthorized``.  Loopback is accepted too -- a
  deliberate deviation, because the simulator only ever listens on 127.0.0.0/8;
* ``GET /api/system/info`` with the Lucky fields: ``minerModel`` ``"LV06"`` and
  ``bestDiff``/``bestSessionDiff`` as cgminer ``suffix_string`` text (``"4.29G"``)
  as older firmware prints them (newer upstream prints numbers);
* ``GET /api/system/asic`` (BM1366 frequency/voltage options),
  ``GET /api/system/statistics`` (label/row table, upstream >= 2.10);
* ``PATCH /api/system``: body must be JSON (``400 Invalid JSON``); every known
  key is type- and range-checked before anything is stored
  (``400 Wrong API input``); unknown keys are ignored; success is ``200`` with an
  empty body.  Frequency, core voltage and fan settings apply live (recent
  firmware), pool settings at the next restart;
* ``POST /api/system/restart`` answers ``System will restart shortly.`` and
  restarts ~1 s later; ``POST /api/system/pause`` / ``resume`` (upstream 2.15)
  answer ``{"message": "Mining paused"}`` / ``... resumed``;
* ``/api/ws`` streams the firmware's ESP_LOG lines (``asic_result`` etc.) as
  websocket text frames, at most 10 clients (``429`` beyond); a reboot closes
  the streams and, while the unit boots, the web server drops connections;
* unknown ``/api/*`` routes answer ``404 {"error":"unknown route"}``; other
  unknown paths redirect (302) to ``/``;
* the index page carries "Lucky miner" -- the string identification tools key
  on.  It does *not* carry "AxeOS": tools test for "AxeOS" first and would
  classify the unit as a Bitaxe.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from typing import Any

from aiohttp import WSMsgType, web

from asic_reservoir.simulator.firmware.apiformat import suffix_string
from asic_reservoir.simulator.firmware.webserver import FirmwareWebServer
from asic_reservoir.simulator.physics import SettingsError
from asic_reservoir.simulator.profiles import profile

log = logging.getLogger(__name__)

MAX_WEBSOCKET_CLIENTS = 10
RESTART_DELAY_S = 1.0
LOG_QUEUE_LIMIT = 1000
WS_BOOT_CHECK_S = 0.2         # how often an idle log stream notices a reboot
_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in
                      ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"))

INDEX_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Lucky miner</title>
  <base href="/">
  <meta name="viewport" content="width=device-width, initial-scale=1">
</head>
<body>
  <app-root>Lucky miner</app-root>
</body>
</html>
"""

# (rest_name, type, min, max) as in ESP-Miner's nvs_config table (v2.12); "str" bounds are lengths.
_SETTINGS: dict[str, tuple[str, float, float]] = {
    "ssid": ("str", 1, 32), "wifiPass": ("str", 0, 63), "hostname": ("str", 1, 32),
    "stratumURL": ("str", 0, 128), "stratumPort": ("u16", 0, 65535),
    "stratumUser": ("str", 0, 128), "stratumPassword": ("str", 0, 128),
    "stratumSuggestedDifficulty": ("u16", 0, 65535),
    "stratumExtranonceSubscribe": ("bool", 0, 1),
    "fallbackStratumURL": ("str", 0, 128), "fallbackStratumPort": ("u16", 0, 65535),
    "fallbackStratumUser": ("str", 0, 128), "fallbackStratumPassword": ("str", 0, 128),
    "frequency": ("float", 1, 65535), "coreVoltage": ("u16", 1, 65535),
    "overclockEnabled": ("bool", 0, 1), "flipscreen": ("bool", 0, 1),
    "invertscreen": ("bool", 0, 1), "autofanspeed": ("bool", 0, 1),
    "fanspeed": ("u16", 0, 100), "manualFanSpeed": ("u16", 0, 100),
    "minFanSpeed": ("u16", 0, 99), "temptarget": ("u16", 35, 66),
    "overheat_mode": ("bool", 0, 0), "statsFrequency": ("u16", 0, 65535),
    "rotation": ("u16", 0, 270), "displayTimeout": ("i32", -1, 65535),
}


def is_private(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return False
        addr = addr.ipv4_mapped
    return any(addr in net for net in _PRIVATE_NETS)


def origin_ip(origin: str) -> str:
    """ESP-Miner's extract_origin_ip_addr: the text after ``http://`` up to ``/``."""
    start = origin.find("http://")
    if start < 0:
        return ""
    rest = origin[start + 7:]
    return rest.split("/", 1)[0]


def check_settings(body: dict) -> list[str]:
    """Validation as check_settings_and_update: one message per bad key (empty = valid)."""
    errors = []
    for key, (kind, lo, hi) in _SETTINGS.items():
        if key not in body:
            continue
        v = body[key]
        if kind == "str":
            if not isinstance(v, str):
                errors.append(f"Invalid type for '{key}', expected string")
            elif not lo <= len(v) <= hi:
                errors.append(f"Value '{v}' for '{key}' is out of length ({lo:.0f}-{hi:.0f})")
        elif kind == "bool":
            if not isinstance(v, (bool, int, float)):
                errors.append(f"Invalid type for '{key}', expected bool")
            elif not math.isfinite(v) or not lo <= int(v) <= hi:
                errors.append(f"Value '{v}' for '{key}' is out of range")
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                errors.append(f"Invalid type for '{key}', expected number")
            elif not math.isfinite(v) or not lo <= (v if kind == "float" else int(v)) <= hi:
                errors.append(f"Value '{v}' for '{key}' is out of range")
    return errors


class AxeOSServer(FirmwareWebServer):
    """The LV06's HTTP + websocket API for one simulated unit."""

    def __init__(self, unit: Any, *, hostname: str = "LV06") -> None:
        super().__init__()
        self.unit = unit
        self.profile = profile(unit.reading().model)
        self.release: AxeOSRelease = RELEASES[unit.generation.name](self)
        self.hostname = hostname
        self._stored: dict[str, Any] = {
            "stratumSuggestedDifficulty": 1000, "stratumExtranonceSubscribe": 0,
            "fallbackStratumURL": "", "fallbackStratumPort": 3333, "fallbackStratumUser": "",
            "flipscreen": 1, "invertscreen": 0, "overclockEnabled": 0, "statsFrequency": 0,
            "minFanSpeed": 25, "rotation": 0, "displayTimeout": -1,
        }
        self._clients: set[web.WebSocketResponse] = set()
        self._queues: dict[web.WebSocketResponse, asyncio.Queue] = {}
        self._stats: list[list[float]] = []
        self._listening = False
        self.app = web.Application(middlewares=[self._network_middleware])
        r = self.app.router
        r.add_get("/", self._index)
        r.add_get("/index.html", self._index)
        r.add_get("/api/system/info", self._info)
        r.add_patch("/api/system", self._patch)
        r.add_post("/api/system/restart", self._restart)
        r.add_get("/api/ws", self._ws)
        self.release.add_routes(r)
        r.add_route("OPTIONS", "/{tail:.*}", self._options)
        r.add_route("*", "/api/{tail:.*}", self._api_unknown)
        r.add_get("/{tail:.*}", self._redirect)

    async def stop(self) -> None:
        if self._listening:
            self.unit.remove_log_listener(self._on_log)
            self._listening = False
        for ws in list(self._clients):
            await ws.close()
        await super().stop()

    # ---------------------------------------------------------- middleware
    @web.middleware
    async def _network_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.unit.booting and request.transport is not None:
            request.transport.close()          # rebooting: the web server is not up
            raise web.HTTPServiceUnavailable()
        peer = request.remote or ""
        origin = request.headers.get("Origin")
        source = origin_ip(origin) if origin is not None else peer
        if not (is_private(peer) and is_private(source)):
            return web.Response(status=401, text="Unauthorized", content_type="text/html")
        response = await handler(request)
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response

    # ------------------------------------------------------------- routes
    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=INDEX_HTML, content_type="text/html")

    async def _redirect(self, request: web.Request) -> web.Response:
        return web.Response(status=302, text="Redirect to the captive portal",
                            headers={"Location": "/"})

    async def _api_unknown(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "unknown route"}, status=404)

    async def _options(self, request: web.Request) -> web.Response:
        return web.Response(headers={"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                                     "Access-Control-Allow-Headers": "Content-Type"})

    def _info_dict(self) -> dict[str, Any]:
        return self.release.info()

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self._info_dict())

    async def _asic(self, request: web.Request) -> web.Response:
        p = self.profile
        return web.json_response({
            "ASICModel": p.chip_model, "deviceModel": p.name, "swarmColor": "purple",
            "asicCount": p.n_chains * p.chips_per_chain, "hashDomains": 4,
            "defaultFrequency": int(p.freq_default_mhz),
            "frequencyOptions": [int(f) for f in p.freq_options_mhz],
            "defaultVoltage": int(p.voltage_default_mv),
            "voltageOptions": [int(v) for v in p.voltage_options_mv],
        })

    async def _statistics(self, request: web.Request) -> web.Response:
        info = self._info_dict()
        now_ms = int(time.monotonic() * 1000)
        row = [info["hashRate"], info["temp"], info["vrTemp"], info["power"], info["voltage"],
               info["current"], info["coreVoltageActual"], info["fanspeed"], info["fanrpm"],
               info["freeHeap"], now_ms]
        self._stats = (self._stats + [row])[-720:]
        return web.json_response({
            "currentTimestamp": now_ms,
            "labels": ["hashrate", "asicTemp", "vrTemp", "power", "voltage", "current",
                       "coreVoltageActual", "fanspeed", "fanrpm", "freeHeap", "timestamp"],
            "statistics": self._stats,
        })

    async def _patch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        return await self.release.patch(body)

    def unit_changes(self, body: dict) -> dict[str, Any]:
        """A PATCH body's top-level keys -> the unit's canonical settings."""
        changes: dict[str, Any] = {}
        if "frequency" in body:
            changes["frequency_mhz"] = float(body["frequency"])
        if "coreVoltage" in body:
            changes["core_voltage_mv"] = float(body["coreVoltage"])
        if "autofanspeed" in body:
            changes["fan_auto"] = bool(body["autofanspeed"])
        for key in ("fanspeed", "manualFanSpeed"):
            if key in body:
                changes["fan_pct"] = float(body[key])
        if "temptarget" in body:
            changes["temp_target_c"] = float(body["temptarget"])
        changes.update(self.pool_changes(body))
        return changes

    def pool_changes(self, pool: dict) -> dict[str, Any]:
        """``stratumURL/Port/User/Password`` (top level or one pool item) -> pool settings."""
        changes: dict[str, Any] = {}
        if "stratumURL" in pool or "stratumPort" in pool:
            s = self.unit.settings()
            host, port = _split_pool_url(str(s.get("pool_url", "")))
            host = pool.get("stratumURL", host)
            port = int(pool.get("stratumPort", port))
            changes["pool_url"] = f"stratum+tcp://{host}:{port}"
        if "stratumUser" in pool:
            changes["pool_user"] = pool["stratumUser"]
        if "stratumPassword" in pool:
            changes["pool_password"] = pool["stratumPassword"]
        return changes

    def common_info(self, r: Any) -> dict[str, Any]:
        """The fields every release reports, from the unit's state (``r``: its reading)."""
        s = self.unit.settings()
        host, port = _split_pool_url(str(s.get("pool_url", "")))
        return {
            "power": round(r.power_w, 3), "voltage": round(r.input_voltage_mv, 3),
            "current": round(r.current_ma, 3), "temp": round(r.chip_temp_c, 3),
            "hashRate": round(r.hashrate_ghs, 3),
            "freeHeap": 174200,
            "coreVoltage": int(round(float(s.get("core_voltage_mv", r.core_voltage_mv)))),
            "coreVoltageActual": int(round(r.core_voltage_actual_mv)),
            "frequency": int(round(float(s.get("frequency_mhz", r.frequency_mhz)))),
            "ssid": "lab", "hostname": self.hostname, "wifiStatus": "Connected!",
            "sharesAccepted": int(r.accepted), "sharesRejected": int(r.rejected),
            "uptimeSeconds": int(max(r.uptime_s, 0)), "ASICModel": self.profile.chip_model,
            "stratumURL": host, "stratumPort": port, "stratumUser": str(s.get("pool_user", "")),
            "version": self.unit.generation.version, "boardVersion": "0.11",
            "runningPartition": "ota_0", "invertscreen": self._stored["invertscreen"],
            "autofanspeed": 1 if s.get("fan_auto", r.fan_auto) else 0,
        }

    def store(self, body: dict) -> None:
        for key in self._stored:
            if key in body:
                self._stored[key] = body[key]

    async def _restart(self, request: web.Request) -> web.Response:
        log.info("Restarting System because of API Request")

        async def later() -> None:
            await asyncio.sleep(RESTART_DELAY_S)
            await self.unit.restart()

        self._spawn(later())
        return web.Response(text="System will restart shortly.", content_type="text/plain")

    async def _pause(self, request: web.Request) -> web.Response:
        self.unit.pause()
        return web.json_response({"message": "Mining paused"})

    async def _resume(self, request: web.Request) -> web.Response:
        self.unit.resume()
        return web.json_response({"message": "Mining resumed"})

    # ------------------------------------------------------------ websocket
    def _on_log(self, line: str) -> None:
        text = line if line.endswith("\n") else line + "\n"
        for q in self._queues.values():
            if q.qsize() < LOG_QUEUE_LIMIT:     # a stalled client drops lines, never blocks the unit
                q.put_nowait(text)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= MAX_WEBSOCKET_CLIENTS:
            return web.Response(status=429, text="Max WebSocket clients reached")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        if self.release.single_log_client:   # the firmware keeps one socket: the newest wins
            self._queues.clear()
        self._clients.add(ws)
        self._queues[ws] = queue
        if not self._listening:
            self.unit.add_log_listener(self._on_log)
            self._listening = True
        sender = asyncio.ensure_future(self._pump(ws, queue, request.transport))
        try:
            async for msg in ws:            # clients never need to send; drain until close
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            sender.cancel()
            self._clients.discard(ws)
            self._queues.pop(ws, None)
            if not self._clients and self._listening:
                self.unit.remove_log_listener(self._on_log)
                self._listening = False
        return ws

    async def _pump(self, ws: web.WebSocketResponse, queue: asyncio.Queue,
                    transport: asyncio.BaseTransport | None) -> None:
        last_uptime = self.unit.reading().uptime_s
        try:
            while not ws.closed:
                try:
                    line: str | None = await asyncio.wait_for(queue.get(), WS_BOOT_CHECK_S)
                except asyncio.TimeoutError:
                    line = None
                if line is not None:
                    await ws.send_str(line)
                r = self.unit.reading()
                if r.booting or r.uptime_s < last_uptime:
                    if transport is not None:   # the ESP32 rebooted: its sockets just vanish
                        transport.close()
                    return
                last_uptime = r.uptime_s
        except (ConnectionError, RuntimeError):
            pass



class AxeOSRelease:
    """The release-specific part of the API: extra routes, the info fields, PATCH."""

    single_log_client = False     # /api/ws streams to the newest client only

    def __init__(self, server: AxeOSServer) -> None:
        self.server = server

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Endpoints beyond info, PATCH, restart and ws (none in the oldest releases)."""

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    async def patch(self, body: Any) -> web.Response:
        raise NotImplementedError


class LuckyFork218(AxeOSRelease):
    """Lucky's stock fork, as upstream v2.1.8 (http_server.c at that tag).

    ``frequency``, ``coreVoltage`` and ``fanspeed`` are the values stored in NVS (the power
    task loads clock, voltage and fan mode once at start); the fan rpm is ``fanSpeedRpm``.
    PATCH copies known keys to NVS without any check and always answers 200: a value the
    chip cannot take is dropped here (it would not run either), and the read-back shows it.
    ``/api/ws`` remembers one socket (``static int fd``): a new client takes the log stream
    over and the previous one, still connected, receives nothing more.
    """

    single_log_client = True

    def info(self) -> dict[str, Any]:
        srv = self.server
        r = srv.unit.reading()
        fan_rpm = r.fans[0][0] if r.fans else 0.0
        info = srv.common_info(r)
        info.update({"fanSpeedRpm": int(round(fan_rpm)),
                     "fanspeed": int(round(float(srv.unit.settings().get("fan_pct", 100)))),
                     # cgminer-style suffix strings, and Lucky's model field
                     "bestDiff": suffix_string(r.best_share),
                     "bestSessionDiff": suffix_string(r.best_share),
                     "minerModel": srv.profile.name, "flipscreen": srv._stored["flipscreen"],
                     "invertfanpolarity": 1})
        return info

    async def patch(self, body: Any) -> web.Response:
        if isinstance(body, dict):
            for field, value in _known(body, _V218_KEYS).items():
                try:
                    changes = self.server.unit_changes({field: value})
                    if changes:
                        self.server.unit.apply(**changes)
                except (SettingsError, TypeError, ValueError) as exc:
                    # the firmware would store cJSON's valueint (0) for a string: a unit that
                    # cannot hash; the simulator keeps the old value and the read-back shows it
                    log.info("LV06 %s: %s not stored: %s", self.__class__.__name__, field, exc)
            self.server.store(body)
        return web.Response(status=200, body=b"")


_V218_KEYS = ("stratumURL", "stratumUser", "stratumPassword", "stratumPort", "ssid", "wifiPass",
              "hostname", "coreVoltage", "frequency", "flipscreen", "invertscreen",
              "invertfanpolarity", "autofanspeed", "fanspeed")


def _known(body: dict, keys: tuple[str, ...]) -> dict:
    return {k: v for k, v in body.items() if k in keys}


class AxeOS215(AxeOSRelease):
    """Current AxeOS (v2.15): asic/statistics/pause endpoints, validated PATCH, pools list with
    ids (an item without a numeric ``id`` -> 400), running clock in ``actualFrequency`` and
    ``expectedHashrate``.

    ``/api/system/info`` serves a subset of v2.15.0's fields (``system_api_json.c``): those
    the drivers or pyasic read, plus the identity, WiFi and pool fields a client shows; the
    WiFi-detail, heap, block, display and hash-monitor fields are left out. ``pools`` lists
    only slots with a URL (as the release does) and masks the password as ``*****``.
    """

    MAX_POOLS = 2

    def add_routes(self, router: web.UrlDispatcher) -> None:
        srv = self.server
        router.add_get("/api/system/asic", srv._asic)
        router.add_get("/api/system/statistics", srv._statistics)
        router.add_post("/api/system/pause", srv._pause)
        router.add_post("/api/system/resume", srv._resume)

    def info(self) -> dict[str, Any]:
        srv = self.server
        r = srv.unit.reading()
        s = srv.unit.settings()
        p = srv.profile
        fan_rpm, fan_pct = (r.fans[0] if r.fans else (0.0, 0.0))
        chips = p.n_chains * p.chips_per_chain
        stored = srv._stored
        info = srv.common_info(r)
        info.update({
            "vrTemp": round(r.vr_temp_c, 3), "maxPower": 25, "nominalVoltage": 5,
            "actualFrequency": round(r.frequency_mhz, 1),
            "expectedHashrate": round(r.frequency_mhz * p.hashes_per_clock * chips / 1000.0, 3),
            "isUsingFallbackStratum": 0, "macAddr": r.mac,
            "bestDiff": round(r.best_share), "bestSessionDiff": round(r.best_share),
            "smallCoreCount": int(p.hashes_per_clock), "idfVersion": "v5.1.2",
            "fallbackStratumURL": stored["fallbackStratumURL"],
            "fallbackStratumPort": stored["fallbackStratumPort"],
            "fallbackStratumUser": stored["fallbackStratumUser"],
            "stratumSuggestedDifficulty": stored["stratumSuggestedDifficulty"],
            "poolDifficulty": int(r.pool_difficulty), "overheat_mode": int(srv.unit.overheat_mode),
            "miningPaused": bool(r.paused),
            "fanspeed": int(round(fan_pct)), "manualFanSpeed": int(round(float(s.get("fan_pct", 100)))),
            "minFanSpeed": stored["minFanSpeed"],
            "temptarget": int(round(float(s.get("temp_target_c", r.temp_target_c)))),
            "fanrpm": int(round(fan_rpm)),
            # the simulated hashRate is already a 60 s window (profile hashrate_window_s)
            "hashRate_1m": round(r.hashrate_ghs, 3),
            "rotation": stored["rotation"], "displayTimeout": stored["displayTimeout"],
            "overclockEnabled": stored["overclockEnabled"], "statsFrequency": stored["statsFrequency"],
        })
        slots = [(info["stratumURL"], info["stratumPort"], info["stratumUser"]),
                 (stored["fallbackStratumURL"], stored["fallbackStratumPort"],
                  stored["fallbackStratumUser"])]
        info["pools"] = [
            {"id": i, "stratumURL": url, "stratumPort": port, "stratumUser": user,
             "stratumPassword": "*****",
             "stratumSuggestedDifficulty": stored["stratumSuggestedDifficulty"]}
            for i, (url, port, user) in enumerate(slots) if url]
        return info

    async def patch(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            return web.Response(status=400, text="Invalid JSON", content_type="text/html")
        pools = body.get("pools")
        if check_settings(body) or not self._pools_valid(pools):
            return web.Response(status=400, text="Wrong API input", content_type="text/html")
        changes = self.server.unit_changes(body)
        for item in pools or []:
            if item["id"] == 0:
                changes.update(self.server.pool_changes(item))
        try:
            if changes:
                self.server.unit.apply(**changes)
        except SettingsError as exc:
            log.info("LV06 PATCH refused: %s", exc)
            return web.Response(status=400, text="Wrong API input", content_type="text/html")
        if "overheat_mode" in body:         # only 0 passes the check: the user clears the flag
            self.server.unit.overheat_mode = False
        self.server.store(body)
        return web.Response(status=200, body=b"")

    def _pools_valid(self, pools: Any) -> bool:
        if pools is None:
            return True
        if not isinstance(pools, list):
            return False
        return all(isinstance(item, dict) and isinstance(item.get("id"), int)
                   and not isinstance(item.get("id"), bool) and 0 <= item["id"] < self.MAX_POOLS
                   for item in pools)


RELEASES: dict[str, type[AxeOSRelease]] = {"lucky-2.1.8": LuckyFork218, "axeos-2.15": AxeOS215}


def _split_pool_url(url: str) -> tuple[str, int]:
    """``stratum+tcp://host:port`` -> (host, port); AxeOS stores them separately."""
    rest = url.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host:
        return rest, 3333
    try:
        return host, int(port)
    except ValueError:
        return rest, 3333
