"""cgminer RPC client: quirk repair on recorded-shape replies, and a real loopback TCP server."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from asic_reservoir.drivers.cgminer import CgminerRPC, check_status, decode_reply, parse_text_reply, repair
from asic_reservoir.drivers.errors import (AccessDenied, CommandError, ConnectionRefused, InvalidCommand,
                            MalformedReply, Timeout, TruncatedReply, UnitError)

FIX = Path(__file__).parent / "fixtures" / "cgminer"


def fixture(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_s9_stats_brace_quirk_and_nul_are_repaired():
    reply = decode_reply(fixture("s9_stats.raw"))
    assert reply["STATS"][0]["Type"] == "Antminer S9"
    assert reply["STATS"][1]["chain_acn7"] == 63
    assert reply["STATS"][1]["GHS 5s"] == "13862.71"
    check_status(reply)


def test_trailing_commas_and_bare_inf_nan_become_null():
    reply = decode_reply(fixture("quirk_commas_inf.raw"))
    dev = reply["DEVS"][0]
    assert dev["Temperature"] is None and dev["MHS av"] is None and dev["MHS 20s"] is None
    assert dev["Accepted"] == 7


def test_valid_json_is_never_rewritten():
    text = '{"STATUS":[{"STATUS":"S","Code":11,"Msg":"x }{ ,} inf"}],"id":1}'
    assert decode_reply(text.encode())["STATUS"][0]["Msg"] == "x }{ ,} inf"


def test_truncated_reply_is_typed():
    with pytest.raises(TruncatedReply):
        decode_reply(fixture("s9_stats_truncated.raw"), unit="s9", command="stats")
    with pytest.raises(TruncatedReply):
        decode_reply(b"\x00")
    with pytest.raises(TruncatedReply):
        decode_reply(b"STATUS=S,Code=11|SUMMARY,Elapsed=3")


def test_garbage_is_malformed_not_truncated():
    with pytest.raises(MalformedReply) as info:
        decode_reply(b'{"STATUS": [}]}', unit="u1", command="summary")
    assert not isinstance(info.value, TruncatedReply)
    assert "u1" in str(info.value) and "summary" in str(info.value)
    with pytest.raises(MalformedReply):
        decode_reply(b"[1, 2]")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_untyped(data):
    try:
        reply = decode_reply(data)
    except UnitError as exc:              # typed, and says what it saw
        assert isinstance(exc, (TruncatedReply, MalformedReply)) and str(exc)
    else:
        assert isinstance(reply, dict)    # the only other outcome: a reply object


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 53, 2 ** 53) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=5))
def test_any_json_object_reply_decodes_to_itself(obj):
    assert decode_reply(json.dumps(obj).encode() + b"\x00") == obj


def test_text_reply_parses_into_json_shape():
    reply = decode_reply(fixture("s9_summary.txt"))
    assert reply["STATUS"][0]["Code"] == 11
    summary = reply["SUMMARY"][0]
    assert summary["GHS 5s"] == 13862.71 and summary["Accepted"] == 4521
    devs = parse_text_reply("STATUS=S,Code=9|ASC=0,Name=BM,Temperature=70.5|ASC=1,Name=BM|")
    assert [d["ASC"] for d in devs["ASC"]] == [0, 1]
    assert devs["ASC"][0]["Temperature"] == 70.5


def test_status_codes_map_to_typed_errors():
    with pytest.raises(AccessDenied) as info:
        check_status(decode_reply(fixture("s9_access_denied.raw")), unit="s9", command="addpool")
    assert info.value.code == 45
    with pytest.raises(InvalidCommand):
        check_status(decode_reply(fixture("s9_invalid_command.raw")))
    with pytest.raises(CommandError):
        check_status({"STATUS": [{"STATUS": "F", "Code": 99, "Msg": "fatal"}]})
    with pytest.raises(MalformedReply):
        check_status({"nothing": 1})


def test_repair_is_idempotent_on_repaired_text():
    once = repair('{"a":[{"x":1}{"y":inf,}]}')
    assert repair(once) == once
    assert json.loads(once) == {"a": [{"x": 1}, {"y": None}]}


class FixtureServer:
    """A cgminer-like server on loopback: one request per connection, reply, close."""

    def __init__(self, replies: dict[str, bytes], *, join: bool = True, delay: float = 0.0,
                 chunk: int = 0) -> None:
        self.replies = replies
        self.join = join
        self.delay = delay
        self.chunk = chunk
        self.requests: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        text = data.decode()
        self.requests.append(text)
        if text.startswith("{"):
            command = json.loads(text)["command"]
        else:
            command = text.split("|")[0]
        if "+" in command and not self.join:
            reply = fixture("s9_invalid_command.raw")
        else:
            reply = self.replies.get(command, fixture("s9_invalid_command.raw"))
        await asyncio.sleep(self.delay)
        if self.chunk:
            for i in range(0, len(reply), self.chunk):
                writer.write(reply[i:i + self.chunk])
                await writer.drain()
                await asyncio.sleep(0)
        else:
            writer.write(reply)
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> FixtureServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


S9_REPLIES = {
    "stats": fixture("s9_stats.raw"),
    "summary": fixture("s9_summary.raw"),
    "version": fixture("s9_version.raw"),
    "pools": fixture("s9_pools.raw"),
    "summary+devs": fixture("s9_summary+devs.raw"),
    "addpool": fixture("s9_access_denied.raw"),
    "privileged": fixture("s9_access_denied.raw"),
}


async def test_client_reads_chunked_reply_to_eof():
    async with FixtureServer(S9_REPLIES, chunk=97) as server:
        rpc = CgminerRPC("127.0.0.1", server.port)
        stats = await rpc.stats()
        assert stats["STATS"][1]["chain_acs7"].endswith("x")
        assert json.loads(server.requests[0]) == {"command": "stats"}


async def test_text_request_form():
    async with FixtureServer({"summary": fixture("s9_summary.txt")}) as server:
        reply = await CgminerRPC("127.0.0.1", server.port).command("summary", text=True)
        assert reply["SUMMARY"][0]["Best Share"] == 1234567
        assert server.requests == ["summary"]


async def test_parameter_is_sent():
    async with FixtureServer(S9_REPLIES) as server:
        with pytest.raises(AccessDenied):
            await CgminerRPC("127.0.0.1", server.port).privileged("addpool", "a,b,c")
        assert json.loads(server.requests[0]) == {"command": "addpool", "parameter": "a,b,c"}
        assert len(server.requests) == 1  # privileged commands are never retried


async def test_multicommand_joined_and_fallback():
    async with FixtureServer(S9_REPLIES) as server:
        rpc = CgminerRPC("127.0.0.1", server.port)
        both = await rpc.multicommand("summary", "devs")
        assert rpc.join_supported is True and len(server.requests) == 1
        assert both["devs"]["DEVS"][1]["Temperature"] == 76
        assert both["summary"]["SUMMARY"][0]["Accepted"] == 4521
    async with FixtureServer(S9_REPLIES, join=False) as server:
        rpc = CgminerRPC("127.0.0.1", server.port)
        both = await rpc.multicommand("summary", "stats")
        assert rpc.join_supported is False
        assert both["stats"]["STATS"][0]["Type"] == "Antminer S9"
        assert [json.loads(r)["command"] for r in server.requests] == ["summary+stats", "summary", "stats"]
        await rpc.multicommand("summary", "version")
        assert json.loads(server.requests[-2])["command"] == "summary"  # no second join attempt


async def test_can_write_reports_access_denied():
    async with FixtureServer(S9_REPLIES) as server:
        assert await CgminerRPC("127.0.0.1", server.port).can_write() is False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_refused_connection_is_typed_and_named():
    port = _closed_port()
    rpc = CgminerRPC("127.0.0.1", port, attempts=2, unit="bench-s9")
    with pytest.raises(ConnectionRefused) as info:
        await rpc.summary()
    assert "bench-s9" in str(info.value) and "summary" in str(info.value)


async def test_timeout_is_typed_and_reads_retry():
    async with FixtureServer(S9_REPLIES, delay=0.5) as server:
        rpc = CgminerRPC("127.0.0.1", server.port, timeout=0.1, attempts=2)
        with pytest.raises(Timeout):
            await rpc.summary()
        await asyncio.sleep(0.05)
        assert len(server.requests) == 2


async def test_truncated_reply_over_socket_retries_then_raises():
    async with FixtureServer({"stats": fixture("s9_stats_truncated.raw")}) as server:
        rpc = CgminerRPC("127.0.0.1", server.port, attempts=3)
        with pytest.raises(TruncatedReply):
            await rpc.stats()
        assert len(server.requests) == 3
