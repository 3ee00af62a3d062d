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
from tests.sim_firmware_support import HOST, rpc_json, running_unit
from tests.support import free_port, wait_until

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

# GET /api/system/info at v2.15.0, every top-level field in the order the release adds it,
# with the JSON type its cJSON call gives (main/http_server/system_api_json.c
# system_api_get_full_json; fullHostname / mdnsHostname from http_server.c GET_system_info).
# Float and Number both print as JSON numbers; Bool as true/false; Item as array/object.
LIST, OBJ = (list,), (dict,)
_T = {"Float": NUM, "Number": NUM, "String": STR, "Bool": BOOL}
INFO_V2_15: dict[str, tuple] = {name: _T.get(kind) or (LIST if name != "hashrateMonitor" else OBJ)
                                for name, kind in (field.split(":") for field in """
power:Float voltage:Float current:Float temp:Float temp2:Float vrTemp:Float
coreVoltageActual:Float actualFrequency:Float expectedHashrate:Float fanspeed:Number
fanrpm:Number fan2rpm:Number hashRate:Float hashRate_1m:Float hashRate_10m:Float
hashRate_1h:Float errorPercentage:Float sharesAccepted:Number sharesRejected:Number
sharesPending:Number bestDiff:Number bestSessionDiff:Number poolDifficulty:Number
responseTime:Float responseShareBatch:Number processTime:Float workReceived:Number
blockFound:Number showNewBlock:Bool blockHeight:Number scriptsig:String
networkDifficulty:Number coinbaseValueTotalSatoshis:Number coinbaseValueUserSatoshis:Number
freeHeap:Number freeHeapInternal:Number freeHeapSpiram:Number minFreeHeap:Number
maxAllocHeap:Number uptimeSeconds:Number totalUptimeSeconds:Number totalHashes:Number
totalLog2Work:Number cpuUsage:Float miningPaused:Bool overheat_mode:Number wifiStatus:String
wifiRSSI:Number power_fault:String hardware_fault:String version:String axeOSVersion:String
idfVersion:String boardVersion:String maxPower:Number nominalVoltage:Number
smallCoreCount:Number ASICModel:String isPSRAMAvailable:Number resetReason:String
runningPartition:String macAddr:String hostname:String ssid:String ipv4:String ipv6:String
apEnabled:Number poolConnectionInfo:String isUsingFallbackStratum:Number
primaryPoolIndex:Number secondaryPoolIndex:Number useFallbackStratum:Number pools:Item
stratumURL:String stratumPort:Number stratumUser:String stratumSuggestedDifficulty:Number
stratumExtranonceSubscribe:Bool stratumTLS:Number stratumCert:String
stratumDecodeCoinbase:Bool stratumProtocol:String stratumV2AuthorityPubkey:String
stratumV2ChannelType:String fallbackStratumURL:String fallbackStratumPort:Number
fallbackStratumUser:String fallbackStratumSuggestedDifficulty:Number
fallbackStratumExtranonceSubscribe:Bool fallbackStratumTLS:Number fallbackStratumCert:String
fallbackStratumDecodeCoinbase:Bool fallbackStratumProtocol:String
fallbackStratumV2AuthorityPubkey:String fallbackStratumV2ChannelType:String
useCustomWWW:Number overclockEnabled:Number display:String rotation:Number
invertscreen:Number displayTimeout:Number autofanspeed:Number manualFanSpeed:Number
minFanSpeed:Number temptarget:Number coreVoltage:Number frequency:Float
statsFrequency:Number statsLimit:Number hashrateMonitor:Item partitions:Item
sharesRejectedReasons:Item blockSignals:Item coinbaseOutputs:Item fullHostname:String
mdnsHostname:String""".split())}
# fields the release adds only under a condition: the block fields once a notify's coinbase
# gave a block height (g->block_height > 0), the faults only when set
INFO_V2_15_BLOCK = {"blockHeight", "scriptsig", "networkDifficulty", "coinbaseValueTotalSatoshis",
                    "coinbaseValueUserSatoshis", "blockSignals", "coinbaseOutputs"}
INFO_V2_15_FAULTS = {"power_fault", "hardware_fault"}
# one pool item, in its order (slots without a URL are left out; the password always "*****")
POOL_ITEM_V2_15 = {"id": NUM, "stratumProtocol": STR, "stratumURL": STR, "stratumPort": NUM,
                   "stratumUser": STR, "stratumPassword": STR, "stratumSuggestedDifficulty": NUM,
                   "stratumExtranonceSubscribe": BOOL, "stratumTLS": NUM, "stratumCert": STR,
                   "stratumDecodeCoinbase": BOOL, "stratumV2ChannelType": STR,
                   "stratumV2AuthorityPubkey": STR, "stratumV2RequireAuth": BOOL}
# GET /api/system/statistics labels at v2.15.0 (http_server.c STATS_LABEL_*, SRC_* order)
STATS_LABELS_V2_15 = ["hashrate", "hashrate_1m", "hashrate_10m", "hashrate_1h",
                      "errorPercentage", "asicTemp", "asicTemp2", "vrTemp", "asicVoltage",
                      "voltage", "power", "current", "fanSpeed", "fanRpm", "fan2Rpm", "wifiRssi",
                      "freeHeap", "responseTime", "timestamp"]
# GET /api/system/asic at v2.15.0 (axe-os/api/system/asic_settings.c), in order
ASIC_V2_15 = {"ASICModel": STR, "deviceModel": STR, "swarmColor": STR, "asicCount": NUM,
              "hashDomains": NUM, "defaultFrequency": NUM, "frequencyOptions": LIST,
              "defaultVoltage": NUM, "voltageOptions": LIST}
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
        await wait_until(lambda: unit.miner.job is not None)     # a notify came: height known
        info = (await _get(base, "/api/system/info")).json()
        expected = [k for k in INFO_V2_15 if k not in INFO_V2_15_FAULTS]
        assert list(info) == expected, set(info) ^ set(expected)      # exactly, in order
        assert _types_ok(info, INFO_V2_15) == []
        assert info["blockHeight"] > 0 and info["coinbaseValueUserSatoshis"] == 0
        assert [o["address"] for o in info["coinbaseOutputs"]] == ["OP_RETURN: /asic-reservoir/"]
        assert info["temp2"] == -1 and info["statsLimit"] == 720
        assert [p["id"] for p in info["pools"]] == [0]          # the fallback slot is empty
        assert all(list(p) == list(POOL_ITEM_V2_15) and _types_ok(p, POOL_ITEM_V2_15) == []
                   and p["stratumPassword"] == "*****" for p in info["pools"])
        assert info["actualFrequency"] == unit.reading().frequency_mhz


async def _get(base: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(base + path)


async def test_axeos_2_15_info_before_any_job_leaves_the_block_fields_out():
    """A unit whose pool never answers has had no notify: no block height, no block fields."""
    from asic_reservoir.drivers.clock import Clock
    from asic_reservoir.simulator import SimulatedUnit, UnitConfig

    cfg = UnitConfig(model="lv06", seed=3, host=HOST, worker="lv06.sim", password="x",
                     pool_url=f"stratum+tcp://{HOST}:{free_port()}", firmware="axeos-2.15",
                     noise_seed=3)
    unit = SimulatedUnit(cfg, clock=Clock.for_running_loop(50.0))
    await unit.start()
    server = AxeOSServer(unit)
    try:
        port = await server.start(HOST, 0)
        info = (await _get(f"http://{HOST}:{port}", "/api/system/info")).json()
    finally:
        await server.stop()
        await unit.stop()
    assert unit.miner.job is None
    expected = [k for k in INFO_V2_15 if k not in INFO_V2_15_FAULTS | INFO_V2_15_BLOCK]
    assert list(info) == expected, set(info) ^ set(expected)
    assert _types_ok(info, INFO_V2_15) == []
    assert info["poolConnectionInfo"] == "" and info["workReceived"] == 0


# How a release answers a path it has no handler for (http_server.c at each tag): v2.1.8 sends
# every unhandled GET to its file server, which redirects (302 "/"), and answers other methods
# 405 (the "/*" GET handler matches the URI); v2.15.0 answers any method on /api/* with
# 404 {"error": "unknown route"}.
NOT_SERVED = {"lucky-2.1.8": {"GET": 302, "POST": 405}, "axeos-2.15": {"GET": 404, "POST": 404}}


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
                assert r.status_code == NOT_SERVED[firmware][method], (name, r.status_code)
        if "resume" in served:
            await client.post(base + "/api/system/resume")
        unknown = await client.get(base + "/api/nope", follow_redirects=False)
        swarm = await client.get(base + "/api/swarm/info")
    assert served == OPTIONAL_ENDPOINTS[firmware]
    if firmware == "lucky-2.1.8":
        assert unknown.status_code == 302 and unknown.headers["location"] == "/"
        assert swarm.status_code == 200 and swarm.json() == []        # v2.1.8's swarm list
    else:
        assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown route"})
        assert swarm.status_code == 404                                # gone by v2.15.0


async def test_restart_reply_per_release(axeos_gen):
    firmware, unit, base = axeos_gen
    async with httpx.AsyncClient() as client:
        r = await client.post(base + "/api/system/restart")
    assert r.status_code == 200
    if firmware == "lucky-2.1.8":                 # httpd_resp_send of a plain string
        assert r.text == "System will restart shortly."
    else:                                         # v2.15.0: a JSON message
        assert r.json() == {"message": "System will restart shortly."}
    await wait_until(lambda: unit.reading().booting)
    await wait_until(lambda: not unit.reading().booting, timeout=30)


async def test_axeos_2_15_asic_and_statistics_shapes():
    ctx, unit, server, base = await _axeos("axeos-2.15")
    try:
        async with httpx.AsyncClient() as client:
            asic = (await client.get(base + "/api/system/asic")).json()
            off = (await client.get(base + "/api/system/statistics")).json()
            assert (await client.patch(base + "/api/system", json={"statsFrequency": 1})).status_code == 200
            for _ in range(3):
                await client.get(base + "/api/system/info")
                await asyncio.sleep(0.1)
            stats = (await client.get(base + "/api/system/statistics")).json()
            some = (await client.get(base + "/api/system/statistics",
                                     params={"columns": "power,asicTemp,bogus"})).json()
    finally:
        await server.stop()
        await ctx.__aexit__(None, None, None)
    assert list(asic) == list(ASIC_V2_15) and _types_ok(asic, ASIC_V2_15) == []
    # statsFrequency 0 (the NVS default) keeps no history; the labels are there all the same
    assert off["labels"] == STATS_LABELS_V2_15 and off["statistics"] == []
    assert list(stats) == ["currentTimestamp", "labels", "statistics"]
    assert stats["labels"] == STATS_LABELS_V2_15 and len(stats["statistics"]) >= 1
    assert all(len(row) == len(STATS_LABELS_V2_15) and all(isinstance(v, (int, float)) for v in row)
               for row in stats["statistics"])
    assert some["labels"] == ["asicTemp", "power", "timestamp"]   # SRC_* order, not the query's
    assert len(some["statistics"][0]) == 3


async def test_axeos_2_15_pool_items_replace_their_slot():
    """update_pool_nvs: a PATCHed item replaces its slot (fields left out take their defaults),
    "*****" keeps the stored password; an item without URL, port or user is refused."""
    ctx, unit, server, base = await _axeos("axeos-2.15")
    try:
        async with httpx.AsyncClient() as client:
            first = (await client.get(base + "/api/system/info")).json()["pools"][0]
            for bad in ({"id": 1, "stratumURL": "127.0.0.1", "stratumPort": 3999},
                        {"id": 1, "stratumURL": "", "stratumPort": 3999, "stratumUser": "u"},
                        {"id": 8, "stratumURL": "h", "stratumPort": 3999, "stratumUser": "u"},
                        {"id": 1, "stratumURL": "h", "stratumPort": 3999, "stratumUser": "u",
                         "stratumProtocol": "SV3"}):
                r = await client.patch(base + "/api/system", json={"pools": [bad]})
                assert (r.status_code, r.text) == (400, "Wrong API input"), bad
            keep = {k: v for k, v in first.items()}                  # as read: "*****" password
            r = await client.patch(base + "/api/system", json={"pools": [
                keep, {"id": 1, "stratumURL": "backup.lan", "stratumPort": 3334,
                       "stratumUser": "lv06.backup"}]})
            assert r.status_code == 200 and r.content == b""
            info = (await client.get(base + "/api/system/info")).json()
            ignored = await client.patch(base + "/api/system", json={"stratumURL": "x.lan",
                                                                     "fanspeed": 101})
    finally:
        await server.stop()
        await ctx.__aexit__(None, None, None)
    assert unit.settings()["pool_password"] == "x"          # the stored one, kept by "*****"
    assert [p["id"] for p in info["pools"]] == [0, 1]
    assert info["pools"][0]["stratumSuggestedDifficulty"] == 1000      # sent back as read
    assert info["pools"][1]["stratumSuggestedDifficulty"] == 0         # left out: default
    assert (info["fallbackStratumURL"], info["fallbackStratumPort"]) == ("backup.lan", 3334)
    # top-level stratum keys and fanspeed are no v2.15 settings: ignored, not refused
    assert ignored.status_code == 200 and unit.settings()["pool_url"].split("://")[1].startswith(HOST)


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
                "pools": [{"id": 0, "stratumURL": "127.0.0.1", "stratumPort": 3999,
                           "stratumUser": "lv06.sim"}]})
            assert with_id.status_code == 200
            assert unit.settings()["pool_url"] == "stratum+tcp://127.0.0.1:3999"


async def test_patch_finds_keys_ignoring_case(axeos_gen):
    """Both releases look members up with cJSON_GetObjectItem, which compares names without
    case: "FREQUENCY" is frequency, and v2.15.0 validates it as such."""
    firmware, unit, base = axeos_gen
    async with httpx.AsyncClient() as client:
        stored = await client.patch(base + "/api/system", json={"FREQUENCY": 500})
        if firmware == "axeos-2.15":
            refused = await client.patch(base + "/api/system", json={"TempTarget": 99})
            pools = await client.patch(base + "/api/system", json={"Pools": [
                {"ID": 1, "STRATUMURL": "backup.lan", "stratumport": 3334, "StratumUser": "u"}]})
            info = (await client.get(base + "/api/system/info")).json()
    assert stored.status_code == 200 and unit.settings()["frequency_mhz"] == 500
    if firmware == "axeos-2.15":
        assert unit.reading().frequency_mhz == 500                 # live, as frequency is
        assert (refused.status_code, refused.text) == (400, "Wrong API input")
        assert pools.status_code == 200
        assert [(p["id"], p["stratumURL"], p["stratumPort"]) for p in info["pools"]][1:] == [
            (1, "backup.lan", 3334)]


async def test_axeos_2_15_pool_slot_identify_and_dismiss_endpoints():
    """PUT/DELETE /api/system/pools/N, identify and blockFound/dismiss as v2.15.0's
    http_server.c answers them (status codes and messages)."""
    ctx, unit, server, base = await _axeos("axeos-2.15")
    item = {"stratumURL": "backup.lan", "stratumPort": 3334, "stratumUser": "lv06.b"}
    try:
        async with httpx.AsyncClient() as client:
            put, get = client.put, client.get
            answers = [
                await put(base + "/api/system/pools/8", json=item),
                await put(base + "/api/system/pools/2", content=b""),
                await put(base + "/api/system/pools/2", content=b"{oops"),
                await put(base + "/api/system/pools/2", json={"stratumURL": "x"}),
                await client.delete(base + "/api/system/pools/1"),      # the fallback slot
                await client.delete(base + "/api/system/pools/0"),      # the primary
            ]
            ok = await put(base + "/api/system/pools/2", json=item)
            listed = [p["id"] for p in (await get(base + "/api/system/info")).json()["pools"]]
            cleared = await client.delete(base + "/api/system/pools/2")
            after = [p["id"] for p in (await get(base + "/api/system/info")).json()["pools"]]
            primary = await put(base + "/api/system/pools/0", json={**item, "stratumURL": HOST})
            hi = await client.post(base + "/api/system/identify")
            bye = await client.post(base + "/api/system/identify")
            dismiss = await client.post(base + "/api/system/blockFound/dismiss")
            not_json = await client.patch(base + "/api/system", json=[1, 2])
    finally:
        await server.stop()
        await ctx.__aexit__(None, None, None)
    assert [(r.status_code, r.text) for r in answers] == [
        (400, "Invalid pool index"), (400, "Invalid request length"), (400, "Invalid JSON"),
        (400, "Invalid pool configuration payload"),
        (400, "Cannot delete a pool that is currently selected as primary or fallback"),
        (400, "Cannot delete a pool that is currently selected as primary or fallback")]
    assert ok.json() == {"message": "Pool updated successfully"} and listed == [0, 2]
    assert cleared.json() == {"message": "Pool cleared successfully"} and after == [0]
    assert primary.status_code == 200
    assert unit.settings()["pool_url"] == f"stratum+tcp://{HOST}:3334"      # the primary slot
    assert hi.json() == {"message": 'The device says "Hi!" for 30 seconds.'}
    assert bye.json() == {"message": 'The device no longer says "Hi!".'}
    assert dismiss.json() == {"blockFound": 0, "showNewBlock": False,
                              "message": "Block found notification dismissed"}
    assert (not_json.status_code, not_json.content) == (200, b"")   # JSON, but no object


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
    await wait_until(lambda: unit.reading().booting)


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


# ------------------------------------------------------- S9 bmminer RPC (port 4028)

# Field names per reply object, in order, as bmminer prints them for the S9 (bitmain-c5 build):
# api.c summary(), ascstatus(), poolstatus(), minerconfig(), apiversion()/minerstats() and
# driver-btm-c5.c bitmain_api_stats() at bitmaintech/bmminer-mix commit 729f03e; "MHS 5s" is
# "MHS %ds" of the default log interval; no "No Device" (USE_USBUTILS is not defined for a
# bitmain-c5-only build, configure.ac).
_CHAINS, _S9_SLOTS = range(1, 17), (6, 7, 8)
S9_RPC_FIELDS = {
    "summary": ["Elapsed", "GHS 5s", "GHS av", "Found Blocks", "Getworks", "Accepted", "Rejected",
                "Hardware Errors", "Utility", "Discarded", "Stale", "Get Failures", "Local Work",
                "Remote Failures", "Network Blocks", "Total MH", "Work Utility",
                "Difficulty Accepted", "Difficulty Rejected", "Difficulty Stale", "Best Share",
                "Device Hardware%", "Device Rejected%", "Pool Rejected%", "Pool Stale%",
                "Last getwork"],
    "devs": ["ASC", "Name", "ID", "Enabled", "Status", "Temperature", "MHS av", "MHS 5s",
             "Accepted", "Rejected", "Hardware Errors", "Utility", "Last Share Pool",
             "Last Share Time", "Total MH", "Diff1 Work", "Difficulty Accepted",
             "Difficulty Rejected", "Last Share Difficulty", "Last Valid Work",
             "Device Hardware%", "Device Rejected%", "Device Elapsed"],
    "pools": ["POOL", "URL", "Status", "Priority", "Quota", "Long Poll", "Getworks", "Accepted",
              "Rejected", "Discarded", "Stale", "Get Failures", "Remote Failures", "User",
              "Last Share Time", "Diff", "Diff1 Shares", "Proxy Type", "Proxy",
              "Difficulty Accepted", "Difficulty Rejected", "Difficulty Stale",
              "Last Share Difficulty", "Has Stratum", "Stratum Active", "Stratum URL", "Has GBT",
              "Best Share", "Pool Rejected%", "Pool Stale%"],
    "config": ["ASC Count", "PGA Count", "Pool Count", "Strategy", "Log Interval", "Device Code",
               "OS", "Failover-Only", "ScanTime", "Queue", "Expiry", "Hotplug"],
    "version": ["BMMiner", "API", "Miner", "CompileTime", "Type"],
}
S9_STATS_HEAD = ["BMMiner", "Miner", "CompileTime", "Type"]
S9_STATS_DEVICE = (
    ["STATS", "ID", "Elapsed", "Calls", "Wait", "Max", "Min", "GHS 5s", "GHS av", "miner_count",
     "frequency", "fan_num"] + [f"fan{i}" for i in range(1, 9)] + ["temp_num"]
    + [f"temp{i}" for i in _CHAINS] + [f"temp2_{i}" for i in _CHAINS]
    + [f"temp3_{i}" for i in _CHAINS] + [f"freq_avg{i}" for i in _CHAINS]
    + ["total_rateideal", "total_freqavg", "total_acn", "total_rate"]
    + [f"chain_rateideal{i}" for i in _CHAINS]
    + ["temp_max", "Device Hardware%", "no_matching_work"]
    + [f"chain_acn{i}" for i in _CHAINS] + [f"chain_acs{i}" for i in _CHAINS]
    + [f"chain_hw{i}" for i in _CHAINS] + [f"chain_rate{i}" for i in _CHAINS]
    + [f"chain_xtime{i}" for i in _S9_SLOTS] + [f"chain_offside_{i}" for i in _S9_SLOTS]
    + [f"chain_opencore_{i}" for i in _S9_SLOTS] + ["miner_version"])


async def test_s9_rpc_replies_carry_bmminers_fields_in_order():
    async with running_unit("s9", rpc_port=0) as unit:
        port = unit.rpc_port
        replies = {cmd: await rpc_json(port, cmd) for cmd in (*S9_RPC_FIELDS, "stats")}
    for cmd, fields in S9_RPC_FIELDS.items():
        section = next(k for k in replies[cmd] if k not in ("STATUS", "id"))
        for obj in replies[cmd][section]:
            assert list(obj) == fields, (cmd, set(obj) ^ set(fields))
    head, device = replies["stats"]["STATS"]
    assert list(head) == S9_STATS_HEAD
    assert list(device) == S9_STATS_DEVICE, set(device) ^ set(S9_STATS_DEVICE)
    pool = replies["pools"]["POOLS"][0]
    assert pool["Stratum URL"] == HOST        # extract_sockaddr: the host, without the port


@pytest.mark.virtual_time
@pytest.mark.parametrize("firmware", ["lucky-2.1.8", "axeos-2.15"])
async def test_info_serves_the_sensors_last_poll(firmware):
    """ESP-Miner's power task reads temperature, power, current and fan speed every POLL_RATE
    and the API serves the last values: 2 s on the stock v2.1.8 (a reading held through
    eight reads 0.25 s apart), 100 ms on v2.15.0 (a new reading, with new tachometer jitter,
    at nearly every read)."""
    ctx, unit, server, base = await _axeos(firmware)
    try:
        seen = []
        async with aiohttp.ClientSession() as session:
            for _ in range(40):
                async with session.get(base + "/api/system/info") as reply:
                    info = await reply.json()
                rpm = info.get("fanSpeedRpm", info.get("fanrpm"))
                seen.append((info["power"], info["temp"], info["current"], rpm))
                await unit.clock.sleep(0.25)
    finally:
        await server.stop()
        await ctx.__aexit__(None, None, None)
    runs = [1]
    for a, b in zip(seen, seen[1:]):
        if a == b:
            runs[-1] += 1
        else:
            runs.append(1)
    if firmware == "lucky-2.1.8":
        assert len(runs) >= 4 and all(r == 8 for r in runs[1:-1]), runs
    else:
        assert len(runs) >= 30, runs
