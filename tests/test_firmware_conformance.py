"""Conformance: each simulated firmware generation serves the request and response shapes its
real release defines (field names, JSON types, status codes), over real loopback sockets.

The tables below are read from the release sources named in firmware_notes/ (ESP-Miner
``main/http_server/http_server.c`` at v2.1.8, ``main/http_server/system_api_json.c`` at
v2.15.0; the S9 CGI scripts). A simulated generation must serve every field of its
table with the right type and no field its release does not have.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest

from asic_reservoir.simulator.firmware.antminer_web import AntminerWebServer
from asic_reservoir.simulator.firmware.axeos import AxeOSServer
from tests.sim_firmware_support import HOST, running_unit, wait_for

NUM, STR, BOOL = (int, float), (str,), (bool,)

# GET /api/system/info at v2.1.8 (http_server.c GET_system_info), every field; Lucky's fork
# adds minerModel. bestDiff is cgminer's suffix string there.
INFO_V2_1_8 = {
    "power": NUM, "voltage": NUM, "current": NUM, "fanSpeedRpm": NUM, "temp": NUM,
    "hashRate": NUM, "bestDiff": STR, "bestSessionDiff": STR, "freeHeap": NUM,
    "coreVoltage": NUM, "coreVoltageActual": NUM, "frequency": NUM, "ssid": STR,
    "hostname": STR, "wifiStatus": STR, "sharesAccepted": NUM, "sharesRejected": NUM,
    "uptimeSeconds": NUM, "ASICModel": STR, "stratumURL": STR, "stratumPort": NUM,
    "stratumUser": STR, "version": STR, "boardVersion": STR, "runningPartition": STR,
    "flipscreen": NUM, "invertscreen": NUM, "invertfanpolarity": NUM, "autofanspeed": NUM,
    "fanspeed": NUM,
    "minerModel": STR,   # Lucky
}

# GET /api/system/info at v2.15.0: every top-level field system_api_get_full_json adds
# (main/http_server/system_api_json.c; blockHeight..coinbaseValueUserSatoshis only once a
# block height is known, power_fault / hardware_fault / sharesRejectedReasons / blockSignals /
# coinbaseOutputs only when set).
INFO_V2_15_RELEASE = set("""
power voltage current temp temp2 vrTemp coreVoltageActual actualFrequency expectedHashrate
fanspeed fanrpm fan2rpm hashRate hashRate_1m hashRate_10m hashRate_1h errorPercentage
sharesAccepted sharesRejected sharesPending bestDiff bestSessionDiff poolDifficulty
responseTime responseShareBatch processTime workReceived blockFound showNewBlock blockHeight
scriptsig networkDifficulty coinbaseValueTotalSatoshis coinbaseValueUserSatoshis freeHeap
freeHeapInternal freeHeapSpiram minFreeHeap maxAllocHeap uptimeSeconds totalUptimeSeconds
totalHashes totalLog2Work cpuUsage miningPaused overheat_mode wifiStatus wifiRSSI power_fault
hardware_fault version axeOSVersion idfVersion boardVersion maxPower nominalVoltage
smallCoreCount ASICModel isPSRAMAvailable resetReason runningPartition macAddr hostname ssid
ipv4 ipv6 apEnabled poolConnectionInfo isUsingFallbackStratum primaryPoolIndex
secondaryPoolIndex useFallbackStratum pools stratumURL stratumPort stratumUser
stratumSuggestedDifficulty stratumExtranonceSubscribe stratumTLS stratumCert
stratumDecodeCoinbase stratumProtocol stratumV2AuthorityPubkey stratumV2ChannelType
fallbackStratumURL fallbackStratumPort fallbackStratumUser fallbackStratumSuggestedDifficulty
fallbackStratumExtranonceSubscribe fallbackStratumTLS fallbackStratumCert
fallbackStratumDecodeCoinbase fallbackStratumProtocol fallbackStratumV2AuthorityPubkey
fallbackStratumV2ChannelType useCustomWWW overclockEnabled display rotation invertscreen
displayTimeout autofanspeed manualFanSpeed minFanSpeed temptarget coreVoltage frequency
statsFrequency statsLimit hashrateMonitor sharesRejectedReasons blockSignals coinbaseOutputs
partitions""".split())

# The subset the simulated axeos-2.15 serves, with the types the release gives them: what the
# drivers read (axeos.py, units.py: hashRate_1m, actualFrequency, expectedHashrate,
# overheat_mode, pools, ...), what pyasic 0.79 reads (pyasic/miners/backends/espminer.py:
# power, hashRate, smallCoreCount, frequency, uptimeSeconds, temp, vrTemp, voltage, fanrpm,
# hostname, version, macAddr; pyasic/config: autofanspeed, fanspeed, rotation, invertscreen,
# displayTimeout, overheat_mode, overclockEnabled, statsFrequency, minFanSpeed), and the
# identity, WiFi and pool fields a client shows. v2.15 serves no asicCount.
INFO_V2_15_TYPES = {
    "power": NUM, "voltage": NUM, "current": NUM, "temp": NUM, "vrTemp": NUM,
    "coreVoltageActual": NUM, "actualFrequency": NUM, "expectedHashrate": NUM, "fanspeed": NUM,
    "fanrpm": NUM, "hashRate": NUM, "hashRate_1m": NUM, "sharesAccepted": NUM,
    "sharesRejected": NUM, "bestDiff": NUM, "bestSessionDiff": NUM, "poolDifficulty": NUM,
    "freeHeap": NUM, "uptimeSeconds": NUM, "miningPaused": BOOL, "overheat_mode": NUM,
    "wifiStatus": STR, "version": STR, "idfVersion": STR, "boardVersion": STR, "maxPower": NUM,
    "nominalVoltage": NUM, "smallCoreCount": NUM, "ASICModel": STR, "runningPartition": STR,
    "macAddr": STR, "hostname": STR, "ssid": STR, "isUsingFallbackStratum": NUM,
    "pools": (list,), "stratumURL": STR, "stratumPort": NUM, "stratumUser": STR,
    "stratumSuggestedDifficulty": NUM, "fallbackStratumURL": STR, "fallbackStratumPort": NUM,
    "fallbackStratumUser": STR, "invertscreen": NUM, "rotation": NUM, "displayTimeout": NUM,
    "overclockEnabled": NUM, "statsFrequency": NUM, "autofanspeed": NUM,
    "manualFanSpeed": NUM, "minFanSpeed": NUM, "temptarget": NUM, "coreVoltage": NUM,
    "frequency": NUM,
}
# one pool item (slots without a URL are left out; the password is always "*****")
POOL_ITEM_V2_15 = {"id": NUM, "stratumURL": STR, "stratumPort": NUM, "stratumUser": STR,
                   "stratumPassword": STR, "stratumSuggestedDifficulty": NUM}
# endpoints beyond info / PATCH system / restart / ws, per release (http_server.c URI table)
OPTIONAL_ENDPOINTS = {"lucky-2.1.8": set(), "axeos-2.15": {"asic", "statistics", "pause", "resume"}}


def _types_ok(obj: dict, table: dict) -> list[str]:
    return [f"{k}: {type(obj[k]).__name__}" for k, kinds in table.items()
            if k in obj and not (isinstance(obj[k], kinds) and
                                 (kinds is BOOL or not isinstance(obj[k], bool)))]


async def _axeos(firmware):
    ctx = running_unit("lv06", firmware=firmware)
    unit = await ctx.__aenter__()
    server = AxeOSServer(unit)
    port = await server.start(HOST, 0)
    return ctx, unit, server, f"http://{HOST}:{port}"


@pytest.fixture(params=["lucky-2.1.8", "axeos-2.15"])
async def axeos_gen(request):
    ctx, unit, server, base = await _axeos(request.param)
    yield request.param, unit, base
    await server.stop()
    await ctx.__aexit__(None, None, None)


async def test_info_fields_and_types_match_the_release(axeos_gen):
    firmware, unit, base = axeos_gen
    async with httpx.AsyncClient() as client:
        reply = await client.get(base + "/api/system/info")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    info = reply.json()
    if firmware == "lucky-2.1.8":
        assert set(info) == set(INFO_V2_1_8)               # exactly the release's fields
        assert _types_ok(info, INFO_V2_1_8) == []
        assert info["frequency"] == unit.settings()["frequency_mhz"]   # the stored value
    else:
        assert set(INFO_V2_15_TYPES) <= INFO_V2_15_RELEASE       # a subset of the release
        assert set(info) == set(INFO_V2_15_TYPES), set(info) ^ set(INFO_V2_15_TYPES)
        assert _types_ok(info, INFO_V2_15_TYPES) == []
        assert [p["id"] for p in info["pools"]] == [0]          # the fallback slot is empty
        assert all(set(p) == set(POOL_ITEM_V2_15) and _types_ok(p, POOL_ITEM_V2_15) == []
                   and p["stratumPassword"] == "*****" for p in info["pools"])


async def test_optional_endpoints_exist_only_in_their_release(axeos_gen):
    firmware, unit, base = axeos_gen
    served = set()
    async with httpx.AsyncClient() as client:
        for name, method, field in (("asic", "GET", "frequencyOptions"),
                                    ("statistics", "GET", "statistics"),
                                    ("resume", "POST", "message"), ("pause", "POST", "message")):
            r = await client.request(method, base + f"/api/system/{name}")
            if r.status_code == 200 and field in r.json():
                served.add(name)
            else:
                assert r.status_code == 404
        if "resume" in served:
            await client.post(base + "/api/system/resume")
    assert served == OPTIONAL_ENDPOINTS[firmware]


async def test_patch_status_codes_per_release(axeos_gen):
    firmware, unit, base = axeos_gen
    async with httpx.AsyncClient() as client:
        junk = await client.patch(base + "/api/system", content=b"{not json")
        bad = await client.patch(base + "/api/system", json={"frequency": "fast"})
        ok = await client.patch(base + "/api/system", json={"frequency": 500})
        if firmware == "lucky-2.1.8":
            # stores without any check and always answers 200 with an empty body
            assert [r.status_code for r in (junk, bad, ok)] == [200, 200, 200]
            assert ok.content == b""
            assert unit.settings()["frequency_mhz"] == 500
            assert unit.reading().frequency_mhz == 485          # loaded at the next restart
        else:
            assert (junk.status_code, junk.text) == (400, "Invalid JSON")
            assert (bad.status_code, bad.text) == (400, "Wrong API input")
            assert ok.status_code == 200 and unit.reading().frequency_mhz == 500   # live
            no_id = await client.patch(base + "/api/system", json={
                "pools": [{"stratumURL": "127.0.0.1", "stratumPort": 3999}]})
            assert (no_id.status_code, no_id.text) == (400, "Wrong API input")
            with_id = await client.patch(base + "/api/system", json={
                "pools": [{"id": 0, "stratumURL": "127.0.0.1", "stratumPort": 3999}]})
            assert with_id.status_code == 200
            assert unit.settings()["pool_url"] == "stratum+tcp://127.0.0.1:3999"


# ------------------------------------------------------------- S9 stock CGI

@pytest.fixture
async def s9_cgi():
    ctx = running_unit("s9")
    unit = await ctx.__aenter__()
    server = AntminerWebServer(unit)
    port = await server.start(HOST, 0)
    yield unit, f"http://{HOST}:{port}"
    await server.stop()
    await ctx.__aexit__(None, None, None)


async def test_s9_get_miner_conf_shape(s9_cgi):
    unit, base = s9_cgi
    async with httpx.AsyncClient(auth=httpx.DigestAuth("root", "root")) as client:
        r = await client.get(base + "/cgi-bin/get_miner_conf.cgi")
    conf = json.loads(r.text)
    # keys the script writes for an automatic fan, in its order (no fan keys, no beeper keys)
    assert list(conf) == ["pools", "api-listen", "api-network", "api-groups", "api-allow",
                          "bitmain-use-vil", "bitmain-freq", "bitmain-voltage"]
    assert len(conf["pools"]) == 3 and all(set(p) == {"url", "user", "pass"} for p in conf["pools"])
    assert isinstance(conf["bitmain-freq"], str) and '"url" : ' in r.text   # " : " spacing


async def test_s9_reboot_cgi_prints_no_headers(s9_cgi):
    unit, base = s9_cgi
    host, port = base.removeprefix("http://").split(":")
    async with httpx.AsyncClient(auth=httpx.DigestAuth("root", "root")) as client:
        challenge = await client.get(base + "/cgi-bin/get_system_info.cgi")
        assert challenge.status_code == 200
    # authenticate once through httpx's digest flow, then read the raw bytes of the reply
    auth = httpx.DigestAuth("root", "root")
    request = httpx.Request("GET", base + "/cgi-bin/reboot.cgi")
    flow = auth.sync_auth_flow(request)
    first = next(flow)
    async with httpx.AsyncClient() as client:
        unauth = await client.send(first)
    signed = flow.send(unauth)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"GET /cgi-bin/reboot.cgi HTTP/1.1", f"Host: {host}:{port}",
             f"Authorization: {signed.headers['Authorization']}", "", ""]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert raw == b"Reboot\n"                       # no status line, no headers
    await wait_for(lambda: unit.reading().booting)


async def test_log_stream_clients_per_release(axeos_gen):
    """v2.1.8 keeps one websocket fd: the newest client takes the stream over; current
    AxeOS serves every client."""
    firmware, unit, base = axeos_gen
    ws_url = base.replace("http://", "ws://") + "/api/ws"
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(ws_url)
        await first.receive(timeout=10)                    # the stream is flowing
        second = await session.ws_connect(ws_url)
        await second.receive(timeout=10)
        while True:                                        # drop what was queued before
            try:
                await first.receive(timeout=0.5)
            except asyncio.TimeoutError:
                break
            if firmware == "axeos-2.15":
                break
        if firmware == "lucky-2.1.8":
            with pytest.raises(asyncio.TimeoutError):      # still connected, but silent
                await first.receive(timeout=1.0)
            assert not first.closed
        else:
            assert (await first.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT
        await first.close()
        await second.close()
