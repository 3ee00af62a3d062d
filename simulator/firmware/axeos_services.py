"""ESP-Miner v2.15.0's endpoints beside settings and telemetry, served from the simulated
unit's own state (``main/http_server/http_server.c``, ``theme_api.c``, ``websocket.c``,
``websocket_api.c`` at v2.15.0; what is simulated and what is not:
firmware_notes/lucky-miner-lv06.md):

* ``GET /api/system/scoreboard``: the 20 best chip results the unit found (``scoreboard.py``);
* ``GET /api/system/wifi/scan``: ``{"networks": [{ssid, rssi, authmode}]}`` after the scan's
  time; a fixed, simulated list (the unit's own network first); a scan while one runs: 500;
* ``GET /api/system/logs``: the log ring (``logbuffer.py``) as a ``text/plain`` attachment;
* ``POST /api/system/boot``: ``{"partition": label}`` checked as the release does; only the
  running ``ota_0`` holds a firmware, so booting it restarts the unit into the same firmware;
* ``GET``/``POST /api/theme``: ``colorScheme`` / ``primaryColor`` strings (defaults ``dark``,
  ``#F80421``, ``theme_api.h``); a value that is no string is ignored, the reply is
  ``{"status":"ok"}`` as ``text/html`` (``httpd_resp_sendstr`` without a type);
* ``GET /recovery``: a page with the web-UI upload form (the release embeds its own page);
* ``/api/ws/live``: ``{"event":"update","data":...}`` frames -- the whole info object
  (without ``fullHostname``/``mdnsHostname``, which only GET adds) on connect, then every
  0.5 s of unit time the fields that changed (``cJSON_GetDiff``: nested objects by field,
  arrays whole); it shares the 10 websocket slots with ``/api/ws`` (429 beyond).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Callable

from aiohttp import WSMsgType, web

from asic_reservoir.simulator.firmware.esp_httpd import (
    CORS_HEADERS, NOT_JSON, bad_request, cjson_get, cjson_number, cjson_parse, json_message,
    send_err)
from asic_reservoir.simulator.firmware.logbuffer import LogBuffer
from asic_reservoir.simulator.firmware.scoreboard import Scoreboard, ScoreboardEntry

log = logging.getLogger(__name__)

DEFAULT_THEME = {"colorScheme": "dark", "primaryColor": "#F80421"}   # theme_api.h
THEME_BODY_LIMIT = 1023                # theme_post_handler reads into char content[1024]
LIVE_PERIOD_S = 0.5                    # WEBSOCKET_API_RATE_LIMIT_MS
SCAN_DELAY_S = 0.1                     # GET_wifi_scan's vTaskDelay before scanning
# wifi_scan polls every 1 s until the driver's scan is done; an all-channel active scan
# takes 1-2 s on an ESP32-S3 (estimate), so the reply comes after two polls
SCAN_TIME_S = 2.0
# Simulated neighbourhood: names that cannot be mistaken for a real network; authmode is
# ESP-IDF's wifi_auth_mode_t (0 open, 3 WPA2-PSK, 4 WPA/WPA2-PSK)
SIMULATED_NETWORKS = (("sim-neighbour-2g", -71, 4), ("sim-guest-open", -83, 0))
_LOG_UPTIME = re.compile(r"[EWIDV] \((\d+)\) ")


def json_diff(old: Any, new: dict) -> dict | None:
    """``cJSON_GetDiff``: the fields of ``new`` that ``old`` lacks or holds otherwise,
    nested objects compared field by field; None when nothing changed."""
    if old is None:
        return new
    diff: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is not _MISSING and _same(before, value):
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            sub = json_diff(before, value)
            if sub is not None:
                diff[key] = sub
        else:
            diff[key] = value
    return diff or None


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    """cJSON_Compare: a bool never equals a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


class AxeOSServices:
    """The v2.15.0 service endpoints of one simulated unit.

    ``server`` is the unit's :class:`AxeOSServer`; ``nvs`` its release's settings (``ssid``,
    ``useCustomWWW``); ``partitions`` the app partitions as info reports them; ``full_info``
    builds the info object the live stream diffs; ``wifi_rssi`` is the signal info reports.
    """

    def __init__(self, server: Any, nvs: dict[str, Any], partitions: list[dict[str, Any]],
                 full_info: Callable[[], dict[str, Any]], wifi_rssi: int) -> None:
        self.server = server
        self.unit = server.unit
        self.nvs = nvs
        self.partitions = partitions
        self.full_info = full_info
        self.wifi_rssi = wifi_rssi
        self.theme = dict(DEFAULT_THEME)
        self.scoreboard_list = Scoreboard()       # NVS: survives restarts
        self.log = LogBuffer()                    # no-init PSRAM: survives soft restarts
        self.live_clients: dict[web.WebSocketResponse, Any] = {}    # -> its transport
        self._last_log_ms = -1
        self._scanning = False
        self._broadcaster: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle
    def attach(self) -> None:
        """Start keeping what the firmware keeps from boot on: log lines, best results."""
        self.unit.add_log_listener(self._on_log)
        self.unit.add_result_listener(self._on_result)

    async def detach(self) -> None:
        self.unit.remove_log_listener(self._on_log)
        self.unit.remove_result_listener(self._on_result)
        if self._broadcaster is not None:
            self._broadcaster.cancel()
        for ws in list(self.live_clients):
            await ws.close()

    def _on_log(self, line: str) -> None:
        found = _LOG_UPTIME.match(line)
        if found is not None:
            ms = int(found.group(1))
            if ms < self._last_log_ms:           # the unit booted again
                self.log.soft_restart()
            self._last_log_ms = ms
        self.log.write(line if line.endswith("\n") else line + "\n")

    def _on_result(self, share: Any) -> None:
        job = self.unit.miner.job
        base_version = job.version if job is not None else share.version
        self.scoreboard_list.add(ScoreboardEntry(
            difficulty=share.difficulty / self.unit.hash_scale, job_id=share.job_id,
            extranonce2=share.extranonce2, ntime=share.ntime, nonce=share.nonce,
            version_bits=share.version ^ base_version))

    # --------------------------------------------------------------- routes
    async def scoreboard(self, request: web.Request) -> web.Response:
        return web.json_response(cjson_number(self.scoreboard_list.as_json()), headers=CORS_HEADERS)

    async def wifi_scan(self, request: web.Request) -> web.Response:
        clock = self.unit.clock
        await clock.sleep(SCAN_DELAY_S)
        if self._scanning:                       # wifi_scan: "Scan already in progress"
            return send_err(500, "WiFi scan failed")
        self._scanning = True
        try:
            await clock.sleep(SCAN_TIME_S)
        finally:
            self._scanning = False
        own = (self.nvs["ssid"], self.wifi_rssi, 3)
        return web.json_response({"networks": [
            {"ssid": ssid, "rssi": rssi, "authmode": auth}
            for ssid, rssi, auth in (own, *SIMULATED_NETWORKS)]})

    async def logs(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; filename="bitaxe-logs.txt"'})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(self.log.read_all())
        await response.write_eof()
        return response

    async def boot(self, request: web.Request) -> web.Response:
        """POST_system_boot: the next boot partition, then a restart a second later."""
        raw = await request.read()
        if not raw:
            return bad_request("Empty request body")
        body = cjson_parse(raw)
        if body is NOT_JSON:
            return bad_request("Invalid JSON")
        label = cjson_get(body, "partition")
        if not isinstance(label, str):
            return bad_request("Missing partition label")
        found = [p for p in self.partitions if p["label"] == label]
        if not found:
            return bad_request("Partition not found")
        if found[0]["version"] is None:          # esp_ota_get_partition_description fails
            return bad_request("No valid firmware found on partition")
        self.nvs["useCustomWWW"] = 0             # SYSTEM_reset_custom_www
        self.server.restart_soon()
        return json_message("Next boot partition set successfully. Rebooting...")

    async def theme_get(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.theme), headers=CORS_HEADERS)

    async def theme_post(self, request: web.Request) -> web.Response:
        raw = (await request.read())[:THEME_BODY_LIMIT]
        if not raw:
            return send_err(500, "Failed to read request")
        body = cjson_parse(raw)
        if body is NOT_JSON:
            return bad_request("Invalid JSON")
        for key in self.theme:
            value = cjson_get(body, key, _MISSING)
            if value is _MISSING:
                continue
            if isinstance(value, str):
                self.theme[key] = value
            else:
                log.info("theme_api: %s: expected string, ignoring", key)
        return web.Response(text='{"status":"ok"}', content_type="text/html",
                            headers=CORS_HEADERS)

    async def recovery(self, request: web.Request) -> web.Response:
        return web.Response(text=RECOVERY_HTML, content_type="text/html")

    async def live(self, request: web.Request) -> web.StreamResponse:
        """``/api/ws/live``: the info object, then what changed every 0.5 s."""
        refused = self.server.websocket_refusal()
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.live_clients[ws] = request.transport
        try:
            await ws.send_str(_frame(self.full_info()))
            if self._broadcaster is None or self._broadcaster.done():
                self._broadcaster = asyncio.ensure_future(self._broadcast())
            async for msg in ws:                 # clients send nothing that matters
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.live_clients.pop(ws, None)
        return ws

    async def _broadcast(self) -> None:
        """websocket_api_task: one baseline for every client, a diff each period."""
        last = self.full_info()
        while self.live_clients:
            await self.unit.clock.sleep(LIVE_PERIOD_S)
            if self.unit.booting:                # the ESP32 rebooted: its sockets vanish
                for transport in list(self.live_clients.values()):
                    if transport is not None:
                        transport.close()
                return
            current = self.full_info()
            diff = json_diff(last, current)
            last = current
            if diff is None:
                continue
            for ws in list(self.live_clients):
                try:
                    await ws.send_str(_frame(diff))
                except (ConnectionError, RuntimeError):
                    self.live_clients.pop(ws, None)


def _frame(data: dict) -> str:
    """cJSON_PrintBuffered(msg, ..., false): compact JSON."""
    return json.dumps({"event": "update", "data": data}, separators=(",", ":"))


RECOVERY_HTML = """<html>
<head><title>AxeOS Recovery</title></head>
<body>
<p>Recovery (simulated unit): upload a web UI image to /api/system/OTAWWW.</p>
<form method="post" action="/api/system/OTAWWW" enctype="application/octet-stream">
<input type="file" name="wwwfile"><button>Upload</button>
</form>
</body>
</html>
"""
