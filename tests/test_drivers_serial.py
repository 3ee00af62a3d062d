"""BM13xx UART codec, ESP_LOG parser, and the console reader on loop://, a pty and a tty path."""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import assume, given, strategies as st

from asic_reservoir.drivers import serial as bm
from asic_reservoir.drivers.events import (DifficultyEvent, LogLine, NonceEvent, ShareResultEvent,
                            TemperatureEvent, parse_line, split_line)
from tests.support import run_virtual_within

# Frames ESP-Miner's bm1366.c sends verbatim (their last byte is the CRC5 the firmware computed).
ESP_MINER_FRAMES = [
    "55aa52050000" "0a",            # read register 0 on all chips (enumeration)
    "55aa510900a800070000" "03",    # write 0xA8
    "55aa5109003c80008540" "0c",    # core register
    "55aa53050000" "03",            # chain inactive
    "55aa510900a49000ffff" "1c",    # version mask
    "55aa4109002c007c0003" "03",    # single-chip write
    "55aa40050000" "1c",            # set chip address 0
]
# Responses captured on real chains (type bits + CRC5 in the last byte).
CHIP_RESPONSES = [
    "aa55137000000000000010",       # BM1370 register 0 read
    "aa551800a640029922f991",       # BM1370 nonce
    "aa556db88ee10104035494",       # BM1362 nonce
]


@pytest.mark.parametrize("frame", ESP_MINER_FRAMES)
def test_crc5_matches_firmware_frames(frame):
    raw = bytes.fromhex(frame)
    assert bm.crc5(raw[2:-1]) == raw[-1]
    header, data = bm.decode_command_frame(raw)
    assert bm.command_frame(header, data) == raw


def test_command_builders_reproduce_firmware_bytes():
    assert bm.read_register(0, broadcast=True).hex() == ESP_MINER_FRAMES[0]
    assert bm.chain_inactive().hex() == ESP_MINER_FRAMES[3]
    assert bm.write_register(0xA4, 0x9000FFFF, broadcast=True).hex() == ESP_MINER_FRAMES[4]
    assert bm.set_chip_address(0).hex() == ESP_MINER_FRAMES[6]
    assert bm.write_register(0x2C, 0x007C0003, chip=0).hex() == ESP_MINER_FRAMES[5]


def test_crc16_false_check_value():
    assert bm.crc16_false(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value


@pytest.mark.parametrize("frame", CHIP_RESPONSES)
def test_response_crc_over_67_bits(frame):
    raw = bytes.fromhex(frame)
    decoded = bm.decode_response(raw)
    assert decoded.encode() == raw


def test_nonce_result_fields():
    result = bm.decode_response(bytes.fromhex(CHIP_RESPONSES[1]))
    assert isinstance(result, bm.NonceResult)
    assert result.nonce == 0x40A60018
    assert result.core == 12  # top 7 bits of the wire-order nonce 0x1800A640
    assert result.result_header == 0x99 and result.job_id == 0x98 and result.small_core == 1
    assert result.version_bits == 0x22F9 << 13
    reg = bm.decode_response(bytes.fromhex(CHIP_RESPONSES[0]))
    assert isinstance(reg, bm.RegisterValue) and reg.chip_id == "1370"


def test_corrupted_response_is_rejected():
    raw = bytearray.fromhex(CHIP_RESPONSES[1])
    raw[4] ^= 0x01
    with pytest.raises(bm.FrameError):
        bm.decode_response(bytes(raw))
    with pytest.raises(bm.FrameError):
        bm.decode_response(b"\xaa\x55\x00")


def test_job_frame_round_trip_and_layout():
    job = bm.JobFrame(job_id=0x18, nbits=0x170E3AB4, ntime=0x67678B5C, merkle_root=bytes(range(32)),
                      prev_block_hash=bytes(range(32, 64)), version=0x20000000)
    frame = job.encode()
    assert len(frame) == 88 and frame[:4] == bytes.fromhex("55aa2156")
    assert frame[6:10] == b"\x00\x00\x00\x00" and frame[10:14] == bytes.fromhex("b43a0e17")
    assert int.from_bytes(frame[-2:], "big") == bm.crc16_false(frame[2:-2])
    assert bm.JobFrame.decode(frame) == job
    bad = bytearray(frame)
    bad[20] ^= 0xFF
    with pytest.raises(bm.FrameError):
        bm.JobFrame.decode(bytes(bad))
    with pytest.raises(bm.FrameError):
        bm.JobFrame.decode(bm.read_register(0))


@given(nonce=st.integers(0, 2**32 - 1), midstate=st.integers(0, 255), header=st.integers(0, 255),
       version=st.integers(0, 0xFFFF), junk=st.binary(max_size=30), split=st.integers(0, 60))
def test_stream_decoder_resyncs_after_garbage(nonce, midstate, header, version, junk, split):
    frames = [bm.NonceResult(nonce, midstate, header, version).encode(),
              bm.RegisterValue(b"\x13\x66\x00\x00", 8, 0).encode()]
    stream = junk.replace(b"\xaa", b"\x00") + frames[0] + frames[1]
    decoder = bm.ResponseDecoder()
    out = decoder.feed(stream[:split]) + decoder.feed(stream[split:])
    assert out[0] == bm.NonceResult(nonce, midstate, header, version)
    assert out[1].chip_address == 8 and len(out) == 2


def _chain_emulator(port_write, port_read, n_chips: int) -> None:
    """Answer one enumeration request the way a chain of BM1366 chips does."""
    request = port_read(7)
    assert request == bm.read_register(0, broadcast=True)
    for _ in range(n_chips):
        port_write(bm.RegisterValue(b"\x13\x66\x00\x00", 0, 0).encode())


def test_enumerate_chips_on_loop_url():
    port = bm.open_port("loop://", timeout=0.1)
    try:
        # loop:// echoes writes back: drop the echo of the request, then queue three chip replies
        orig_write = port.write

        def write(data: bytes) -> int:
            n = orig_write(data)
            port.read(len(data))  # drop the echo of our own request
            for _ in range(3):
                orig_write(bm.RegisterValue(b"\x13\x66\x00\x00", 0, 0).encode())
            return n

        port.write = write  # type: ignore[method-assign]
        chips = bm.enumerate_chips(port, quiet=0.05)
        assert [c.chip_id for c in chips] == ["1366"] * 3
    finally:
        port.close()


async def test_enumerate_chips_on_pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = bm.open_port(path, timeout=0.1)
    try:
        def read_exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                buf += os.read(master, n - len(buf))
            return buf
        emulator = asyncio.get_running_loop().run_in_executor(
            None, _chain_emulator, lambda b: os.write(master, b), read_exact, 2)
        chips = await asyncio.to_thread(bm.enumerate_chips, port, 0.2)
        await emulator
        assert [c.chip_id for c in chips] == ["1366", "1366"]
    finally:
        port.close()
        os.close(master)
        os.close(slave)


LOG_LINES = [
    "I (123456) asic_result: ID: 18, ASIC nr: 0, Core: 12/3, ver: 20000000 Nonce 1A2B3C4D diff 1234.5 of 1000.",
    "\x1b[0;32mI (123460) stratum_task: message result accepted\x1b[0m",
    "W (123470) stratum_task: message result rejected: Above target",
    "I (123480) stratum_task: Set stratum difficulty: 512",
    "E (123490) power_management: OVERHEAT! VR: 105.0C ASIC 75.2C",
    "I (123500) power_management: chip temp: 61.5",
    "I (123510) bm1366Module: Job ID: 18, Core: 12/3, Ver: 20000000",
    "I (120842376) asic_result: Nonce difficulty 308.15 of 538.",
]


def test_log_parser_event_types():
    events = [parse_line(line) for line in LOG_LINES]
    nonce = events[0]
    assert isinstance(nonce, NonceEvent)
    assert (nonce.uptime_ms, nonce.job_id, nonce.asic_nr, nonce.core, nonce.small_core) == (123456, "18", 0, 12, 3)
    assert nonce.nonce == 0x1A2B3C4D and nonce.version == 0x20000000 and nonce.is_share
    assert events[1] == ShareResultEvent(123460, True, "")
    assert events[2] == ShareResultEvent(123470, False, "Above target")
    assert events[3] == DifficultyEvent(123480, 512.0)
    assert events[4] == TemperatureEvent(123490, chip_c=75.2, vr_c=105.0)
    assert events[5] == TemperatureEvent(123500, chip_c=61.5)
    assert isinstance(events[6], LogLine) and events[6].tag == "bm1366Module"
    short = events[7]
    assert isinstance(short, NonceEvent) and short.difficulty == 308.15 and not short.is_share
    assert parse_line("rst:0x1 (POWERON_RESET),boot:0x13") is None
    assert split_line("I (5) t: x") == LogLine("I", 5, "t", "x")


def test_log_parser_old_firmware_without_core():
    event = parse_line("I (99) asic_result: ID: 6a1, ASIC nr: 0, ver: 20a6e000 Nonce 0F0E0D0C diff 300.0 of 1024.")
    assert isinstance(event, NonceEvent) and event.core is None and event.nonce == 0x0F0E0D0C


@given(st.text(max_size=120))
def test_log_parser_never_crashes_and_loses_no_line(text):
    event = parse_line(text)
    base = split_line(text)
    if base is None:                      # not an ESP_LOG line: nothing to report
        assert event is None
    else:                                 # an ESP_LOG line always comes back, typed or plain
        assert isinstance(event, (NonceEvent, ShareResultEvent, DifficultyEvent, TemperatureEvent,
                                  LogLine))
        assert event.uptime_ms == base.uptime_ms


@given(st.integers(0, 2 ** 40), st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")),
                                        max_size=80))
def test_any_esp_log_line_is_returned(ms, message):
    event = parse_line(f"W ({ms}) some_tag: {message}")
    assert event is not None and event.uptime_ms == ms
    if isinstance(event, LogLine):
        assert event.level == "W" and event.tag == "some_tag" and event.message == message.strip()


async def _collect(reader: bm.ConsoleReader, n: int) -> list:
    out = []
    async for event in reader.events():
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_console_reader_on_loop_url():
    reader = bm.ConsoleReader("loop://").open()
    try:
        reader._port.write(("garbage without format\n" + "\n".join(LOG_LINES[:4]) + "\n").encode())
        events = await asyncio.wait_for(_collect(reader, 4), 5)
    finally:
        reader.close()
    assert isinstance(events[0], NonceEvent) and events[3] == DifficultyEvent(123480, 512.0)
    assert reader.garbage_lines == 1


async def test_console_reader_on_pty_with_split_writes():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        async with bm.ConsoleReader(path) as reader:
            data = ("\n".join(LOG_LINES[:3]) + "\n").encode()
            os.write(master, data[:37])
            await asyncio.sleep(0.05)
            os.write(master, data[37:])
            events = await asyncio.wait_for(_collect(reader, 3), 5)
        assert [type(e) for e in events] == [NonceEvent, ShareResultEvent, ShareResultEvent]
    finally:
        os.close(master)
        os.close(slave)


def test_console_reader_on_a_pty_waits_in_virtual_time():
    """A line printed 5 simulated s after the reader started waiting is read. A reader
    blocked in a worker thread counts as work in flight, which stops the virtual clock, so
    the line (due on a loop timer) would never be printed. A simulated unit ticks every
    0.1 s; so does this test, since a pty hands written bytes to the reader's side a moment
    later (a kernel work item), not at once like a loopback socket."""
    async def read_one() -> tuple[float, list]:
        master, slave = os.openpty()
        loop = asyncio.get_running_loop()
        ticks = loop.create_task(_tick_forever(0.1))
        try:
            loop.call_later(5.0, os.write, master, (LOG_LINES[0] + "\n").encode())
            async with bm.ConsoleReader(os.ttyname(slave)) as reader:
                events = await asyncio.wait_for(_collect(reader, 1), 600)
            return loop.time(), events
        finally:
            ticks.cancel()
            os.close(master)
            os.close(slave)

    at, events = run_virtual_within(read_one, wall_s=60)
    assert at >= 5.0 and isinstance(events[0], NonceEvent)


async def _tick_forever(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)


async def test_console_reader_close_ends_a_waiting_read():
    master, slave = os.openpty()
    try:
        reader = bm.ConsoleReader(os.ttyname(slave)).open()
        waiting = asyncio.create_task(_collect(reader, 1))
        await asyncio.sleep(0.05)                   # the reader now waits on the pty
        reader.close()
        assert await asyncio.wait_for(waiting, 5) == []
    finally:
        os.close(master)
        os.close(slave)


def test_console_reader_missing_device_is_typed():
    from asic_reservoir.drivers.errors import ConnectionRefused
    with pytest.raises(ConnectionRefused) as info:
        bm.ConsoleReader("/dev/nonexistent-tty-for-test").open()
    assert "/dev/nonexistent-tty-for-test" in str(info.value)


@given(at=st.integers(2, 10), flip=st.integers(1, 255), split=st.integers(0, 33))
def test_decoder_resyncs_after_a_crc_error_on_a_real_port(at, flip, split):
    """A response corrupted on the wire (any byte after the preamble) is counted as a CRC
    error and dropped; the responses after it decode, read through a pyserial port."""
    good = [bm.NonceResult(0x12345678, 3, 4, 0x1234).encode(),
            bm.RegisterValue(b"\x13\x66\x00\x00", 8, 0).encode()]
    bad = bytearray(bm.NonceResult(0x0F1E2D3C, 1, 2, 0x0102).encode())
    bad[at] ^= flip
    assume(b"\xaa\x55" not in bytes(bad[1:]))      # no false preamble inside the bad frame
    try:                                           # a 5-bit CRC misses ~2.5 % of byte errors:
        bm.decode_response(bytes(bad))             # those are not CRC errors to recover from
        assume(False)
    except bm.FrameError:
        pass
    port = bm.open_port("loop://", timeout=0.1)
    try:
        port.write(bytes(bad) + good[0] + good[1])
        stream = port.read(len(bad) + len(good[0]) + len(good[1]))
    finally:
        port.close()
    decoder = bm.ResponseDecoder()
    out = decoder.feed(stream[:split]) + decoder.feed(stream[split:])
    assert out == [bm.decode_response(good[0]), bm.decode_response(good[1])]
    assert decoder.crc_errors >= 1
