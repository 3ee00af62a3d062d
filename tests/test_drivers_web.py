"""Goldshell and AxeOS clients against small real aiohttp servers on loopback.

These servers reproduce the firmware behaviours the clients must cope with (token expiry,
racing logins, bursts, key-set differences); the simulator's full servers are exercised in
test_drivers_units.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from aiohttp import web

from asic_reservoir.drivers import axeos
from asic_reservoir.drivers.errors import (AuthError, ConnectionRefused, HTTPError, MalformedReply, ServerError,
                            Timeout)
from asic_reservoir.drivers.goldshell import (GoldshellClient, TokenBucket, current_frequency, encrypt_password,
                               manual_clocks, power_plan_frequencies, select_frequency)
from tests.support import run_virtual_within

# A Box-series settings object as captured (levels 0, 2 and 3 as on an SC5 Pro II)
SETTING = {"powerplans": [{"level": 0, "info": "400 MHz 0.75 V 70 RPM 70 RPM"},
                          {"level": 2, "info": "350 MHz 0.75 V 70 RPM 70 RPM"},
                          {"level": 3, "info": "0 MHz 0 V 70 RPM 70 RPM"}],
           "select": 2, "manual": False, "manualPowerplan": "300 MHz 0.75 V 70 RPM 70 RPM",
           "temp_target": 70, "name": "LB-Box"}


class GoldshellServer:
    """Issues tokens; can expire them; records request times; optional cipher-only login."""

    def __init__(self, *, cipher_only: bool = False, login_delay: float = 0.0) -> None:
        self.cipher_only = cipher_only
        self.login_delay = login_delay
        self.tokens: set[str] = set()
        self.logins = 0
        self.times: list[float] = []
        self.setting = json.loads(json.dumps(SETTING))
        self.pools = [{"url": "stratum+tcp://10.0.0.1:3333", "user": "old", "pass": "x"}]
        self.restarts = 0
        app = web.Application()
        app.router.add_get("/user/login", self.login)
        app.router.add_get("/mcb/status", self.status)
        app.router.add_get("/mcb/setting", self.get_setting)
        app.router.add_put("/mcb/setting", self.put_setting)
        app.router.add_get("/mcb/pools", self.get_pools)
        app.router.add_put("/mcb/newpool", self.new_pool)
        app.router.add_put("/mcb/delpool", self.del_pool)
        app.router.add_put("/mcb/restart", self.restart)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def __aenter__(self) -> GoldshellServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    def authorized(self, request: web.Request) -> bool:
        self.times.append(time.monotonic())
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in self.tokens

    async def login(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        q = request.query
        ok = (q.get("cipher") == "true" and q.get("password") == "c1pher") if self.cipher_only else \
            (q.get("cipher") == "false" and q.get("password") == "123456789")
        await asyncio.sleep(self.login_delay)
        if not ok:
            return web.Response(status=200, text="user or password error")  # not JSON, as seen
        self.logins += 1
        token = f"jwt-{self.logins}"
        self.tokens = {token}  # a new login invalidates older tokens (the race on real units)
        return web.json_response({"JWT Token": token})

    async def status(self, request: web.Request) -> web.Response:
        self.times.append(time.monotonic())
        return web.json_response({"model": "Goldshell-LBBox", "firmware": "2.2.5"})

    async def get_setting(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        return web.json_response(self.setting)

    async def put_setting(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        body = await request.json()
        if set(body) != set(self.setting):
            return web.Response(status=400, text="partial setting")  # the UI always PUTs it all
        self.setting = body
        return web.json_response({})

    async def get_pools(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        return web.json_response([{**p, "dragid": i} for i, p in enumerate(self.pools)])

    async def new_pool(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        self.pools.append(await request.json())
        return web.json_response({})

    async def del_pool(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        body = await request.json()
        i = body.get("dragid")
        if not isinstance(i, int) or not 0 <= i < len(self.pools) or self.pools[i]["url"] != body["url"]:
            return web.json_response({"error": "pool not found"}, status=400)
        self.pools.pop(i)
        return web.json_response({})

    async def restart(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.Response(status=401)
        self.restarts += 1
        return web.json_response({})


async def test_login_token_refresh_after_expiry():
    async with GoldshellServer() as server:
        async with GoldshellClient("127.0.0.1", server.port, rate=100, burst=100) as client:
            assert (await client.setting())["select"] == 2
            server.tokens = set()  # token expires on the unit
            assert (await client.setting())["select"] == 2
            assert server.logins == 2 and client.token == "jwt-2"


async def test_single_flight_login_under_concurrency():
    async with GoldshellServer(login_delay=0.05) as server:
        async with GoldshellClient("127.0.0.1", server.port, rate=1000, burst=1000) as client:
            results = await asyncio.gather(*(client.setting() for _ in range(8)))
            assert all(r["select"] == 2 for r in results)
            assert server.logins == 1
            server.tokens = set()
            await asyncio.gather(*(client.pools() for _ in range(8)))
            assert server.logins == 2  # eight 401s, one shared re-login


async def test_cipher_login_fallback_and_refusal():
    async with GoldshellServer(cipher_only=True) as server:
        async with GoldshellClient("127.0.0.1", server.port, cipher_password="c1pher") as client:
            assert (await client.setting())["temp_target"] == 70
        async with GoldshellClient("127.0.0.1", server.port, password="wrong") as client:
            with pytest.raises(AuthError) as info:
                await client.setting()
            assert "login" in str(info.value)
    # the published cipher form of the factory password
    assert encrypt_password("123456789") == "bbad7537f4c8b6ea31eea0b3d760e257"


async def test_rate_limit_spaces_requests():
    async with GoldshellServer() as server:
        async with GoldshellClient("127.0.0.1", server.port, rate=20.0, burst=2) as client:
            await asyncio.gather(*(client.status() for _ in range(8)))
        times = sorted(server.times)
        # 2 at once, then one per 1/20 s: 8 requests need >= 6/20 s
        assert times[-1] - times[0] >= 6 / 20 * 0.9


def test_token_bucket_validates():
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(5, burst=0)


@pytest.mark.parametrize("rate,burst,n,start", [(5, 5, 40, 0.0), (5, 5, 40, 123.456),
                                                (20, 2, 50, 17.1), (5, 5, 200, 0.01)])
def test_token_bucket_paces_exactly_in_virtual_time(rate, burst, n, start):
    """``burst`` at once, then one per 1/rate s of loop time. A bucket that refilled a float
    count and re-checked it after each sleep livelocked here at most clock readings: a
    sub-nanosecond shortfall asked for a timer asyncio runs at once, so time never moved."""
    async def paced() -> float:
        await asyncio.sleep(start)
        bucket = TokenBucket(rate, burst)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(n):
            await bucket.acquire()
        return loop.time() - t0

    assert run_virtual_within(paced, wall_s=30) == pytest.approx((n - burst) / rate, abs=1e-6)


async def test_settings_get_modify_put_and_power_plans():
    async with GoldshellServer() as server:
        async with GoldshellClient("127.0.0.1", server.port, rate=100, burst=100) as client:
            setting = await client.setting()
            assert power_plan_frequencies(setting) == [400.0, 350.0]       # sleep left out
            assert manual_clocks(setting) == (300.0, 325.0, 350.0, 375.0, 400.0)
            assert current_frequency(setting) == 350.0                     # select is a level
            await client.modify_setting(select=0, manual=False)
            assert server.setting["select"] == 0 and server.setting["name"] == "LB-Box"
            assert current_frequency(server.setting) == 400.0
            assert current_frequency({**server.setting, "manual": True}) == 300.0
            assert current_frequency({**server.setting, "select": 3}) is None   # asleep
            await client.modify_setting(temp_target=65)
            assert server.setting["temp_target"] == 65 and server.setting["select"] == 0


def test_select_frequency_uses_a_plan_level_or_manual_mode():
    setting = {**SETTING, "manualPowerplan": "garbage"}
    select_frequency(setting, 350.0)
    assert (setting["select"], setting["manual"]) == (2, False)
    select_frequency(setting, 325.0)            # no plan: manual, tokens of the stock plan kept
    assert setting["manual"] is True and setting["manualPowerplan"] == "325 MHz 0.75 V 70 RPM 70 RPM"


async def test_pools_replace_and_restart():
    async with GoldshellServer() as server:
        async with GoldshellClient("127.0.0.1", server.port, rate=100, burst=100) as client:
            server.pools.append({"url": "stratum+tcp://10.0.0.2:3333", "user": "old2", "pass": "x"})
            await client.set_pool("stratum+tcp://127.0.0.1:3334", "lb.sim", "x")
            assert server.pools == [{"url": "stratum+tcp://127.0.0.1:3334", "user": "lb.sim", "pass": "x"}]
            await client.restart()
            assert server.restarts == 1


async def test_goldshell_refused_port_is_typed():
    client = GoldshellClient("127.0.0.1", 1, attempts=1)
    try:
        with pytest.raises(ConnectionRefused) as info:
            await client.status()
        assert "mcb/status" in str(info.value)
    finally:
        await client.close()


# ------------------------------------------------------------------- AxeOS

INFO_2_9 = {"version": "v2.9.0", "ASICModel": "BM1366", "frequency": 485, "coreVoltage": 1200,
            "autofanspeed": 1, "fanspeed": 40, "temptarget": 60, "stratumURL": "10.0.0.1",
            "stratumPort": 3333, "stratumUser": "lv06.old"}
INFO_2_12 = {**INFO_2_9, "version": "v2.12.0", "manualFanSpeed": 55, "minFanSpeed": 25}
INFO_2_15 = {k: v for k, v in INFO_2_12.items() if not k.startswith("stratum")} | {
    "version": "v2.15.1", "pools": [{"id": 0, "stratumURL": "10.0.0.1", "stratumPort": 3333,
                                     "stratumUser": "lv06.old", "stratumPassword": "*****"}]}


def test_generation_detection_from_fields_never_the_version():
    assert axeos.detect_generation(INFO_2_9) == "2.9"
    assert axeos.detect_generation(INFO_2_12) == "2.12"
    assert axeos.detect_generation(INFO_2_15) == "2.15"
    # a fork's version string says nothing about its key set
    assert axeos.detect_generation({**INFO_2_9, "version": "v2.16.0"}) == "2.9"
    assert axeos.detect_generation({**INFO_2_15, "version": "v2.1.8"}) == "2.15"


def test_patch_body_per_generation():
    changes = {"fan_pct": 70, "frequency_mhz": 500, "pool_url": "stratum+tcp://127.0.0.1:3334",
               "pool_user": "lv06.sim"}
    assert axeos.patch_body(changes, "2.9") == {
        "fanspeed": 70, "frequency": 500, "stratumURL": "127.0.0.1", "stratumPort": 3334,
        "stratumUser": "lv06.sim"}
    assert axeos.patch_body(changes, "2.12")["manualFanSpeed"] == 70
    body = axeos.patch_body(changes, "2.15", INFO_2_15)
    # the slot as read with the changes: "*****" keeps the stored password (update_pool_nvs)
    assert body["pools"] == [{"id": 0, "stratumURL": "127.0.0.1", "stratumPort": 3334,
                              "stratumUser": "lv06.sim", "stratumPassword": "*****"}]
    new_password = axeos.patch_body({"pool_password": "pw"}, "2.15", INFO_2_15)
    assert new_password["pools"][0]["stratumPassword"] == "pw"
    assert "stratumURL" not in body
    body = axeos.patch_body({"pool_user": "lv06.b", "pool_password": "new"}, "2.15", INFO_2_15)
    assert body["pools"] == [{"id": 0, "stratumURL": "10.0.0.1", "stratumPort": 3333,
                              "stratumUser": "lv06.b", "stratumPassword": "new"}]
    with pytest.raises(ValueError):
        axeos.patch_body({"volts": 1}, "2.9")
    with pytest.raises(ValueError):
        axeos.patch_body({"pool_url": "stratum+tcp://nohost"}, "2.9")


def test_read_settings_per_generation():
    assert axeos.read_settings(INFO_2_9)["fan_pct"] == 40
    assert axeos.read_settings(INFO_2_12)["fan_pct"] == 55
    s = axeos.read_settings(INFO_2_15)
    assert s["pool_url"] == "stratum+tcp://10.0.0.1:3333" and s["pool_user"] == "lv06.old"
    assert s["fan_auto"] is True and s["frequency_mhz"] == 485


class AxeOSServer:
    def __init__(self, info: dict, *, ws_lines: list[str] = (), delay: float = 0.0,
                 garbage: bool = False, failures: int = 0, refuse: bool = False) -> None:
        self.info = dict(info)
        self.failures = failures  # answer 503 to this many GETs first
        self.refuse = refuse      # 401 as AxeOS answers clients outside private networks
        self.gets = 0
        self.patches: list[dict] = []
        self.ws_lines = list(ws_lines)
        self.delay = delay
        self.garbage = garbage
        app = web.Application()
        app.router.add_get("/api/system/info", self.get_info)
        app.router.add_patch("/api/system", self.patch)
        app.router.add_post("/api/system/pause", self.pause)
        app.router.add_get("/api/ws", self.ws)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def __aenter__(self) -> AxeOSServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def get_info(self, request: web.Request) -> web.Response:
        self.gets += 1
        if self.refuse:
            return web.Response(status=401, text="Unauthorized")
        if self.gets <= self.failures:
            return web.Response(status=503, text="busy")
        await asyncio.sleep(self.delay)
        if self.garbage:
            return web.Response(text="<html>oops")
        return web.json_response(self.info)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "frequency" in body and not 400 <= body["frequency"] <= 575:
            return web.Response(status=400, text="Wrong API input")
        self.patches.append(body)
        return web.Response(status=200)

    async def pause(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text='{"error":"unknown route"}')

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("\n".join(self.ws_lines[:2]))  # two lines in one frame
        for line in self.ws_lines[2:]:
            await ws.send_str(line)
        await ws.close()
        return ws


async def test_axeos_apply_uses_detected_key_set():
    for info, fan_key in ((INFO_2_9, "fanspeed"), (INFO_2_12, "manualFanSpeed")):
        async with AxeOSServer(info) as server:
            async with axeos.AxeOSClient("127.0.0.1", server.port) as client:
                sent = await client.apply({"fan_pct": 80, "fan_auto": False})
                assert server.patches == [{fan_key: 80, "autofanspeed": 0}] and sent == server.patches[0]
                with pytest.raises(HTTPError) as info_err:
                    await client.apply({"frequency_mhz": 900})
                assert info_err.value.status == 400 and "Wrong API input" in str(info_err.value)


async def test_axeos_errors_are_typed():
    async with AxeOSServer(INFO_2_9, garbage=True) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, attempts=1) as client:
            with pytest.raises(MalformedReply):
                await client.system_info()
            with pytest.raises(HTTPError) as info:
                await client.pause()  # older firmware has no pause route
            assert info.value.status == 404
    async with AxeOSServer(INFO_2_9, delay=1.0) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, timeout=0.2, attempts=1) as client:
            with pytest.raises(Timeout) as info:
                await client.system_info()
            assert "system/info" in str(info.value)


async def test_reads_retry_server_errors_writes_do_not():
    async with AxeOSServer(INFO_2_9, failures=2) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, attempts=3) as client:
            assert (await client.system_info())["ASICModel"] == "BM1366"
            assert server.gets == 3
    async with AxeOSServer(INFO_2_9, failures=5) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, attempts=3) as client:
            with pytest.raises(ServerError) as info:
                await client.system_info()
            assert info.value.status == 503 and server.gets == 3


async def test_axeos_401_is_auth_error_and_not_retried():
    async with AxeOSServer(INFO_2_9, refuse=True) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, attempts=3) as client:
            with pytest.raises(AuthError) as info:
                await client.system_info()
            assert "401" in str(info.value) and "system/info" in str(info.value)
            assert server.gets == 1


async def test_axeos_websocket_events():
    lines = ["I (1000) asic_result: ID: 5, ASIC nr: 0, Core: 1/2, ver: 20000000 Nonce 0000ABCD diff 300.0 of 256.",
             "I (1001) stratum_task: message result accepted",
             "I (1002) stratum_task: Set stratum difficulty: 1024",
             "not a log line"]
    async with AxeOSServer(INFO_2_9, ws_lines=lines) as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port) as client:
            events = [e async for e in client.events()]
    from asic_reservoir.drivers.events import DifficultyEvent, NonceEvent, ShareResultEvent
    assert [type(e) for e in events] == [NonceEvent, ShareResultEvent, DifficultyEvent]
    assert events[0].nonce == 0xABCD and events[2].difficulty == 1024


class WebsocketFaults:
    """An /api/ws that fails the way units and networks do: refused (401), a reboot that
    drops the socket mid-stream, a handshake that never completes."""

    LINES = ["I (1) stratum_task: message result accepted",
             "I (2) stratum_task: Set stratum difficulty: 512"]

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_get("/api/ws", self.ws)
        self.runner = web.AppRunner(app)
        self.port = 0

    async def __aenter__(self) -> WebsocketFaults:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.runner.cleanup()

    async def ws(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "refuse":
            return web.Response(status=401, text="Unauthorized")
        if self.mode == "hang":
            await self.release.wait()
            return web.Response(status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for line in self.LINES:
            await ws.send_str(line)
        await asyncio.sleep(0.05)
        request.transport.abort()                  # the ESP32 reboots: no close frame
        await self.release.wait()
        return ws


async def test_axeos_websocket_refused_is_an_auth_error():
    async with WebsocketFaults("refuse") as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, timeout=2.0) as client:
            with pytest.raises(AuthError, match="'ws'.*401"):
                [e async for e in client.events()]


async def test_axeos_websocket_dropped_mid_stream_keeps_lines_then_raises():
    async with WebsocketFaults("drop") as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, timeout=2.0) as client:
            got = []
            with pytest.raises(ConnectionRefused, match="websocket dropped"):
                async for line in client.log_lines():
                    got.append(line)
    assert got == WebsocketFaults.LINES              # nothing received before the drop is lost


async def test_axeos_websocket_handshake_that_never_answers_times_out():
    async with WebsocketFaults("hang") as server:
        async with axeos.AxeOSClient("127.0.0.1", server.port, timeout=0.5) as client:
            with pytest.raises(Timeout, match="websocket timed out"):
                [e async for e in client.events()]


async def test_axeos_websocket_to_a_closed_port_is_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with axeos.AxeOSClient("127.0.0.1", port, timeout=2.0) as client:
        with pytest.raises(ConnectionRefused, match=f"port {port}"):
            [e async for e in client.events()]
