"""Client for the Goldshell web API (LB-Box), with a client-side rate limit and one login at a time.

The real web backend races concurrent logins (sporadic 401s) and falls over under bursts
of ~15 requests/s, so every request passes a token bucket (default 5/s, burst 5) and
logins are single-flight: concurrent callers that hit a 401 share one re-login.

Login: ``GET /user/login?username=..&password=..&cipher=false`` returns ``{"JWT Token": ...}``;
with ``cipher=true`` the password travels as the web UI encrypts it: hex of AES-128-CBC with
the key sixteen ``!``, a zero IV and zero padding (this reproduces the published cipher form
of the factory password, ``bbad7537...``). The client tries the plain form first and falls
back to the cipher form when the plain one is refused.

Settings are read-modify-write: ``GET /mcb/setting``, change fields, ``PUT`` the whole
object back. ``powerplans`` lists ``{"level": n, "info": "<MHz> MHz <V> V <fan> RPM <fan> RPM"}``;
Box-series units offer level 0 (stock) and level 3 (sleep, "0 MHz"), some a level 2, and
``select`` holds the chosen *level* (as the stock UI and Box tools write it). Any other
clock runs in manual mode: ``manual: true`` with ``manualPowerplan`` carrying the clock.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from asic_reservoir.drivers.cgminer import DEFAULT_PORT as RPC_PORT, CgminerRPC
from asic_reservoir.drivers.errors import AuthError, MalformedReply, UnitError, retry_read
from asic_reservoir.drivers.http import HttpClient

log = logging.getLogger(__name__)

DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "123456789"  # Goldshell factory web password
CIPHER_KEY = b"!" * 16
_PLAN_MHZ = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*MHz\b")


def encrypt_password(password: str) -> str | None:
    """The web UI's ``cipher=true`` form of a password (None without the cryptography package)."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        return None
    data = password.encode("utf-8")
    data += b"\x00" * (-len(data) % 16)
    encryptor = Cipher(algorithms.AES(CIPHER_KEY), modes.CBC(bytes(16))).encryptor()
    return (encryptor.update(data) + encryptor.finalize()).hex()


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, ``burst`` at once.

    Kept as a schedule (the generic cell rate algorithm): each caller reserves the loop time
    at which its request may go and sleeps until then, without reading the clock again.
    Refilling a float token count instead and re-checking it after each sleep livelocks in
    virtual time: a shortfall of under a nanosecond asks for a timer that asyncio treats as
    due at once (within the clock's resolution), the clock never moves and the count never
    fills. Time is the event loop's (``loop.time()``), so the bucket also holds in virtual time.
    """

    def __init__(self, rate: float = 5.0, burst: int = 5) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._next = float("-inf")   # loop time the next request would go at an even pace

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = max(self._next, now)
        self._next = due + 1.0 / self.rate
        start = due - (self.burst - 1) / self.rate   # up to burst - 1 requests ahead of pace
        if start > now:
            await asyncio.sleep(start - now)


def plan_frequency(info: Any) -> float | None:
    """``"1000 MHz 0.75 V 70 RPM 70 RPM"`` -> 1000.0; None when it does not start with MHz."""
    match = _PLAN_MHZ.match(info) if isinstance(info, str) else None
    return float(match[1]) if match else None


STOCK_LEVEL = 0           # the stock plan (pyasic MiningModeNormal: level 0)
SLEEP_LEVEL = 3           # sleep, "0 MHz 0 V" (pyasic MiningModeSleep: level 3)
MANUAL_STEP_MHZ = 25.0    # manual clocks a Box tool allows: 25 MHz steps from 300 MHz up
MANUAL_MIN_MHZ = 300.0    # to the highest plan (estimate: no firmware rule is published)


def plan_clocks(setting: dict[str, Any]) -> dict[int, float | None]:
    """Clock (MHz) of each power plan a settings object offers, by plan ``level``."""
    plans = setting.get("powerplans")
    out: dict[int, float | None] = {}
    for plan in plans if isinstance(plans, list) else []:
        level = plan.get("level") if isinstance(plan, dict) else None
        if isinstance(level, int) and not isinstance(level, bool):
            out[level] = plan_frequency(plan.get("info"))
    return out


def power_plan_frequencies(setting: dict[str, Any]) -> list[float]:
    """The clocks the unit's hashing plans run (sleep's 0 MHz left out), in plan order."""
    return [f for f in plan_clocks(setting).values() if f]


def manual_clocks(setting: dict[str, Any]) -> tuple[float, ...]:
    """Clocks manual mode offers: 25 MHz steps from 300 MHz to the highest plan (none when
    the settings carry no ``manualPowerplan``)."""
    top = max(power_plan_frequencies(setting), default=0.0)
    if "manualPowerplan" not in setting or top < MANUAL_MIN_MHZ:
        return ()
    n = int((top - MANUAL_MIN_MHZ) // MANUAL_STEP_MHZ)
    return tuple(MANUAL_MIN_MHZ + i * MANUAL_STEP_MHZ for i in range(n + 1))


def is_sleeping(setting: dict[str, Any]) -> bool:
    return setting.get("manual") is not True and setting.get("select") == SLEEP_LEVEL


def current_frequency(setting: dict[str, Any]) -> float | None:
    """The clock the settings select: the manual plan when ``manual`` is on, else the plan
    whose level ``select`` holds; None while asleep or when unreadable."""
    if setting.get("manual") is True:
        freq = plan_frequency(setting.get("manualPowerplan"))
    else:
        freq = plan_clocks(setting).get(setting.get("select"))  # type: ignore[arg-type]
    return freq or None


def select_frequency(setting: dict[str, Any], frequency_mhz: float) -> None:
    """Set ``setting`` to run at ``frequency_mhz``: the plan with that clock (its level in
    ``select``, manual off), otherwise manual mode with the clock token of the current
    manual plan (or the stock plan) rewritten, every other token as the firmware wrote it."""
    freq = float(frequency_mhz)
    for level, clock in plan_clocks(setting).items():
        if clock == freq and level != SLEEP_LEVEL:
            setting["select"] = level
            setting["manual"] = False
            return
    base = setting.get("manualPowerplan")
    if plan_frequency(base) is None:
        plans = setting.get("powerplans") or []
        base = next((p.get("info") for p in plans if isinstance(p, dict)
                     and p.get("level") == STOCK_LEVEL), "")
    rest = _PLAN_MHZ.sub("", base or "", count=1).strip()
    setting["manual"] = True
    setting["manualPowerplan"] = f"{freq:.0f} MHz {rest}".strip()


class GoldshellClient(HttpClient):
    """Web API of one Goldshell unit, plus its cgminer RPC on 4028 (``self.rpc``)."""

    def __init__(self, host: str, port: int = 80, *, rpc_port: int = RPC_PORT,
                 username: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD,
                 cipher_password: str | None = None, rate: float = 5.0, burst: int = 5,
                 **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.username = username
        self.password = password
        self.cipher_password = cipher_password or encrypt_password(password)
        self.bucket = TokenBucket(rate, burst)
        self.rpc = CgminerRPC(host, rpc_port, timeout=self.timeout, unit=self.unit)
        self.token: str | None = None
        self.logins = 0  # completed logins (observability; tests check single-flight)
        self._login_lock = asyncio.Lock()

    async def _raw(self, method: str, path: str, command: str, *, json_body: Any = None,
                   params: dict[str, str] | None = None, auth: bool = True) -> tuple[int, str]:
        await self.bucket.acquire()
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else None
        status, body, _ = await self.send(method, path, command=command, json_body=json_body,
                                          params=params, headers=headers)
        return status, body

    async def login(self, stale_token: str | None = None) -> str:
        """Log in once for all waiting callers; a caller holding ``stale_token`` re-logs only
        if nobody replaced that token while it waited."""
        async with self._login_lock:
            if self.token is not None and self.token != stale_token:
                return self.token
            forms = [("false", self.password)]
            if self.cipher_password:
                forms.append(("true", self.cipher_password))
            last = ""
            for cipher, password in forms:
                status, body = await self._raw(
                    "GET", "/user/login", "login", auth=False,
                    params={"username": self.username, "password": password, "cipher": cipher})
                if status == 200:
                    try:
                        token = self.parse_json(body, "login").get("JWT Token")
                    except (MalformedReply, AttributeError):
                        token = None
                    if isinstance(token, str) and token:
                        self.token = token
                        self.logins += 1
                        return token
                last = f"HTTP {status}: {body[:80]}"
            raise AuthError(f"login refused ({last})", unit=self.unit, command="login")

    async def call(self, method: str, path: str, command: str, *, json_body: Any = None,
                   auth: bool = True) -> Any:
        """One authenticated request; a 401 triggers one shared re-login and one retry."""
        if auth and self.token is None:
            await self.login()
        for attempt in range(2):
            token = self.token
            status, body = await self._raw(method, path, command, json_body=json_body, auth=auth)
            if status == 401 and auth and attempt == 0:
                await self.login(stale_token=token)
                continue
            self.check(status, body, command)
            return self.parse_json(body, command) if body.strip() else None
        raise AuthError("token refused after re-login", unit=self.unit, command=command)

    async def get_raw(self, path: str) -> tuple[int, str, dict[str, str]]:
        """One logged-in GET as the unit answers it, unchecked (a capture records it)."""
        if self.token is None:
            await self.login()
        await self.bucket.acquire()
        return await self.send("GET", path, command=f"GET {path}", allow_redirects=False,
                               headers={"Authorization": f"Bearer {self.token}"})

    async def read(self, path: str, command: str, *, auth: bool = True) -> Any:
        return await retry_read(lambda: self.call("GET", path, command, auth=auth),
                                attempts=self.attempts)

    async def status(self) -> dict[str, Any]:
        """``/mcb/status`` needs no login: model, firmware, hardware."""
        reply = await self.read("/mcb/status", "mcb/status", auth=False)
        if not isinstance(reply, dict):
            raise MalformedReply("mcb/status is not an object", unit=self.unit, command="mcb/status")
        return reply

    async def setting(self) -> dict[str, Any]:
        reply = await self.read("/mcb/setting", "mcb/setting")
        if not isinstance(reply, dict):
            raise MalformedReply("mcb/setting is not an object", unit=self.unit, command="mcb/setting")
        return reply

    async def put_setting(self, setting: dict[str, Any]) -> None:
        await self.call("PUT", "/mcb/setting", "PUT mcb/setting", json_body=setting)

    async def modify_setting(self, **changes: Any) -> dict[str, Any]:
        """GET the settings, change the given fields, PUT the whole object back."""
        setting = await self.setting()
        setting.update(changes)
        await self.put_setting(setting)
        return setting

    async def pools(self) -> list[dict[str, Any]]:
        reply = await self.read("/mcb/pools", "mcb/pools")
        if not isinstance(reply, list):
            raise MalformedReply("mcb/pools is not a list", unit=self.unit, command="mcb/pools")
        return reply

    async def new_pool(self, url: str, user: str, password: str = "x") -> None:
        await self.call("PUT", "/mcb/newpool", "newpool",
                        json_body={"url": url, "user": user, "pass": password})

    async def delete_pool(self, pool: dict[str, Any]) -> None:
        await self.call("PUT", "/mcb/delpool", "delpool", json_body=pool)

    async def set_pool(self, url: str, user: str, password: str = "x") -> None:
        """Make ``url`` the only pool: add it, then delete the others one at a time (positions
        shift after each delete, so the list is re-read every time)."""
        if not any((p.get("url"), p.get("user"), p.get("pass", password)) == (url, user, password)
                   for p in await self.pools()):
            await self.new_pool(url, user, password)
        for _ in range(64):
            others = [p for p in await self.pools()
                      if (p.get("url"), p.get("user"), p.get("pass", password)) != (url, user, password)]
            if not others:
                return
            await self.delete_pool(others[0])
        raise UnitError("pools did not converge after 64 deletions", unit=self.unit,
                        command="set_pool")

    async def restart(self) -> None:
        await self.call("PUT", "/mcb/restart", "restart")
