"""Conformance of the simulated AxeOS releases' URI tables, and of ESP-Miner v2.15.0's service
endpoints (scoreboard, WiFi scan, logs, boot, OTA, OTAWWW, theme, recovery, live stream),
each through a real loopback socket, with the shapes and status codes the release's source
gives them (``main/http_server/http_server.c``, ``theme_api.c``, ``websocket*.c`` at
v2.15.0, commit b0509031; ``http_server.c`` at v2.1.8, commit 92924f72).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import re

import aiohttp
import httpx
import pytest

from asic_reservoir.drivers.axeos import AxeOSClient
from asic_reservoir.drivers.stratum.work import share_difficulty
from asic_reservoir.simulator.firmware.axeos import AxeOSServer
from asic_reservoir.simulator.firmware.esp_httpd import firmware_uri
from tests.sim_firmware_support import HOST, running_unit, unit_on_pool
from tests.support import wait_until

# start_rest_server's registrations, in order: (method, URI); "*" is HTTP_ANY.
ROUTES = {
    "lucky-2.1.8": [
        ("GET", "/api/system/info"), ("GET", "/api/swarm/info"), ("PATCH", "/api/swarm"),
        ("OPTIONS", "/api/swarm"), ("POST", "/api/system/restart"), ("PATCH", "/api/system"),
        ("OPTIONS", "/api/system"), ("POST", "/api/system/OTA"), ("POST", "/api/system/OTAWWW"),
        ("GET", "/api/ws"), ("GET", "/*")],
    "axeos-2.15": [
        ("OPTIONS", "/api/*"), ("GET", "/recovery"),
        ("GET", "/api/theme"), ("POST", "/api/theme"),            # theme_api.c, registered here
        ("GET", "/api/system/info"), ("POST", "/api/system/boot"), ("GET", "/api/system/asic"),
        ("GET", "/api/system/statistics"), ("GET", "/api/system/scoreboard"),
        ("GET", "/api/system/wifi/scan"), ("GET", "/api/system/logs"),
        ("POST", "/api/system/identify"), ("POST", "/api/system/restart"),
        ("POST", "/api/system/pause"), ("POST", "/api/system/resume"),
        ("POST", "/api/system/blockFound/dismiss"), ("PATCH", "/api/system"),
        ("PUT", "/api/system/pools/*"), ("DELETE", "/api/system/pools/*"),
        ("POST", "/api/system/OTA"), ("POST", "/api/system/OTAWWW"), ("GET", "/api/ws"),
        ("GET", "/api/ws/live"), ("*", "/api/*"), ("GET", "/*")],
}
SCOREBOARD_ENTRY = ["difficulty", "job_id", "extranonce2", "ntime", "nonce", "version_bits"]
LOG_LINE = re.compile(r"^[EWI] \(\d+\) [\w ]+: ")


@contextlib.asynccontextmanager
async def axeos(firmware: str = "axeos-2.15"):
    """A unit with its own web server, started with it as ``sim`` starts one: the firmware's
    scoreboard and log ring see the unit from its first result on."""
    async with running_unit("lv06", firmware=firmware, http_port=0) as unit:
        server = next(s for s in unit._servers if isinstance(s, AxeOSServer))
        yield unit, server, f"http://{HOST}:{unit.http_port}"


@pytest.mark.parametrize("firmware", sorted(ROUTES))
async def test_route_table_is_the_releases(firmware):
    """Every URI handler the release registers, with its method, in its order, and no other."""
    async with axeos(firmware) as (unit, server, base):
        served = [(route.method, firmware_uri(route.resource.canonical))
                  for route in server.app.router.routes()]
        async with httpx.AsyncClient() as client:
            # where no handler matches, the release's own fallback answers
            other = await client.request("PATCH", base + "/api/theme")
            options = await client.options(base + "/index.html")
    assert served == ROUTES[firmware]
    if firmware == "axeos-2.15":
        assert (other.status_code, other.json()) == (404, {"error": "unknown route"})
    else:
        assert (other.status_code, other.text) == (
            405, "Request method for this URI is not handled by server")
    assert options.status_code == 405           # OPTIONS only where a handler is registered


@pytest.mark.virtual_time
async def test_scoreboard_holds_the_best_results_the_unit_found():
    async with axeos() as (unit, server, base):
        await wait_until(lambda: len(server.release.services.scoreboard_list.entries) >= 3,
                         timeout=300)
        miner, job = unit.miner, unit.miner.job
        best_before = unit.reading().best_share
        async with httpx.AsyncClient() as client:
            reply = await client.get(base + "/api/system/scoreboard")
        board = reply.json()
        best_after = unit.reading().best_share        # the unit hashes on while we ask
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    assert 3 <= len(board) <= 20 and all(list(e) == SCOREBOARD_ENTRY for e in board)
    assert all(re.fullmatch(r"[0-9A-F]{8}", e["nonce"]) and re.fullmatch(r"[0-9A-F]{8}", e["version_bits"])
               and isinstance(e["ntime"], int) for e in board)
    difficulties = [e["difficulty"] for e in board]
    assert difficulties == sorted(difficulties, reverse=True)
    assert best_before * (1 - 1e-12) <= difficulties[0] <= best_after * (1 + 1e-12)  # its best
    # each entry of the current job is a genuine result: its header hashes to its difficulty
    checked = 0
    for e in board:
        if e["job_id"] != job.job_id:
            continue
        header = job.header(miner.extranonce1, bytes.fromhex(e["extranonce2"]), e["ntime"],
                            int(e["nonce"], 16), version=job.version ^ int(e["version_bits"], 16))
        achieved = share_difficulty(job.pow(header), miner.difficulty_factor) / unit.hash_scale
        assert achieved == pytest.approx(e["difficulty"], rel=1e-9)
        checked += 1
    assert checked >= 1


@pytest.mark.virtual_time
async def test_wifi_scan_shape_and_a_scan_while_one_runs():
    async with axeos() as (unit, server, base):
        async with httpx.AsyncClient() as client:
            first, second = await asyncio.gather(client.get(base + "/api/system/wifi/scan"),
                                                 client.get(base + "/api/system/wifi/scan"))
            after = await client.get(base + "/api/system/wifi/scan")
    assert sorted([first.status_code, second.status_code]) == [200, 500]
    failed = first if first.status_code == 500 else second
    assert failed.text == "WiFi scan failed"
    networks = after.json()["networks"]
    assert list(after.json()) == ["networks"] and after.status_code == 200
    assert all(list(n) == ["ssid", "rssi", "authmode"] and isinstance(n["ssid"], str)
               and isinstance(n["rssi"], int) and n["authmode"] in range(0, 12) for n in networks)
    assert networks[0]["ssid"] == "lab"                     # the network the unit is on


@pytest.mark.virtual_time
async def test_logs_are_the_units_lines_and_survive_a_restart():
    async with axeos() as (unit, server, base):
        await wait_until(lambda: b"asic_result" in server.release.services.log.read_all(),
                         timeout=300)
        async with httpx.AsyncClient() as client:
            before = await client.get(base + "/api/system/logs")
            assert (await client.post(base + "/api/system/restart")).status_code == 200
            await wait_until(lambda: unit.reading().booting)
            await wait_until(lambda: not unit.reading().booting, timeout=60)
            # the first line the booted unit prints finds the ring kept: the mark goes first
            await wait_until(lambda: b"--- SYSTEM RESTART ---" in
                             server.release.services.log.read_all(), timeout=300)
            after = await client.get(base + "/api/system/logs")
    assert before.status_code == 200 and before.headers["content-type"] == "text/plain"
    assert before.headers["content-disposition"] == 'attachment; filename="bitaxe-logs.txt"'
    lines = before.text.splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines)
    assert any("asic_result: ID: " in line for line in lines)
    assert after.text.startswith(before.text)               # the ring kept what it had
    down, _, up = after.text[len(before.text):].partition("\n--- SYSTEM RESTART ---\n")
    assert "system: Restarting System" in down.splitlines()[-1]
    assert all(LOG_LINE.match(line) for line in up.splitlines())
    assert int(up.split("(", 1)[1].split(")", 1)[0]) < unit.reading().uptime_s * 1000


@pytest.mark.virtual_time
async def test_boot_partition_status_codes():
    async with axeos() as (unit, server, base):
        async with httpx.AsyncClient() as client:
            post = lambda body: client.post(base + "/api/system/boot", content=body)  # noqa: E731
            refused = [await post(b""), await post(b"{oops"), await post(b'{"label": "ota_0"}'),
                       await post(b'{"partition": "nvs"}'), await post(b'{"partition": "ota_1"}'),
                       await post(b'{"partition": "factory"}')]
            assert not unit.reading().booting
            await client.patch(base + "/api/system", json={"useCustomWWW": 1})
            ok = await post(b'{"partition": "ota_0"}')
            await wait_until(lambda: unit.reading().booting)
            await wait_until(lambda: not unit.reading().booting, timeout=30)
            info = (await client.get(base + "/api/system/info")).json()
    assert [(r.status_code, r.text) for r in refused] == [
        (400, "Empty request body"), (400, "Invalid JSON"), (400, "Missing partition label"),
        (400, "Partition not found"), (400, "No valid firmware found on partition"),
        (400, "No valid firmware found on partition")]
    assert ok.json() == {"message": "Next boot partition set successfully. Rebooting..."}
    assert info["useCustomWWW"] == 0 and info["runningPartition"] == "ota_0"
    assert info["version"] == unit.generation.version


@pytest.mark.parametrize("firmware, bad_magic, not_verified", [
    ("axeos-2.15", (500, {"message": "Write Error"}),
     (500, {"message": "Validation / Activation Error"})),
    ("lucky-2.1.8", (500, "Flash Error"), (500, "Validation / Activation Error"))])
async def test_ota_upload_takes_the_bad_image_path_and_changes_nothing(firmware, bad_magic,
                                                                       not_verified):
    async with axeos(firmware) as (unit, server, base):
        uptime = unit.reading().uptime_s
        async with httpx.AsyncClient() as client:
            answers = [await client.post(base + "/api/system/OTA", content=body)
                       for body in (b"not an image", b"\xe9" + bytes(4000), b"")]
            info = (await client.get(base + "/api/system/info")).json()
    body = (lambda r: r.json()) if firmware == "axeos-2.15" else (lambda r: r.text)
    assert [(r.status_code, body(r)) for r in answers] == [bad_magic, not_verified, not_verified]
    assert info["version"] == unit.generation.version
    assert not unit.reading().booting and unit.reading().uptime_s >= uptime   # no restart


@pytest.mark.virtual_time
async def test_axeos_2_15_web_ui_upload():
    async with axeos() as (unit, server, base):
        async with httpx.AsyncClient() as client:
            too_big = await client.post(base + "/api/system/OTAWWW",
                                        content=bytes(3 * 1024 * 1024 + 1))
            assert not unit.reading().booting
            ok = await client.post(base + "/api/system/OTAWWW", content=b"not a spiffs image")
            await wait_until(lambda: unit.reading().booting)
            await wait_until(lambda: not unit.reading().booting, timeout=30)
            info = (await client.get(base + "/api/system/info")).json()
            page = await client.get(base + "/")
    assert (too_big.status_code, too_big.json()) == (
        400, {"message": "File provided is too large for device"})
    assert (ok.status_code, ok.headers["content-type"], ok.text) == (
        200, "text/plain", "WWW update complete, rebooting now!\n")
    assert info["useCustomWWW"] == 1
    assert "Lucky miner" in page.text                       # the built-in UI: nothing mounted


async def test_lucky_web_ui_upload_answers_without_restart():
    async with axeos("lucky-2.1.8") as (unit, server, base):
        async with httpx.AsyncClient() as client:
            r = await client.post(base + "/api/system/OTAWWW", content=b"anything")
    assert (r.status_code, r.text) == (200, "WWW update complete\n")
    assert not unit.reading().booting


async def test_theme_get_post_and_validation():
    async with axeos() as (unit, server, base):
        async with httpx.AsyncClient() as client:
            default = await client.get(base + "/api/theme")
            empty = await client.post(base + "/api/theme", content=b"")
            junk = await client.post(base + "/api/theme", content=b"{oops")
            ok = await client.post(base + "/api/theme",
                                   json={"colorScheme": "light", "primaryColor": 5})
            after = (await client.get(base + "/api/theme")).json()
            await client.post(base + "/api/theme", json={"PRIMARYCOLOR": "#00FF00"})
            case = (await client.get(base + "/api/theme")).json()
            recovery = await client.get(base + "/recovery")
    assert default.json() == {"colorScheme": "dark", "primaryColor": "#F80421"}
    assert (empty.status_code, empty.text) == (500, "Failed to read request")
    assert (junk.status_code, junk.text) == (400, "Invalid JSON")
    assert (ok.status_code, ok.headers["content-type"].split(";")[0], ok.text) == (
        200, "text/html", '{"status":"ok"}')
    assert after == {"colorScheme": "light", "primaryColor": "#F80421"}   # a number is ignored
    assert case["primaryColor"] == "#00FF00"        # cJSON_GetObjectItem ignores case
    assert recovery.status_code == 200 and "AxeOS Recovery" in recovery.text


@pytest.mark.virtual_time
async def test_live_stream_sends_the_info_then_what_changed():
    async with axeos() as (unit, server, base):
        await wait_until(lambda: unit.miner.job is not None)
        async with httpx.AsyncClient() as client:
            info = (await client.get(base + "/api/system/info")).json()
        url = base.replace("http://", "ws://") + "/api/ws/live"
        async with aiohttp.ClientSession() as session:
            live = await session.ws_connect(url)
            first = json.loads((await live.receive(timeout=30)).data)
            updates = [json.loads((await live.receive(timeout=30)).data) for _ in range(3)]
            # log and live streams share the 10 websocket slots
            others = [await session.ws_connect(url.removesuffix("/live")) for _ in range(5)]
            others += [await session.ws_connect(url) for _ in range(4)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            for ws in [live, *others]:
                await ws.close()
    assert first["event"] == "update"
    assert list(first["data"]) == [k for k in info if k not in ("fullHostname", "mdnsHostname")]
    for update in updates:
        assert list(update) == ["event", "data"] and update["event"] == "update"
        assert update["data"] and set(update["data"]) <= set(info)
        assert "ASICModel" not in update["data"]             # unchanged fields are left out
    assert any("uptimeSeconds" in u["data"] for u in updates)
    assert refused.value.status == 429


@contextlib.asynccontextmanager
async def _pool_written(unit, firmware: str, base: str):
    """Another loopback pool, written into the unit's pool settings (worker ``lv06.moved``)
    through the release's PATCH; yields that pool."""
    from asic_reservoir.drivers.stratum import Pool, PoolConfig

    other = Pool(PoolConfig(host=HOST, port=0, refresh_s=None), clock=unit.clock)
    await other.start()
    try:
        host, port = other.url.split("://")[1].rsplit(":", 1)
        item = {"stratumURL": host, "stratumPort": int(port), "stratumUser": "lv06.moved"}
        body = ({"pools": [{"id": 0, **item}]} if firmware == "axeos-2.15" else item)
        async with httpx.AsyncClient() as client:
            assert (await client.patch(base + "/api/system", json=body)).status_code == 200
        yield other
    finally:
        await other.stop()


@pytest.mark.virtual_time
@pytest.mark.parametrize("firmware", sorted(ROUTES))
async def test_pool_write_waits_for_a_restart(firmware):
    """Neither release reconnects on a pool write (update_pool_nvs / PATCH only store it;
    the stratum task reads the pool when it connects): the running connection stays on the
    old pool until the restart, then the unit mines on the new one."""
    async with axeos(firmware) as (unit, server, base), _pool_written(unit, firmware, base) as other:
        accepted = unit.reading().accepted
        await wait_until(lambda: unit.reading().accepted >= accepted + 2, timeout=600)
        assert other.sessions == {}                # nobody came to the new pool
        r = unit.reading()
        assert r.pool_user == "lv06.sim" and r.pending_restart and r.pool_connected
        async with httpx.AsyncClient() as client:
            await client.post(base + "/api/system/restart")
        info = await other.wait_for_session(worker="lv06.moved", timeout=120)
        assert info.authorized and unit.reading().pool_user == "lv06.moved"


@pytest.mark.virtual_time
@pytest.mark.parametrize("firmware", ["axeos-2.15", "lucky-2.1.8"])
async def test_a_dropped_connection_after_a_pool_write(firmware):
    """Before the restart, a dropped pool connection tells the releases apart: v2.15.0's
    stratum task reads the stored pool each time it connects (the write takes effect then);
    v2.1.8 copied URL and port once at init, so it goes back to the boot pool, but re-reads
    user and password from NVS at each connect."""
    async with unit_on_pool("lv06", firmware=firmware, http_port=0) as (unit, boot):
        async with _pool_written(unit, firmware, f"http://{HOST}:{unit.http_port}") as other:
            assert await boot.disconnect(worker="lv06.sim") == 1
            if firmware == "axeos-2.15":
                info = await other.wait_for_session(worker="lv06.moved", timeout=120)
                r = unit.reading()
                assert not r.pending_restart and boot.sessions == {}
            else:
                info = await boot.wait_for_session(worker="lv06.moved", timeout=120)
                r = unit.reading()
                assert r.pending_restart and other.sessions == {}      # the URL waits
            assert info.authorized and r.pool_user == "lv06.moved"


async def _keep_alive_get(port: int, path: str = "/api/system/info"):
    """A raw HTTP/1.1 GET on its own connection, left open (a keep-alive session)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


@pytest.mark.virtual_time
async def test_lucky_web_server_holds_seven_connections_and_an_eighth_waits():
    """v2.1.8 keeps HTTPD_DEFAULT_CONFIG (max_open_sockets 7, no LRU purge): with seven
    connections open the server stops accepting; the eighth client's request waits until one
    of the seven closes, then it is answered. There is no websocket limit of its own."""
    async with axeos("lucky-2.1.8") as (unit, server, base):
        url = base.replace("http://", "ws://") + "/api/ws"
        async with aiohttp.ClientSession() as session:
            streams = [await session.ws_connect(url) for _ in range(7)]
            reader, writer = await _keep_alive_get(server.port)
            with pytest.raises(asyncio.TimeoutError):           # no answer while all 7 are held
                await asyncio.wait_for(reader.readline(), 30)
            assert len(server.gate.waiting) == 1 and len(server.gate.open) == 7
            await streams[0].close()
            status = await asyncio.wait_for(reader.readline(), 30)
            writer.close()
            for ws in streams[1:]:
                await ws.close()
    assert status.startswith(b"HTTP/1.1 200")


@pytest.mark.virtual_time
async def test_axeos_2_15_purges_the_least_recently_used_connection():
    """v2.15.0: max_open_sockets 20 with lru_purge_enable: a 21st connection closes the
    session used least recently (here the first log stream, silent since its handshake)."""
    async with axeos() as (unit, server, base):
        url = base.replace("http://", "ws://") + "/api/ws"
        async with aiohttp.ClientSession() as session:
            streams = [await session.ws_connect(url) for _ in range(10)]
            held = [await _keep_alive_get(server.port) for _ in range(10)]
            for reader, _ in held:
                assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"HTTP/1.1 200")
            assert len(server.gate.open) == 20
            async with httpx.AsyncClient() as client:
                extra = await client.get(base + "/api/system/info")
            first = await asyncio.wait_for(streams[0].receive(), 30)
            while first.type == aiohttp.WSMsgType.TEXT:            # lines queued before the purge
                first = await asyncio.wait_for(streams[0].receive(), 30)
            for ws in streams:
                await ws.close()
            for _, writer in held:
                writer.close()
    assert extra.status_code == 200 and server.gate.purged >= 1
    assert first.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


@pytest.mark.virtual_time
async def test_the_driver_leaves_room_on_the_lucky_web_server():
    """A bench LV06 often has its web page open (a browser holds up to 4 connections to it);
    v2.1.8 serves 7 in all, so a burst of reads from the driver must fit in the other 3 and
    be answered at once, not wait for a browser connection to close."""
    async with axeos("lucky-2.1.8") as (unit, server, base):
        browser = [await _keep_alive_get(server.port) for _ in range(4)]
        for reader, _ in browser:
            assert (await asyncio.wait_for(reader.readline(), 30)).startswith(b"HTTP/1.1 200")
        async with AxeOSClient(HOST, server.port, timeout=5.0, attempts=1) as client:
            infos = await asyncio.gather(*(client.system_info() for _ in range(10)))
        assert len(server.gate.waiting) == 0
        for _, writer in browser:
            writer.close()
    assert all(info["hostname"] for info in infos)
