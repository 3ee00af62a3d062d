"""bmminer (S9) and Goldshell (LB-Box) RPC emulation, over real loopback sockets."""
from __future__ import annotations

import asyncio
import json
import random

import pytest

from asic_reservoir.simulator.firmware.cgminer_rpc import (
    STOCK_S9_API_GROUPS,
    CgminerRpcServer,
    parse_api_allow,
)
from tests.sim_firmware_support import (
    HOST,
    repair,
    rpc_json,
    rpc_raw,
    running_unit,
)
from tests.support import wait_until

# Virtual time: the units' clocks jump to the next event, so the rates their RPC reports come
# from the seeded noise alone and not from how promptly the host ran the tick loop.
pytestmark = pytest.mark.virtual_time


async def rates_settled(unit) -> None:
    """Wait until the unit has hashed for a whole firmware rate window: a rate read before that
    comes from the few chip results of a partly filled window (high, since it waited for one)."""
    start = unit.physics.time_s
    await wait_until(lambda: unit.physics.time_s >= start + unit.profile.hashrate_window_s,
                     timeout=120)


@pytest.fixture
async def s9():
    async with running_unit("s9") as unit:
        await rates_settled(unit)
        server = CgminerRpcServer(unit)
        port = await server.start(HOST, 0)
        yield unit, port
        await server.stop()


@pytest.fixture
async def lbbox():
    async with running_unit("lbbox") as unit:
        await rates_settled(unit)
        server = CgminerRpcServer(unit)
        port = await server.start(HOST, 0)
        yield unit, port
        await server.stop()


async def test_reply_is_nul_terminated_and_connection_closes(s9):
    _, port = s9
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b'{"command":"version"}')
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)        # returns only because the server closed
    writer.close()
    assert raw.endswith(b"}\x00") and raw.count(b"\x00") == 1
    reply = json.loads(raw[:-1])
    status = reply["STATUS"][0]
    assert (status["STATUS"], status["Code"], status["Msg"]) == ("S", 22, "BMMiner versions")
    assert status["Description"] == "bmminer 1.0.0" and isinstance(status["When"], int)
    assert reply["VERSION"][0]["Type"] == "Antminer S9" and reply["id"] == 1


async def test_summary_ghs5s_is_a_string_matching_the_unit(s9):
    unit, port = s9
    reply = await rpc_json(port, "summary")
    summ = reply["SUMMARY"][0]
    assert reply["STATUS"][0]["Code"] == 11
    assert isinstance(summ["GHS 5s"], str) and isinstance(summ["GHS av"], float)
    ghs = float(summ["GHS 5s"])
    assert ghs == pytest.approx(unit.reading().hashrate_ghs, rel=0.25)
    assert 5000 < ghs < 20000          # an S9 at stock clock: ~13.5 TH/s
    for key in ("Elapsed", "Accepted", "Rejected", "Hardware Errors", "Difficulty Accepted",
                "Best Share", "Device Hardware%"):
        assert key in summ


async def test_stats_has_missing_comma_quirk_and_chain_slots_6_to_8(s9):
    unit, port = s9
    raw = await rpc_raw(port, b'{"command":"stats"}')
    assert b'"Type":"Antminer S9"}{"STATS":0' in raw
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw[:-1])                             # not valid JSON as sent
    stats = repair(raw)["STATS"]
    assert stats[0]["BMMiner"] == "2.0.0" and stats[0]["Type"] == "Antminer S9"
    s = stats[1]
    assert s["ID"] == "BC50" and isinstance(s["GHS 5s"], str)
    active = [n for n in range(1, 17) if s[f"chain_acn{n}"]]
    assert active == [6, 7, 8]
    for n in active:
        assert s[f"chain_acn{n}"] == 63
        groups = s[f"chain_acs{n}"].split(" ")
        assert groups[0] == "" and [len(g) for g in groups[1:]] == [8] * 7 + [7]
        assert set("".join(groups)) <= {"o", "x"}
        # a hashing chain reports its 5 s rate: ~85 floor nonces, +-11 % (1 sigma) of ideal
        ideal = s[f"chain_rateideal{n}"]
        assert 0.3 * ideal < float(s[f"chain_rate{n}"]) < 1.7 * ideal
        assert s[f"freq_avg{n}"] == pytest.approx(650, abs=1)
        assert 20 < s[f"temp2_{n}"] < 110 and 20 < s[f"temp{n}"] < 100
    assert s["chain_rate1"] == "" and s["chain_acs1"] == "" and s["temp2_1"] == 0
    assert [s[f"fan{n}"] > 0 for n in range(1, 9)] == [False] * 4 + [True, True, False, False]
    assert s["total_rateideal"] == pytest.approx(unit.reading().hashrate_ideal_ghs, abs=0.01)
    assert s["total_acn"] == 189 and s["miner_count"] == 3 and s["frequency"] == "650"


async def test_text_mode_and_joined_commands(s9):
    _, port = s9
    raw = await rpc_raw(port, b"summary|")
    assert raw.startswith(b"STATUS=S,When=") and b"|SUMMARY,Elapsed=" in raw
    assert raw.endswith(b"|\x00")
    joined = repair(await rpc_raw(port, b'{"command":"summary+devs"}'))
    assert set(joined) == {"summary", "devs", "id"}
    assert joined["summary"][0]["STATUS"][0]["Code"] == 11
    assert joined["devs"][0]["DEVS"][0]["Name"] == "BC5"
    text_join = await rpc_raw(port, b"version+pools|")
    assert text_join.startswith(b"CMD=version|STATUS=S") and b"CMD=pools|" in text_join


async def test_error_codes_for_denied_unknown_and_malformed(s9):
    _, port = s9
    cases = [(b'{"command":"estats"}', 45, "Access denied to 'estats' command"),
             (b'{"command":"restart"}', 45, "Access denied to 'restart' command"),
             (b'{"command":"frobnicate"}', 14, "Invalid command"),
             (b'{"command":5}', 14, "Invalid command"),
             (b'{"cmd":"summary"}', 24, "Missing JSON 'command'"),
             (b'{"command":"summ', 23, "Invalid JSON"),
             (b"{}}", 23, "Invalid JSON")]
    for payload, code, msg in cases:
        reply = repair(await rpc_raw(port, payload))
        st = reply["STATUS"][0]
        assert (st["STATUS"], st["Code"], st["Msg"]) == ("E", code, msg), payload
    text = await rpc_raw(port, b"nonsense|x")
    assert text.startswith(b"STATUS=E,") and b"Code=14" in text
    joined = repair(await rpc_raw(port, b'{"command":"summary+addpool"}'))
    assert joined["addpool"][0]["STATUS"][0]["Code"] == 45      # not joinable


async def test_garbage_and_silent_clients_do_not_kill_the_server(s9):
    _, port = s9
    assert (await rpc_raw(port, bytes(range(256)) * 8)).endswith(b"\x00")
    assert (await rpc_raw(port, b"\xff\xfe{\x00")).endswith(b"\x00")
    _, w = await asyncio.open_connection(HOST, port)
    w.close()                                            # connect and leave without a word
    reply = await rpc_json(port, "summary")
    assert reply["STATUS"][0]["Code"] == 11


async def test_addpool_and_switchpool_reach_the_unit_at_restart(s9):
    unit, port = s9
    old_url = unit.settings()["pool_url"]
    added = await rpc_json(port, "addpool", "stratum+tcp://127.0.0.1:9,rig.b,pw\\,1")
    assert added["STATUS"][0]["Code"] == 55
    pools = (await rpc_json(port, "pools"))["POOLS"]
    assert [p["URL"] for p in pools] == [old_url, "stratum+tcp://127.0.0.1:9"]
    assert pools[0]["Stratum Active"] is True and pools[0]["Status"] == "Alive"
    assert pools[1]["Stratum Active"] is False
    bad = await rpc_json(port, "switchpool", 5)
    assert bad["STATUS"][0]["Code"] == 26 and bad["STATUS"][0]["Msg"] == "Invalid pool id 5 - range is 0 - 1"
    ok = await rpc_json(port, "switchpool", 1)
    assert ok["STATUS"][0]["Code"] == 27
    s = unit.settings()
    assert (s["pool_url"], s["pool_user"], s["pool_password"]) == ("stratum+tcp://127.0.0.1:9", "rig.b", "pw,1")
    assert unit.reading().pending_restart                  # S9: pool changes wait for a restart
    assert (await rpc_json(port, "pools"))["POOLS"][0]["URL"] == old_url
    await unit.restart()
    pools = (await rpc_json(port, "pools"))["POOLS"]
    assert pools[0]["URL"] == "stratum+tcp://127.0.0.1:9" and pools[0]["User"] == "rig.b"
    assert pools[0]["Status"] == "Dead" and pools[0]["Stratum Active"] is False   # nothing listens there
    assert pools[1]["URL"] == old_url
    missing = await rpc_json(port, "addpool")
    assert missing["STATUS"][0]["Code"] == 52


async def test_rpc_is_down_while_the_unit_boots(s9):
    unit, port = s9
    restart = asyncio.ensure_future(unit.restart())
    await wait_until(lambda: unit.reading().booting)
    try:
        reply = await rpc_raw(port, b'{"command":"summary"}')
    except ConnectionResetError:
        reply = b""
    assert reply == b""
    await restart
    assert (await rpc_json(port, "summary"))["STATUS"][0]["Code"] == 11


async def test_stock_api_groups_deny_config_and_pool_commands():
    async with running_unit("s9") as unit:
        server = CgminerRpcServer(unit, api_groups=STOCK_S9_API_GROUPS)
        port = await server.start(HOST, 0)
        try:
            for cmd in ("config", "addpool", "switchpool", "devdetails"):
                assert (await rpc_json(port, cmd))["STATUS"][0]["Code"] == 45
            assert (await rpc_json(port, "pools"))["STATUS"][0]["Code"] == 7
        finally:
            await server.stop()


async def test_api_allow_refusal_closes_without_reply():
    assert [a.group for a in parse_api_allow("A:0/0,W:*")] == ["A"]    # W:* is not an address
    async with running_unit("s9") as unit:
        server = CgminerRpcServer(unit, api_allow="A:10.0.0.0/8")
        port = await server.start(HOST, 0)
        try:
            try:                      # closed unread: the peer sees EOF or a reset, never a reply
                reply = await rpc_raw(port, b'{"command":"summary"}')
            except ConnectionResetError:
                reply = b""
            assert reply == b""
        finally:
            await server.stop()


async def test_lbbox_devs_and_stats_quirk(lbbox):
    unit, port = lbbox
    reply = await rpc_json(port, "devs")
    dev = reply["DEVS"][0]
    r = unit.reading()
    assert reply["STATUS"][0]["Description"] == "intminer 5.4.2"
    assert dev["MHS 20s"] == pytest.approx(r.hashrate_ghs * 1000, rel=0.3)
    assert "MHS av" in dev and {"tstemp-0", "tstemp-1", "tstemp-2"} <= set(dev)
    assert 15 < dev["tstemp-2"] < 110 and dev["fan0"] > 0
    raw = await rpc_raw(port, b'{"command":"stats"}')
    assert b'}{"STATS":0' in raw and repair(raw)["STATS"][1]["temp_max"] == 0
    details = (await rpc_json(port, "devdetails"))["DEVS"][0]      # bfgminer puts them under DEVS
    assert details["DEVDETAILS"] == 0 and details["chips-nr"] == r.chains[0].chips
    assert (await rpc_json(port, "addpool", "a,b,c"))["STATUS"][0]["Code"] == 45


async def test_fuzzed_requests_always_get_a_nul_terminated_reply(s9):
    """Random bytes, truncated JSON, odd parameters: every request is answered, none kills it."""
    _, port = s9
    rng = random.Random(1234)
    seeds = [b'{"command":"summary"}', b'{"command":"addpool","parameter":"a,b,c"}', b"stats|",
             b'{"command":"switchpool","parameter":1.5}', b'{"command":"summary+devs+stats"}',
             b'{"command":"pools","parameter":[1,2]}', b"version+version+zzz|", b"+|+"]
    for i in range(120):
        base = rng.choice(seeds)
        kind = i % 4
        if kind == 0:
            payload = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == 1:
            payload = base[:rng.randrange(1, len(base) + 1)]      # a silent client just waits
        elif kind == 2:
            b = bytearray(base)
            for _ in range(3):
                b[rng.randrange(len(b))] = rng.randrange(256)
            payload = bytes(b)
        else:
            payload = base + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
        try:
            reply = await rpc_raw(port, payload)
        except ConnectionResetError:
            reply = b"\x00"       # an empty send: the server may close before reading
        assert reply.endswith(b"\x00") and reply.count(b"\x00") == 1, payload
    assert (await rpc_json(port, "version"))["STATUS"][0]["Code"] == 22


async def test_config_and_lbbox_version(s9, lbbox):
    _, s9_port = s9
    config = (await rpc_json(s9_port, "config"))
    assert config["STATUS"][0]["Code"] == 33 and config["CONFIG"][0]["Pool Count"] == 1
    assert config["CONFIG"][0]["ASC Count"] == 1
    _, lb_port = lbbox
    version = await rpc_json(lb_port, "version")
    assert version["STATUS"][0]["Code"] == 22 and version["VERSION"][0]["intminer"] == "5.4.2"
    summary = (await rpc_json(lb_port, "summary"))["SUMMARY"][0]
    assert {"MHS av", "MHS 20s", "Diff1 Work"} <= set(summary) and "GHS 5s" not in summary
