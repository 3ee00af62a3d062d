"""Lucky Miner LV06 HTTP API on port 80: the AxeOS/ESP-Miner web server as Lucky ships it.

The LV06 runs a closed clone of ESP-Miner (BM1366). What differs between releases lives in
one small class per firmware generation (:data:`RELEASES`), each registering exactly the URI
table of its upstream release (``routes()``: method, wildcard URI, handler, in the order
``start_rest_server`` registers them) and serving its fields and status codes (tables and
sources: firmware_notes/lucky-miner-lv06.md; checked by tests/test_firmware_conformance.py
and tests/test_firmware_routes.py):

* :class:`LuckyFork218` -- the stock fork as upstream v2.1.8 (plus Lucky's ``minerModel``):
  info with ``fanSpeedRpm``, suffix-string ``bestDiff`` and the *stored* ``frequency``;
  PATCH stores without validation and answers 200; swarm endpoints; OTA/OTAWWW uploads
  (``ota.py``); no network check; what it has no handler for is a 302 to ``/`` (GET: the
  file server's) or 405;
* :class:`AxeOS215` -- ESP-Miner v2.15.0: the full info object in the release's order,
  asic/statistics/pause/resume, validated PATCH with pool slots, JSON restart reply, the
  service endpoints of ``axeos_services.py`` (scoreboard, WiFi scan, logs, boot, theme,
  recovery page, ``/api/ws/live``) and ``ota.py``, ``404 {"error":"unknown route"}`` for
  any other ``/api/*``, and the private-network check (peer and ``Origin`` must be 10/8,
  172.16/12 or 192.168/16; loopback is accepted too -- a deliberate deviation, because the
  simulator only ever listens on 127.0.0.0/8).

Common to both: ``POST /api/system/restart`` restarts ~1 s after answering; ``/api/ws``
streams the firmware's ESP_LOG lines as websocket text frames; the web server holds the
release's open-connection table (``sessions.py``: v2.1.8 seven, an eighth waits; v2.15.0
twenty, then the least recently used is closed; v2.15.0 also refuses an eleventh websocket
with ``429``); a reboot closes the streams and, while the unit boots, the web server drops
connections; unknown non-API paths redirect (302) to ``/``; the index page carries "Lucky
miner" -- the string identification tools key on, and not "AxeOS" (tools test for "AxeOS"
first and would classify the unit as a Bitaxe).
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
import re
from collections import deque
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from asic_reservoir.simulator.firmware.apiformat import suffix_string
from asic_reservoir.simulator.firmware.axeos_services import AxeOSServices
from asic_reservoir.simulator.firmware.coinbase import CoinbaseFacts, decode as decode_coinbase
from asic_reservoir.simulator.firmware.esp_httpd import (
    CORS_HEADERS, NOT_JSON, bad_request, cjson_float, cjson_number, cjson_parse, cjson_view,
    httpd_path, method_not_allowed)
from asic_reservoir.simulator.firmware.ota import UploadsV215, UploadsV218
from asic_reservoir.simulator.firmware.sessions import SessionLimit
from asic_reservoir.simulator.firmware.webserver import FirmwareWebServer
from asic_reservoir.simulator.physics import SettingsError
from asic_reservoir.simulator.profiles import profile

log = logging.getLogger(__name__)

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

# (rest_name, type, min, max) as in ESP-Miner's nvs_config.c settings table at v2.15.0 (every
# key with a rest_name except ``pools``, which is checked item by item); "str" bounds are lengths.
# Top-level stratum keys and ``fanspeed``/``flipscreen`` are no settings there: ignored.
_SETTINGS: dict[str, tuple[str, float, float]] = {
    "ssid": ("str", 1, 32), "wifiPass": ("str", 0, 63), "hostname": ("str", 1, 32),
    "primaryPoolIndex": ("u16", 0, 7), "secondaryPoolIndex": ("u16", 0, 7),
    "useFallbackStratum": ("bool", 0, 1),
    "frequency": ("float", 1, 65535), "coreVoltage": ("u16", 1, 65535),
    "overclockEnabled": ("bool", 0, 1), "display": ("str", 0, 4000),
    "rotation": ("u16", 0, 270), "invertscreen": ("bool", 0, 1),
    "displayOffset": ("u16", 0, 255), "displayTimeout": ("i32", -1, 65535),
    "autofanspeed": ("bool", 0, 1), "manualFanSpeed": ("u16", 0, 100),
    "minFanSpeed": ("u16", 0, 99), "temptarget": ("u16", 35, 66),
    "overheat_mode": ("bool", 0, 0), "useCustomWWW": ("bool", 0, 1),
    "statsFrequency": ("u16", 0, 65535),
}
DISPLAYS = ("NONE", "SSD1306 (128x32)", "SSD1309 (128x64)", "SH1107 (64x128)",
            "SH1107 (128x128)")        # main/display.h display_configs (the default second)
MAX_POOLS = 8                          # main/global_state.h


@functools.lru_cache(maxsize=256)
def is_private(ip: str) -> bool:
    """Whether ``ip`` is in a private range (cached: every request checks its peer)."""
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
    """Validation as v2.15.0's check_settings_and_update: one message per bad key (empty =
    valid). Numbers are checked on cJSON's ``valueint`` (truncated), floats on the double."""
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
            elif key == "display" and v not in DISPLAYS:
                errors.append(f"Invalid display config: '{v}'")
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
            elif key == "rotation" and int(v) not in (0, 90, 180, 270):
                errors.append(f"Invalid display rotation: '{int(v)}'")
    return errors


def _string_ok(item: dict, key: str, limit: int) -> bool:
    return key not in item or (isinstance(item[key], str) and len(item[key]) <= limit)


def _number_in(item: dict, key: str, lo: float, hi: float) -> bool:
    v = item.get(key)
    return key not in item or (isinstance(v, (int, float)) and not isinstance(v, bool)
                               and lo <= v <= hi)


def _bool_or_number(item: dict, key: str) -> bool:
    return key not in item or isinstance(item[key], (bool, int, float))


def pool_item_valid(item: Any) -> bool:
    """v2.15.0's validate_pool_json: URL, port and user required, the rest type-checked."""
    if not isinstance(item, dict):
        return False
    url, user = item.get("stratumURL"), item.get("stratumUser")
    port = item.get("stratumPort")
    return (isinstance(url, str) and url != "" and isinstance(user, str) and user != ""
            and isinstance(port, (int, float)) and not isinstance(port, bool)
            and item.get("stratumProtocol", "SV1") in ("SV1", "SV2")
            and _string_ok(item, "stratumURL", 255) and _number_in(item, "stratumPort", 1, 65535)
            and _string_ok(item, "stratumUser", 255) and _string_ok(item, "stratumPassword", 255)
            and _number_in(item, "stratumSuggestedDifficulty", 0, 1e18)
            and _bool_or_number(item, "stratumExtranonceSubscribe")
            and _number_in(item, "stratumTLS", 0, 2) and _string_ok(item, "stratumCert", 3000)
            and _bool_or_number(item, "stratumDecodeCoinbase")
            and item.get("stratumV2ChannelType", "extended") in ("extended", "standard")
            and _string_ok(item, "stratumV2AuthorityPubkey", 128)
            and _bool_or_number(item, "stratumV2RequireAuth"))


class AxeOSServer(FirmwareWebServer):
    """The LV06's HTTP + websocket API for one simulated unit."""

    def __init__(self, unit: Any, *, hostname: str = "LV06") -> None:
        super().__init__()
        self.unit = unit
        self.profile = profile(unit.reading().model)
        self.release: AxeOSRelease = RELEASES[unit.generation.name](self)
        self.session_limit = self.release.sessions
        self.hostname = hostname
        self.host = "127.0.0.1"              # the address a client reached (ipv4 in info)
        self._clients: set[web.WebSocketResponse] = set()
        self._queues: dict[web.WebSocketResponse, asyncio.Queue] = {}
        self._listening = False
        self.app = web.Application(middlewares=[self._network_middleware])
        for method, uri, handler in self.release.routes():
            self.app.router.add_route(method, httpd_path(uri), handler)

    async def start(self, host: str = "127.0.0.1", port: int = 80) -> int:
        self.host = host
        self.release.attach()
        return await super().start(host, port)

    async def stop(self) -> None:
        await self.release.detach()
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
        if self.release.network_check and not (is_private(peer) and is_private(source)):
            return web.Response(status=401, text="Unauthorized", content_type="text/html")
        try:
            response = await handler(request)
        except web.HTTPMethodNotAllowed:      # the URI has handlers, none for this method
            response = method_not_allowed()
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response

    # ------------------------------------------------------------- routes
    async def _files(self, request: web.Request) -> web.Response:
        """The ``/*`` GET handler: the web UI's page, and for a file it does not have the
        404 error handler's redirect to ``/`` (the captive portal's)."""
        if request.path in ("/", "/index.html"):
            return web.Response(text=INDEX_HTML, content_type="text/html")
        return web.Response(status=302, text="Redirect to the captive portal",
                            headers={"Location": "/"})

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.release.info())

    async def _asic(self, request: web.Request) -> web.Response:
        p = self.profile
        return web.json_response({
            "ASICModel": p.chip_model, "deviceModel": p.name, "swarmColor": "purple",
            "asicCount": p.n_chains * p.chips_per_chain, "hashDomains": HASH_DOMAINS,
            "defaultFrequency": int(p.freq_default_mhz),
            "frequencyOptions": [int(f) for f in p.freq_options_mhz],
            "defaultVoltage": int(p.voltage_default_mv),
            "voltageOptions": [int(v) for v in p.voltage_options_mv],
        })

    async def _patch(self, request: web.Request) -> web.Response:
        return await self.release.patch(cjson_parse(await request.read()))

    def unit_changes(self, body: dict, fan_key: str) -> dict[str, Any]:
        """A PATCH body's top-level keys -> the unit's canonical settings."""
        changes: dict[str, Any] = {}
        if "frequency" in body:
            changes["frequency_mhz"] = float(body["frequency"])
        if "coreVoltage" in body:
            changes["core_voltage_mv"] = float(body["coreVoltage"])
        if "autofanspeed" in body:
            changes["fan_auto"] = bool(body["autofanspeed"])
        if fan_key in body:
            changes["fan_pct"] = float(body[fan_key])
        if "temptarget" in body:
            changes["temp_target_c"] = float(body["temptarget"])
        return changes

    def pool_changes(self, pool: dict) -> dict[str, Any]:
        """``stratumURL/Port/User/Password`` (top level or one pool item) -> pool settings."""
        changes: dict[str, Any] = {}
        if "stratumURL" in pool or "stratumPort" in pool:
            host, port = self.pool_address()
            host = pool.get("stratumURL", host)
            port = int(pool.get("stratumPort", port))
            changes["pool_url"] = f"stratum+tcp://{host}:{port}"
        if "stratumUser" in pool:
            changes["pool_user"] = pool["stratumUser"]
        if "stratumPassword" in pool:
            changes["pool_password"] = pool["stratumPassword"]
        return changes

    def pool_address(self) -> tuple[str, int]:
        """The stored pool as AxeOS keeps it: host and port apart."""
        return _split_pool_url(str(self.unit.settings().get("pool_url", "")))

    async def _restart(self, request: web.Request) -> web.Response:
        log.info("Restarting System because of API Request")
        self.restart_soon()
        return self.release.restart_reply()

    def restart_soon(self) -> None:
        """esp_restart() a second after the reply went out (the handlers' vTaskDelay)."""
        async def later() -> None:
            await asyncio.sleep(RESTART_DELAY_S)
            await self.unit.restart()

        self.release.restarted()
        self._spawn(later())

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

    def websocket_refusal(self) -> web.Response | None:
        """websocket_pre_handshake (v2.15.0): log and live clients share the release's
        websocket slots; 429 beyond them. Older releases have no such check."""
        slots = self.release.max_websocket_clients
        if slots is not None and len(self._clients) + self.release.live_client_count() >= slots:
            return web.Response(status=429, text="Max WebSocket clients reached")
        return None

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        refused = self.websocket_refusal()
        if refused is not None:
            return refused
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



Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


class AxeOSRelease:
    """The release-specific part of the API: its URI table, the info fields, PATCH."""

    single_log_client = False     # /api/ws streams to the newest client only
    network_check = True          # 401 unless the client and its Origin are private
    sessions: SessionLimit        # the web server's open-connection table
    max_websocket_clients: int | None = None

    def __init__(self, server: AxeOSServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        """The release's URI table: (method, firmware wildcard URI, handler), in the order
        its ``start_rest_server`` registers them."""
        raise NotImplementedError

    def attach(self) -> None:
        """The server starts: begin keeping what the firmware keeps from boot on."""

    async def detach(self) -> None:
        """The server stops."""

    def live_client_count(self) -> int:
        return 0

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    async def patch(self, body: Any) -> web.Response:
        raise NotImplementedError

    def restarted(self) -> None:
        """The API asked for a restart (reset reason, counters that survive it)."""

    def restart_reply(self) -> web.Response:
        raise NotImplementedError



async def _options(request: web.Request) -> web.Response:
    """handle_options_request: the CORS headers, nothing else."""
    return web.Response(headers=CORS_HEADERS)


class LuckyFork218(AxeOSRelease):
    """Lucky's stock fork, as upstream v2.1.8 (``http_server.c`` at that tag).

    ``frequency``, ``coreVoltage`` and ``fanspeed`` are the values stored in NVS (the power
    task loads clock, voltage and fan mode once at start); the fan rpm is ``fanSpeedRpm``.
    PATCH copies known keys to NVS without any check and always answers 200: a value the
    chip cannot take is dropped here (it would not run either), and the read-back shows it.
    ``/api/ws`` remembers one socket (``static int fd``): a new client takes the log stream
    over and the previous one, still connected, receives nothing more. v2.1.8 has no
    private-network check, no JSON 404 for ``/api``: every GET it has no handler for goes to
    the file server, which redirects (302) what it cannot find; any other method on such a
    path is ``405``. It serves ``/api/swarm/info`` and ``PATCH /api/swarm`` (the swarm list
    as the web UI stored it, ``[]`` by default); OPTIONS only on ``/api/system`` and
    ``/api/swarm``.
    """

    single_log_client = True
    network_check = False
    # start_rest_server keeps HTTPD_DEFAULT_CONFIG's max_open_sockets 7, lru_purge off
    sessions = SessionLimit(7)

    def __init__(self, server: AxeOSServer) -> None:
        super().__init__(server)
        self.nvs: dict[str, Any] = {"flipscreen": 1, "invertscreen": 0, "invertfanpolarity": 1}
        self.swarm = "[]"

    def routes(self) -> list[Route]:
        srv, uploads = self.server, UploadsV218()
        return [("GET", "/api/system/info", srv._info), ("GET", "/api/swarm/info", self._swarm),
                ("PATCH", "/api/swarm", self._set_swarm), ("OPTIONS", "/api/swarm", _options),
                ("POST", "/api/system/restart", srv._restart),
                ("PATCH", "/api/system", srv._patch), ("OPTIONS", "/api/system", _options),
                ("POST", "/api/system/OTA", uploads.ota),
                ("POST", "/api/system/OTAWWW", uploads.www),
                ("GET", "/api/ws", srv._ws), ("GET", "/*", srv._files)]

    async def _swarm(self, request: web.Request) -> web.Response:
        return web.Response(text=self.swarm, content_type="application/json", headers=CORS_HEADERS)

    async def _set_swarm(self, request: web.Request) -> web.Response:
        self.swarm = (await request.read()).decode("utf-8", errors="replace")
        return web.Response(status=200, body=b"", headers=CORS_HEADERS)

    def info(self) -> dict[str, Any]:
        srv = self.server
        r = srv.unit.reading()
        s = srv.unit.settings()
        host, port = srv.pool_address()
        fan_rpm = r.fans[0][0] if r.fans else 0.0
        # http_server.c GET_system_info at v2.1.8, in its order; Lucky adds minerModel
        return {
            "power": round(r.power_w, 3), "voltage": round(r.input_voltage_mv, 3),
            "current": round(r.current_ma, 3), "fanSpeedRpm": int(round(fan_rpm)),
            "temp": round(r.chip_temp_c, 3), "hashRate": round(r.hashrate_ghs, 3),
            # cgminer-style suffix strings
            "bestDiff": suffix_string(r.best_share), "bestSessionDiff": suffix_string(r.best_share),
            "freeHeap": 174200,
            "coreVoltage": int(round(float(s.get("core_voltage_mv", r.core_voltage_mv)))),
            "coreVoltageActual": int(round(r.core_voltage_actual_mv)),
            "frequency": int(round(float(s.get("frequency_mhz", r.frequency_mhz)))),
            "ssid": "lab", "hostname": srv.hostname, "wifiStatus": "Connected!",
            "sharesAccepted": int(r.accepted), "sharesRejected": int(r.rejected),
            "uptimeSeconds": int(max(r.uptime_s, 0)), "ASICModel": srv.profile.chip_model,
            "stratumURL": host, "stratumPort": port, "stratumUser": str(s.get("pool_user", "")),
            "version": srv.unit.generation.version, "boardVersion": "0.11",
            "runningPartition": "ota_0", "flipscreen": self.nvs["flipscreen"],
            "invertscreen": self.nvs["invertscreen"],
            "invertfanpolarity": self.nvs["invertfanpolarity"],
            "autofanspeed": 1 if s.get("fan_auto", r.fan_auto) else 0,
            "fanspeed": int(round(float(s.get("fan_pct", 100)))),
            "minerModel": srv.profile.name,
        }

    async def patch(self, body: Any) -> web.Response:
        if isinstance(body, dict):
            body = cjson_view(body, _V218_KEYS)       # cJSON_GetObjectItem ignores case
            for field, value in body.items():
                try:
                    changes = {**self.server.unit_changes({field: value}, "fanspeed"),
                               **self.server.pool_changes({field: value})}
                    if changes:
                        self.server.unit.apply(**changes)
                except (SettingsError, TypeError, ValueError) as exc:
                    # the firmware would store cJSON's valueint (0) for a string: a unit that
                    # cannot hash; the simulator keeps the old value and the read-back shows it
                    log.info("LV06 %s: %s not stored: %s", self.__class__.__name__, field, exc)
            for key in self.nvs:
                if key in body:
                    self.nvs[key] = body[key]
        return web.Response(status=200, body=b"", headers=CORS_HEADERS)

    def restart_reply(self) -> web.Response:
        return web.Response(text="System will restart shortly.", content_type="text/html")



_V218_KEYS = ("stratumURL", "stratumUser", "stratumPassword", "stratumPort", "ssid", "wifiPass",
              "hostname", "coreVoltage", "frequency", "flipscreen", "invertscreen",
              "invertfanpolarity", "autofanspeed", "fanspeed")


# A pool slot as v2.15.0's parse_pool_config_json fills an empty one (system.c): slot 0 takes
# the build's CONFIG_STRATUM_* values instead (here the unit's pool).
_POOL_DEFAULTS: dict[str, Any] = {
    "stratumProtocol": "SV1", "stratumURL": "", "stratumPort": 3333, "stratumUser": "",
    "stratumPassword": "x", "stratumSuggestedDifficulty": 0, "stratumExtranonceSubscribe": False,
    "stratumTLS": 0, "stratumCert": "", "stratumDecodeCoinbase": True,
    "stratumV2ChannelType": "extended", "stratumV2AuthorityPubkey": "",
    "stratumV2RequireAuth": False,
}
# GET info pool items, in system_api_json.c's order (the password always masked)
_POOL_ITEM_KEYS = ("stratumProtocol", "stratumURL", "stratumPort", "stratumUser",
                   "stratumPassword", "stratumSuggestedDifficulty", "stratumExtranonceSubscribe",
                   "stratumTLS", "stratumCert", "stratumDecodeCoinbase", "stratumV2ChannelType",
                   "stratumV2AuthorityPubkey", "stratumV2RequireAuth")
_LEGACY_POOL_KEYS = ("URL", "Port", "User", "SuggestedDifficulty", "ExtranonceSubscribe", "TLS",
                     "Cert", "DecodeCoinbase", "Protocol", "V2AuthorityPubkey", "V2ChannelType")


class RateHistory:
    """The hash rates this API sampled in the last hour (unit time), averaged over the
    10 m and 1 h windows. A unit is polled many times a simulated second in a closed loop,
    so each window keeps an exact running sum (a double is an integer multiple of
    2**-1074): O(1) per sample, and the correctly rounded mean of the window's samples."""

    WINDOWS_S = (600.0, 3600.0)
    _SCALE = 2 ** 1074

    def __init__(self) -> None:
        self._samples: dict[float, deque[tuple[float, int]]] = {w: deque() for w in self.WINDOWS_S}
        self._totals: dict[float, int] = dict.fromkeys(self.WINDOWS_S, 0)

    def add(self, t: float, rate: float) -> None:
        num, den = float(rate).as_integer_ratio()
        exact = num * (self._SCALE // den)
        for window, samples in self._samples.items():
            samples.append((t, exact))
            self._totals[window] += exact

    def mean(self, now: float, window_s: float, current: float) -> float:
        """Mean of the samples taken at ``now - window_s`` or later (``current`` if none);
        unit time only moves forward, so older samples are dropped for good."""
        samples = self._samples[window_s]
        while samples and samples[0][0] < now - window_s:
            self._totals[window_s] -= samples.popleft()[1]
        return self._totals[window_s] / (len(samples) * self._SCALE) if samples else current

    def clear(self) -> None:
        for samples in self._samples.values():
            samples.clear()
        self._totals = dict.fromkeys(self.WINDOWS_S, 0)


STATS_LABELS = ("hashrate", "hashrate_1m", "hashrate_10m", "hashrate_1h", "errorPercentage",
                "asicTemp", "asicTemp2", "vrTemp", "asicVoltage", "voltage", "power", "current",
                "fanSpeed", "fanRpm", "fan2Rpm", "wifiRssi", "freeHeap", "responseTime")
STATS_LIMIT = 720                      # MAX_STATISTICS_COUNT (statistics_task.h)
HASH_DOMAINS = 4                       # BM1366 hash domains (asic endpoint)
IDF_VERSION = "v6.0.2"                 # the ESP-IDF v2.15.0's release workflow builds with
# ESP32 figures the simulator cannot measure (estimates: an ESP32-S3 with 8 MB PSRAM running
# AxeOS, as the AxeOS UI's own mock reply shows them)
_HEAP = {"freeHeap": 200504, "freeHeapInternal": 90112, "freeHeapSpiram": 7_900_000,
         "minFreeHeap": 180000, "maxAllocHeap": 45056}
_CPU_USAGE = 12.5
_WIFI_RSSI = -50


class AxeOS215(AxeOSRelease):
    """Current AxeOS (ESP-Miner v2.15.0): asic/statistics/pause endpoints, validated PATCH,
    pools as slots with ids, running clock in ``actualFrequency``.

    ``/api/system/info`` serves exactly v2.15.0's fields, in its order and with its JSON
    types (``system_api_json.c`` ``system_api_get_full_json`` plus ``fullHostname`` /
    ``mdnsHostname`` from ``http_server.c``), with the release's conditions: the block fields
    once a job's coinbase told the firmware a height, ``power_fault`` / ``hardware_fault``
    never (the simulated unit has no regulator or chip-count fault). Values come from the
    simulated unit; what it cannot know (heap, CPU, WiFi signal) is a fixed estimate.
    PATCH follows ``check_settings_and_update``: the v2.15.0 settings table (top-level
    stratum keys and ``fanspeed`` are ignored there), then ``pools`` items, each replacing
    its whole slot (``update_pool_nvs``: a field left out takes its default, the password
    ``"*****"`` keeps the stored one, no password stores ``"x"``).
    """

    # start_rest_server: max_open_sockets 20, lru_purge_enable; websocket.h MAX_WEBSOCKET_CLIENTS
    sessions = SessionLimit(20, lru_purge=True)
    max_websocket_clients = 10

    def __init__(self, server: AxeOSServer) -> None:
        super().__init__(server)
        self.nvs: dict[str, Any] = {
            "primaryPoolIndex": 0, "secondaryPoolIndex": 1, "useFallbackStratum": 0,
            "useCustomWWW": 0, "overclockEnabled": 0, "display": "SSD1306 (128x32)",
            "rotation": 0, "invertscreen": 0, "displayOffset": 0, "displayTimeout": -1,
            "minFanSpeed": 25, "statsFrequency": 0, "ssid": "lab", "wifiPass": "",
        }
        first = dict(_POOL_DEFAULTS, stratumSuggestedDifficulty=1000)
        self.pools: list[dict[str, Any]] = [first] + [dict(_POOL_DEFAULTS) for _ in range(MAX_POOLS - 1)]
        self.reset_reason = "Reset due to power-on event"
        self._rates_seen = RateHistory()                     # the 10 m and 1 h averages
        self._rows: list[list[float]] = []
        self._last_uptime = 0.0
        self._carried_uptime = 0.0                           # noinit: survives soft resets
        self._carried_hashes = 0.0
        self._last_hashes = 0.0
        self._identify_until = 0.0
        # the app partitions (partitions.csv): the firmware runs from ota_0, the others hold
        # none (estimate: a unit flashed once over the air; build date of v2.15.0)
        self.partitions: list[dict[str, Any]] = [
            {"label": "factory", "isCurrent": False, "isFactory": True, "version": None,
             "compileDate": None, "compileTime": None, "usagePercent": None},
            {"label": "ota_0", "isCurrent": True, "isFactory": False,
             "version": server.unit.generation.version, "compileDate": "Aug 20 2026",
             "compileTime": "22:19:13", "usagePercent": 41},
            {"label": "ota_1", "isCurrent": False, "isFactory": False, "version": None,
             "compileDate": None, "compileTime": None, "usagePercent": None}]
        self.services = AxeOSServices(server, self.nvs, self.partitions, self.full_info,
                                      _WIFI_RSSI)
        self.uploads = UploadsV215(server.restart_soon, self.nvs)

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[Route]:
        srv, svc, uploads = self.server, self.services, self.uploads
        return [
            ("OPTIONS", "/api/*", _options), ("GET", "/recovery", svc.recovery),
            ("GET", "/api/theme", svc.theme_get), ("POST", "/api/theme", svc.theme_post),
            ("GET", "/api/system/info", srv._info), ("POST", "/api/system/boot", svc.boot),
            ("GET", "/api/system/asic", srv._asic),
            ("GET", "/api/system/statistics", self._statistics),
            ("GET", "/api/system/scoreboard", svc.scoreboard),
            ("GET", "/api/system/wifi/scan", svc.wifi_scan),
            ("GET", "/api/system/logs", svc.logs),
            ("POST", "/api/system/identify", self._identify),
            ("POST", "/api/system/restart", srv._restart),
            ("POST", "/api/system/pause", srv._pause), ("POST", "/api/system/resume", srv._resume),
            ("POST", "/api/system/blockFound/dismiss", self._dismiss_block),
            ("PATCH", "/api/system", srv._patch),
            ("PUT", "/api/system/pools/*", self._put_pool),
            ("DELETE", "/api/system/pools/*", self._delete_pool),
            ("POST", "/api/system/OTA", uploads.ota), ("POST", "/api/system/OTAWWW", uploads.www),
            ("GET", "/api/ws", srv._ws), ("GET", "/api/ws/live", svc.live),
            ("*", "/api/*", self._unknown_api), ("GET", "/*", srv._files)]

    def attach(self) -> None:
        self.services.attach()

    async def detach(self) -> None:
        await self.services.detach()

    def live_client_count(self) -> int:
        return len(self.services.live_clients)

    def restarted(self) -> None:
        self.reset_reason = "Software reset via esp_restart"

    async def _identify(self, request: web.Request) -> web.Response:
        """POST_identify: toggles 30 s of "Hi!" on the display."""
        now = self.server.unit.clock.now()
        if now < self._identify_until:
            self._identify_until = 0.0
            return web.json_response({"message": 'The device no longer says "Hi!".'})
        self._identify_until = now + 30.0
        return web.json_response({"message": 'The device says "Hi!" for 30 seconds.'})

    async def _dismiss_block(self, request: web.Request) -> web.Response:
        return web.json_response({"blockFound": 0, "showNewBlock": False,
                                  "message": "Block found notification dismissed"})

    @staticmethod
    def _pool_index(request: web.Request) -> int | None:
        """The slot after the last "/", read as C's atoi does (no digits: 0); None when
        outside the 8 slots."""
        digits = re.match(r"\s*([+-]?\d*)", request.path.rsplit("/", 1)[-1]).group(1)
        index = int(digits) if digits.strip("+-") else 0
        return index if 0 <= index < MAX_POOLS else None

    async def _put_pool(self, request: web.Request) -> web.Response:
        """PUT_system_pool: one slot replaced (update_pool_nvs), the primary's pool applied."""
        index = self._pool_index(request)
        if index is None:
            return bad_request("Invalid pool index")
        raw = await request.read()
        if not raw:
            return bad_request("Invalid request length")
        item = cjson_parse(raw)
        if item is NOT_JSON:
            return bad_request("Invalid JSON")
        item = cjson_view(item, _POOL_ITEM_KEYS)
        if not pool_item_valid(item):
            return bad_request("Invalid pool configuration payload")
        self.pools[index] = self._slot_from(item, index)
        if index == self.nvs["primaryPoolIndex"]:
            try:
                self.server.unit.apply(**self._primary_pool_changes())
            except SettingsError as exc:
                log.info("LV06 pool PUT refused: %s", exc)
                return bad_request("Invalid pool configuration payload")
        return web.json_response({"message": "Pool updated successfully"}, headers=CORS_HEADERS)

    async def _delete_pool(self, request: web.Request) -> web.Response:
        """DELETE_system_pool: clears a slot that is neither primary nor fallback."""
        index = self._pool_index(request)
        if index is None:
            return bad_request("Invalid pool index")
        if index in (self.nvs["primaryPoolIndex"], self.nvs["secondaryPoolIndex"]):
            return bad_request("Cannot delete a pool that is currently selected as primary "
                                "or fallback")
        self.pools[index] = dict(_POOL_DEFAULTS)
        return web.json_response({"message": "Pool cleared successfully"}, headers=CORS_HEADERS)

    def _primary_pool_changes(self) -> dict[str, Any]:
        slot = self.pools[self.nvs["primaryPoolIndex"]]
        return self.server.pool_changes({k: slot[k] for k in (
            "stratumURL", "stratumPort", "stratumUser", "stratumPassword")})

    def restart_reply(self) -> web.Response:
        return web.json_response({"message": "System will restart shortly."})

    async def _unknown_api(self, request: web.Request) -> web.Response:
        """rest_api_common_handler: any method on an /api/* path nothing else serves."""
        return web.json_response({"error": "unknown route"}, status=404)

    # ------------------------------------------------------------ unit state
    def _observe(self, r: Any) -> None:
        """Track what the firmware accumulates between requests: restarts (uptime going
        back), the noinit totals that survive them, the hash-rate history."""
        if r.uptime_s < self._last_uptime:
            self._carried_uptime += self._last_uptime
            self._carried_hashes += self._last_hashes
            self._rates_seen.clear()
            self._rows.clear()
            if self.reset_reason == "Reset due to power-on event":
                self.reset_reason = "Software reset via esp_restart"
        self._last_uptime = r.uptime_s
        self._last_hashes = r.hashrate_avg_ghs * 1e9 * max(r.uptime_s, 0.0)
        if r.hashrate_ghs > 0:
            self._rates_seen.add(r.time_s, r.hashrate_ghs)
        every = self.nvs["statsFrequency"]
        now_ms = int(max(r.uptime_s, 0.0) * 1000)
        if every and (not self._rows or now_ms - self._rows[-1][-1] >= every * 1000):
            self._rows = (self._rows + [self._stats_row(r, now_ms)])[-STATS_LIMIT:]

    def _rates(self, r: Any) -> tuple[float, float, float, float]:
        """hashRate, 1 m, 10 m, 1 h: the simulated rate is already a 60 s window of chip
        results; the longer ones average what this API sampled (hashrate_monitor_task keeps
        1 m blocks of its 5 s polls: same windows, coarser sampling)."""
        rate = r.hashrate_ghs
        return (rate, rate, self._rates_seen.mean(r.time_s, 600.0, rate),
                self._rates_seen.mean(r.time_s, 3600.0, rate))

    def _error_percentage(self, r: Any) -> float:
        """hashrate_monitor_task: error hash rate / total x 100; here hardware errors per
        result (accepted + rejected + errors), an estimate from the unit's counters."""
        results = r.accepted + r.rejected + r.hw_errors
        return 100.0 * r.hw_errors / results if results else 0.0

    def _stats_row(self, r: Any, now_ms: int) -> list[float]:
        rate, r1m, r10m, r1h = self._rates(r)
        fan_rpm, fan_pct = (r.fans[0] if r.fans else (0.0, 0.0))
        return [cjson_float(rate), cjson_float(r1m), cjson_float(r10m), cjson_float(r1h),
                cjson_float(self._error_percentage(r)), cjson_float(r.chip_temp_c), -1,
                cjson_float(r.vr_temp_c), int(round(r.core_voltage_actual_mv)),
                cjson_float(r.input_voltage_mv), cjson_float(r.power_w), cjson_float(r.current_ma),
                cjson_float(fan_pct), int(round(fan_rpm)), 0, _WIFI_RSSI, _HEAP["freeHeap"], 0.0,
                now_ms]

    async def _statistics(self, request: web.Request) -> web.Response:
        r = self.server.unit.reading()
        self._observe(r)
        asked = [c for c in request.query.get("columns", "").split(",") if c in STATS_LABELS]
        chosen = [i for i, label in enumerate(STATS_LABELS) if not asked or label in asked]
        return web.json_response(cjson_number({
            "currentTimestamp": int(max(r.uptime_s, 0.0) * 1000),
            "labels": [STATS_LABELS[i] for i in chosen] + ["timestamp"],
            "statistics": [[row[i] for i in chosen] + [row[-1]] for row in self._rows],
        }))

    # ------------------------------------------------------------------ info
    def _pool_slot(self, index: int) -> dict[str, Any]:
        """A slot's stored configuration; the primary's address is the unit's pool."""
        slot = dict(self.pools[index])
        if index == self.nvs["primaryPoolIndex"]:
            host, port = self.server.pool_address()
            user = str(self.server.unit.settings().get("pool_user", ""))
            slot.update(stratumURL=host, stratumPort=port, stratumUser=user)
        return slot

    def _coinbase(self, pool: dict[str, Any]) -> CoinbaseFacts | None:
        miner = self.server.unit.miner
        job = miner.job
        if job is None or job.algorithm != "sha256d":
            return None
        return decode_coinbase(job.coinb1, job.coinb2, job.version, job.nbits,
                               len(miner.extranonce1) + miner.extranonce2_size,
                               pool["stratumUser"], bool(pool["stratumDecodeCoinbase"]))

    def full_info(self) -> dict[str, Any]:
        """system_api_get_full_json: what GET info and the live stream both send."""
        srv = self.server
        unit, p = srv.unit, srv.profile
        r = unit.reading()
        s = unit.settings()
        self._observe(r)
        rate, r1m, r10m, r1h = self._rates(r)
        fan_rpm, fan_pct = (r.fans[0] if r.fans else (0.0, 0.0))
        chips = p.n_chains * p.chips_per_chain
        primary = self._pool_slot(self.nvs["primaryPoolIndex"])
        fallback = self._pool_slot(self.nvs["secondaryPoolIndex"])
        coinbase = self._coinbase(primary)
        total_hashes = self._carried_hashes + self._last_hashes
        info: dict[str, Any] = {
            "power": cjson_float(r.power_w), "voltage": cjson_float(r.input_voltage_mv),
            "current": cjson_float(r.current_ma), "temp": cjson_float(r.chip_temp_c),
            "temp2": -1,                       # Thermal_get_chip_temp2: no second sensor
            "vrTemp": cjson_float(r.vr_temp_c), "coreVoltageActual": cjson_float(r.core_voltage_actual_mv),
            "actualFrequency": cjson_float(r.frequency_mhz),
            "expectedHashrate": cjson_float(r.frequency_mhz * p.hashes_per_clock * chips / 1000.0),
            "fanspeed": cjson_float(fan_pct), "fanrpm": int(round(fan_rpm)), "fan2rpm": 0,
            "hashRate": cjson_float(rate), "hashRate_1m": cjson_float(r1m), "hashRate_10m": cjson_float(r10m),
            "hashRate_1h": cjson_float(r1h), "errorPercentage": cjson_float(self._error_percentage(r)),
            "sharesAccepted": int(r.accepted), "sharesRejected": int(r.rejected),
            "sharesPending": 0, "bestDiff": int(r.best_share), "bestSessionDiff": int(r.best_share),
            "poolDifficulty": int(r.pool_difficulty), "responseTime": 0.0,
            "responseShareBatch": 0, "processTime": 0.0,
            "workReceived": 1 if unit.miner.job is not None else 0,
            "blockFound": 0, "showNewBlock": False,
        }
        if coinbase is not None and coinbase.block_height > 0:
            info.update({
                "blockHeight": coinbase.block_height, "scriptsig": coinbase.scriptsig,
                "networkDifficulty": coinbase.network_difficulty,
                "coinbaseValueTotalSatoshis": coinbase.total_value_sat,
                "coinbaseValueUserSatoshis": coinbase.user_value_sat,
            })
        info.update(_HEAP)
        info.update({
            "uptimeSeconds": int(max(r.uptime_s, 0)),
            "totalUptimeSeconds": int(self._carried_uptime + max(r.uptime_s, 0)),
            "totalHashes": int(total_hashes),
            "totalLog2Work": math.log2(total_hashes) if total_hashes >= 1 else 0.0,
            "cpuUsage": _CPU_USAGE, "miningPaused": bool(r.paused),
            "overheat_mode": int(unit.overheat_mode), "wifiStatus": "Connected!",
            "wifiRSSI": _WIFI_RSSI,
            # power_fault / hardware_fault: only when set; the simulated unit has neither
            "version": unit.generation.version, "axeOSVersion": unit.generation.version,
            "idfVersion": IDF_VERSION, "boardVersion": "0.11", "maxPower": 25,
            "nominalVoltage": 5, "smallCoreCount": int(p.hashes_per_clock),
            "ASICModel": p.chip_model, "isPSRAMAvailable": 1, "resetReason": self.reset_reason,
            "runningPartition": "ota_0", "macAddr": r.mac, "hostname": srv.hostname,
            "ssid": self.nvs["ssid"], "ipv4": srv.host, "ipv6": "", "apEnabled": 0,
            "poolConnectionInfo": "IPv4" if r.pool_connected else "",
            "isUsingFallbackStratum": 0,
            "primaryPoolIndex": self.nvs["primaryPoolIndex"],
            "secondaryPoolIndex": self.nvs["secondaryPoolIndex"],
            "useFallbackStratum": int(bool(self.nvs["useFallbackStratum"])),
            "pools": [{"id": i, **{k: ("*****" if k == "stratumPassword" else slot[k])
                                   for k in _POOL_ITEM_KEYS}}
                      for i, slot in enumerate(self._pool_slot(i) for i in range(MAX_POOLS))
                      if slot["stratumURL"]],
        })
        for prefix, slot in (("stratum", primary), ("fallbackStratum", fallback)):
            for key in _LEGACY_POOL_KEYS:
                info[prefix + key] = slot["stratum" + key]
        info.update({
            "useCustomWWW": int(bool(self.nvs["useCustomWWW"])),
            "overclockEnabled": int(bool(self.nvs["overclockEnabled"])),
            "display": self.nvs["display"], "rotation": self.nvs["rotation"],
            "invertscreen": int(bool(self.nvs["invertscreen"])),
            "displayTimeout": self.nvs["displayTimeout"],
            "autofanspeed": 1 if s.get("fan_auto", r.fan_auto) else 0,
            "manualFanSpeed": int(round(float(s.get("fan_pct", 100)))),
            "minFanSpeed": self.nvs["minFanSpeed"],
            "temptarget": int(round(float(s.get("temp_target_c", r.temp_target_c)))),
            "coreVoltage": int(round(float(s.get("core_voltage_mv", r.core_voltage_mv)))),
            "frequency": cjson_float(float(s.get("frequency_mhz", r.frequency_mhz))),
            "statsFrequency": self.nvs["statsFrequency"], "statsLimit": STATS_LIMIT,
            # hashrate_monitor_task: per chip, per hash domain (not modelled: equal shares)
            "hashrateMonitor": {"asics": [
                {"total": cjson_float(rate / chips), "errorCount": int(r.hw_errors / chips),
                 "domains": [cjson_float(rate / chips / HASH_DOMAINS)] * HASH_DOMAINS}
                for _ in range(chips)]},
            "partitions": [dict(part) for part in self.partitions],
            "sharesRejectedReasons": self._rejected_reasons(r),
        })
        if coinbase is not None and coinbase.block_height > 0:
            info["blockSignals"] = list(coinbase.signals)
            info["coinbaseOutputs"] = [{"value": v, "address": a} for v, a in coinbase.outputs]
        return cjson_number(info)

    def info(self) -> dict[str, Any]:
        """GET_system_info: the full object plus the mDNS names."""
        info = self.full_info()
        info["fullHostname"] = f"{self.server.hostname}.local"
        info["mdnsHostname"] = self.server.hostname
        return info

    @staticmethod
    def _rejected_reasons(r: Any) -> list[dict[str, Any]]:
        """The pool's reject messages with counts; the unit knows only which were stale (the
        pool's code 21, "Job not found") and how many others there were."""
        reasons = [("Job not found", r.stale), ("Rejected", r.rejected - r.stale)]
        return [{"message": m, "count": int(n)} for m, n in reasons if n > 0]

    # ----------------------------------------------------------------- PATCH
    async def patch(self, body: Any) -> web.Response:
        if body is NOT_JSON:
            return bad_request("Invalid JSON")
        if not isinstance(body, dict):          # valid JSON, but no object: nothing to store
            return web.Response(status=200, body=b"", headers=CORS_HEADERS)
        body = cjson_view(body, (*_SETTINGS, "pools"))   # cJSON_GetObjectItem ignores case
        pools = body.get("pools")
        if isinstance(pools, list):
            pools = [cjson_view(item, ("id", *_POOL_ITEM_KEYS)) for item in pools]
        if check_settings(body) or not self._pools_valid(pools):
            return bad_request("Wrong API input")
        srv = self.server
        changes = srv.unit_changes(body, "manualFanSpeed")
        primary_before = self.nvs["primaryPoolIndex"]
        for key in self.nvs:
            if key in body:
                self.nvs[key] = int(body[key]) if isinstance(body[key], (bool, float)) else body[key]
        slots = {int(item["id"]): self._slot_from(item, int(item["id"])) for item in pools or []}
        for index, slot in slots.items():
            self.pools[index] = slot
        primary = self.nvs["primaryPoolIndex"]
        if (primary in slots or primary != primary_before) and self.pools[primary]["stratumURL"]:
            changes.update(self._primary_pool_changes())
        try:
            if changes:
                srv.unit.apply(**changes)
        except SettingsError as exc:
            log.info("LV06 PATCH refused: %s", exc)
            return bad_request("Wrong API input")
        if "overheat_mode" in body:         # only 0 passes the check: the user clears the flag
            srv.unit.overheat_mode = False
        hostname = body.get("hostname")
        if isinstance(hostname, str) and hostname.removesuffix(".local") != srv.hostname:
            srv.hostname = hostname.removesuffix(".local")
            return web.json_response({"status": "success", "redirect": {
                "url": f"http://{srv.hostname}.local", "delay": 2000,
                "message": "Hostname updated. Redirecting to new address..."}})
        return web.Response(status=200, body=b"", headers=CORS_HEADERS)

    def _slot_from(self, item: dict[str, Any], index: int) -> dict[str, Any]:
        """update_pool_nvs: the item over the defaults; "*****" keeps the stored password."""
        slot = {k: item.get(k, default) for k, default in _POOL_DEFAULTS.items()}
        password = item.get("stratumPassword")
        if password == "*****":
            slot["stratumPassword"] = self.pools[index]["stratumPassword"]
        elif not isinstance(password, str):
            slot["stratumPassword"] = "x"
        for key in ("stratumExtranonceSubscribe", "stratumDecodeCoinbase", "stratumV2RequireAuth"):
            slot[key] = bool(slot[key])
        return slot

    def _pools_valid(self, pools: Any) -> bool:
        if pools is None:
            return True
        if not isinstance(pools, list):
            return False
        return all(isinstance(item, dict) and isinstance(item.get("id"), (int, float))
                   and not isinstance(item.get("id"), bool) and 0 <= int(item["id"]) < MAX_POOLS
                   and pool_item_valid(item) for item in pools)


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
