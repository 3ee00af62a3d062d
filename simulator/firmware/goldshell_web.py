"""Goldshell LB-Box web API on port 80 (the "cloud-box" UI of Goldshell's Box firmware).

Shape of the real API (Box-series firmware 2.2.x; see firmware_notes/goldshell-lb-box.md):

* ``GET /mcb/status`` needs no token: ``hardware``, ``model``, ``mcbversion``,
  ``firmware``.  Tools identify the unit from the index page's "cloud-box" and
  this ``model`` string;
* ``GET /user/login?username=admin&password=<pw>&cipher=false`` returns
  ``{"JWT Token": "<jwt>"}``; with ``cipher=true`` the password is sent as hex
  AES-128-CBC (key sixteen ``!``, zero IV, zero padding) -- the default password
  ``123456789`` becomes ``bbad7537f4c8b6ea31eea0b3d760e257``.  The real token is
  RS256 with a fixed payload and no expiry, identical on every login; the
  simulator signs the same payload with HS256 (the vendor key is not public),
  so the token is equally stable but not byte-identical;
* every other ``/mcb/*`` path needs ``Authorization: Bearer <jwt>`` (401 otherwise);
* ``GET/PUT /mcb/setting``: the whole object is PUT back; ``powerplans`` is the
  Box-series table -- level 0 the stock plan, level 3 sleep (``"0 MHz 0 V ..."``) --
  and ``select`` holds the *level* of the chosen plan; ``manual: true`` with
  ``manualPowerplan`` (``"<MHz> MHz <V> V <fan> RPM <fan> RPM"``) runs another clock;
  clock changes apply live after a short re-tune, sleep stops hashing; ``temp_target``
  is clamped to ``temp_targets``;
* ``GET /mcb/pools``, ``PUT /mcb/newpool`` ``{url,user,pass}``,
  ``PUT /mcb/delpool`` ``{url,user,pass,dragid}``: pool changes apply live;
* ``PUT /mcb/restart``: soft restart; ``GET /mcb/cgminer`` answers 500 as on
  the Box unit it was observed on.

Opt-in (``quirks=True``): the Box firmware's reliability problems -- request bursts
(>15/s) crash the web backend for a while, concurrent requests occasionally fail the
token check with 401.  Off by default so that ordinary tests stay deterministic.

Where the LB-Box itself was not observed (status ``hardware``/``mcbversion``,
pool entry fields, the failed-login reply) the values are estimates.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import math
import random
import re
from collections import deque
from typing import Any

from aiohttp import web

from asic_reservoir.simulator.firmware.webserver import FirmwareWebServer

from asic_reservoir.simulator.physics import SettingsError
from asic_reservoir.simulator.profiles import profile

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "123456789"
AES_KEY = b"!" * 16
TEMP_TARGETS = (65.0, 75.0)          # fan-daemon clamp range seen on a Box unit
# Opt-in reliability quirks seen on Box firmware (quirks=True): a burst of roughly 15
# requests per second crashes the web backend, which restarts by itself (estimate:
# ~10 s); with requests in flight about 1 in 200 token checks fails with 401.
BURST_LIMIT = 15
CRASH_DOWN_S = 10.0
TOKEN_RACE_P = 1.0 / 200.0
RACE_WINDOW_S = 0.05       # token checks this close together count as concurrent (estimate)
_JWT_PAYLOAD = {"aud": "yotta mc", "iss": "intchains.com", "jti": "1", "sub": "minerd"}
_JWT_KEY = b"asic-reservoir simulated goldshell"   # HS256 stand-in for the vendor RSA key
_PLAN_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*MHz\b")

INDEX_HTML = """<!DOCTYPE html><html><head><meta charset=utf-8><title>cloud-box</title>
<link rel=icon href=/favicon.ico></head><body><noscript><strong>We're sorry but cloud-box doesn't
work properly without JavaScript enabled. Please enable it to continue.</strong></noscript>
<div id=app></div></body></html>
"""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token() -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(_JWT_PAYLOAD, separators=(",", ":")).encode())
    sig = hmac.new(_JWT_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def encrypt_password(password: str) -> str | None:
    """The web UI's ``cipher=true`` form of a password, or None without a crypto library."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        return None
    data = password.encode("utf-8")
    data += b"\x00" * (-len(data) % 16)
    enc = Cipher(algorithms.AES(AES_KEY), modes.CBC(b"\x00" * 16)).encryptor()
    return (enc.update(data) + enc.finalize()).hex()


STOCK_LEVEL = 0
SLEEP_LEVEL = 3


def box_plans(stock_mhz: float, volts: float) -> list[dict[str, Any]]:
    """The Box-series plan table: the stock plan (level 0) and sleep (level 3, "0 MHz").

    Captured Box units list exactly these two (an SC5 Pro II adds a level 2); the stock
    plan's clock and voltage of the LB-Box are estimates (profile).
    """
    return [{"level": STOCK_LEVEL, "info": f"{stock_mhz:.0f} MHz {volts:.2f} V 70 RPM 70 RPM"},
            {"level": SLEEP_LEVEL, "info": "0 MHz 0 V 70 RPM 70 RPM"}]


def plan_frequency(info: str) -> float | None:
    """``"1000 MHz 0.75 V 70 RPM 70 RPM"`` -> 1000.0 (None when unparsable)."""
    m = _PLAN_RE.match(info)
    return float(m.group(1)) if m else None


class GoldshellWebServer(FirmwareWebServer):
    """The LB-Box's JWT-protected ``/mcb`` API for one simulated unit."""

    def __init__(self, unit: Any, *, password: str = DEFAULT_PASSWORD, quirks: bool = False,
                 burst_limit: int = BURST_LIMIT, crash_down_s: float = CRASH_DOWN_S,
                 token_race_p: float = TOKEN_RACE_P) -> None:
        super().__init__()
        self.unit = unit
        self.quirks = quirks
        self.burst_limit = burst_limit
        self.crash_down_s = crash_down_s
        self.token_race_p = token_race_p
        self._recent: deque[float] = deque()
        self._down_until = -math.inf
        self._last_request = -math.inf
        self._rng = random.Random(unit.reading().seed)
        self.crashes = 0
        self.profile = profile(unit.reading().model)
        self.password = password
        self.token = make_token()
        p = self.profile
        volts = p.voltage_default_mv / 1000.0
        self._plans = box_plans(p.freq_default_mhz, volts)
        self._select = STOCK_LEVEL
        self._manual = False
        self._manual_plan = self._plans[0]["info"]
        self._pool_entries: list[dict[str, str]] | None = None
        self.app = web.Application(middlewares=[self._auth_middleware])
        r = self.app.router
        r.add_get("/", self._index)
        r.add_get("/index.html", self._index)
        r.add_get("/mcb/status", self._status)
        r.add_get("/user/login", self._login)
        r.add_get("/user/logout", self._logout)
        r.add_get("/mcb/setting", self._get_setting)
        r.add_put("/mcb/setting", self._put_setting)
        r.add_get("/mcb/pools", self._get_pools)
        r.add_put("/mcb/newpool", self._newpool)
        r.add_put("/mcb/delpool", self._delpool)
        r.add_put("/mcb/restart", self._restart)
        r.add_get("/mcb/cgminer", self._cgminer)

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.unit.booting or (self.quirks and self._crashed()):
            if request.transport is not None:
                request.transport.close()      # backend not running: the connection just drops
            raise web.HTTPServiceUnavailable()
        path = request.path
        if path.startswith("/mcb/") and path != "/mcb/status":
            auth = request.headers.get("Authorization", "")
            now = asyncio.get_running_loop().time()
            overlapping = now - self._last_request < RACE_WINDOW_S
            self._last_request = now
            raced = self.quirks and overlapping and self._rng.random() < self.token_race_p
            if auth.removeprefix("Bearer ").strip() != self.token or raced:
                return web.json_response({"error": "Unauthorized"}, status=401)
        response = await handler(request)
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response

    def _crashed(self) -> bool:
        """Opt-in reliability quirk: a burst of requests takes the web backend down."""
        now = asyncio.get_running_loop().time()
        if now < self._down_until:
            return True
        self._recent.append(now)
        while self._recent and now - self._recent[0] > 1.0:
            self._recent.popleft()
        if len(self._recent) > self.burst_limit:
            self._recent.clear()
            self._down_until = now + self.crash_down_s
            self.crashes += 1
            log.warning("simulated Goldshell web backend crashed after a request burst")
            return True
        return False

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=INDEX_HTML, content_type="text/html")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"hardware": "30.20.HA", "model": self.profile.name,
                                  "mcbversion": "MCB_V3_3", "firmware": self.profile.firmware})

    async def _login(self, request: web.Request) -> web.Response:
        q = request.query
        user, pw, cipher = q.get("username", ""), q.get("password", ""), q.get("cipher", "false")
        if cipher == "true":
            expected = encrypt_password(self.password)
            if expected is None:
                log.warning("cipher=true login refused: no AES implementation available")
            ok = expected is not None and pw.lower() == expected
        else:
            ok = pw == self.password
        if user != "admin" or not ok:
            return web.json_response({"error": "username or password error"}, status=401)
        return web.json_response({"JWT Token": self.token})

    async def _logout(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def _setting(self) -> dict[str, Any]:
        r = self.unit.reading()
        return {"select": self._select, "tempcontrol": True, "ledcontrol": True,
                "manualPowerplan": self._manual_plan, "name": r.mac.replace(":", "").lower(),
                "powerplans": [dict(p) for p in self._plans], "manual": self._manual,
                "temp_targets": list(TEMP_TARGETS), "version": "v2.1",
                "temp_target": int(round(self.unit.settings().get("temp_target_c", r.temp_target_c)))}

    async def _get_setting(self, request: web.Request) -> web.Response:
        return web.json_response(self._setting())

    async def _json_body(self, request: web.Request) -> dict | None:
        try:
            body = json.loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    async def _put_setting(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if body is None:
            return web.json_response({"error": "invalid json"}, status=400)
        select = body.get("select", self._select)
        manual = body.get("manual", self._manual)
        manual_plan = body.get("manualPowerplan", self._manual_plan)
        levels = {plan["level"]: plan["info"] for plan in self._plans}
        if not isinstance(select, int) or isinstance(select, bool) or select not in levels:
            return web.json_response({"error": "invalid select"}, status=400)
        if not isinstance(manual, bool) or not isinstance(manual_plan, str):
            return web.json_response({"error": "invalid setting"}, status=400)
        sleep = not manual and select == SLEEP_LEVEL
        freq = plan_frequency(manual_plan if manual else levels[select])
        if freq is None or (freq <= 0 and not sleep):
            return web.json_response({"error": "invalid powerplan"}, status=400)
        changes: dict[str, Any] = {}
        if not sleep and freq != self.unit.settings()["frequency_mhz"]:
            changes["frequency_mhz"] = freq
        if "temp_target" in body:
            t = body["temp_target"]
            if isinstance(t, bool) or not isinstance(t, (int, float)):
                return web.json_response({"error": "invalid temp_target"}, status=400)
            changes["temp_target_c"] = min(max(float(t), TEMP_TARGETS[0]), TEMP_TARGETS[1])
        try:
            self.unit.apply(**changes)
        except SettingsError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if sleep and not self.unit.paused:
            self.unit.pause()             # the "0 MHz" plan: the board stops hashing
        elif not sleep and self.unit.paused:
            self.unit.resume()
        self._select, self._manual, self._manual_plan = select, manual, manual_plan
        return web.json_response(self._setting())

    def _pools(self) -> list[dict[str, str]]:
        if self._pool_entries is None:
            s = self.unit.settings()
            url = str(s.get("pool_url", ""))
            self._pool_entries = [{"url": url, "user": str(s.get("pool_user", "")),
                                   "pass": str(s.get("pool_password", ""))}] if url else []
        return self._pool_entries

    def _pool_list(self) -> list[dict[str, Any]]:
        r = self.unit.reading()
        return [{**p, "active": i == 0, "legal": True, "dragid": i, "pool-priority": i,
                 "accepted": int(r.accepted) if i == 0 else 0,
                 "rejected": int(r.rejected) if i == 0 else 0}
                for i, p in enumerate(self._pools())]

    def _activate_first(self) -> None:
        """The first pool is the one mined; changes apply live (the LB-Box reconnects)."""
        pools = self._pools()
        if pools:
            self.unit.apply(pool_url=pools[0]["url"], pool_user=pools[0]["user"],
                            pool_password=pools[0]["pass"])

    async def _get_pools(self, request: web.Request) -> web.Response:
        return web.json_response(self._pool_list())

    async def _newpool(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if body is None or not isinstance(body.get("url"), str) or not body["url"]:
            return web.json_response({"error": "invalid pool"}, status=400)
        pools = self._pools()
        pools.append({"url": body["url"], "user": str(body.get("user", "")), "pass": str(body.get("pass", ""))})
        if len(pools) == 1:
            try:
                self._activate_first()
            except SettingsError as exc:
                pools.pop()
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self._pool_list())

    async def _delpool(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        pools = self._pools()
        dragid = body.get("dragid") if body else None
        if (not isinstance(dragid, int) or isinstance(dragid, bool) or not 0 <= dragid < len(pools)
                or pools[dragid]["url"] != body.get("url")):
            return web.json_response({"error": "pool not found"}, status=400)
        removed = pools.pop(dragid)
        if dragid == 0 and pools:
            try:
                self._activate_first()
            except SettingsError as exc:
                pools.insert(0, removed)
                return web.json_response({"error": str(exc)}, status=400)
        # With no pool left the real unit idles; the simulated one keeps its last
        # pool until a new one is added (the unit model has no "no pool" state).
        return web.json_response(self._pool_list())

    async def _restart(self, request: web.Request) -> web.Response:
        self._spawn(self._reboot())
        return web.json_response({})

    async def _reboot(self) -> None:
        """The plan is stored: a unit put to sleep boots asleep (estimate)."""
        await self.unit.restart()
        if self._select == SLEEP_LEVEL and not self._manual and not self.unit.paused:
            self.unit.pause()

    async def _cgminer(self, request: web.Request) -> web.Response:
        return web.Response(status=500, text="500 Internal Server Error")
