"""Serial links of ESP-Miner units: the ESP32 console and the BM13xx chip UART.

Console: ESP_LOG lines parsed by :mod:`asic_reservoir.drivers.events` (the same parser as the websocket).

Chip UART (BM1366 and siblings, 115200 8N1 at reset), as ESP-Miner ``bm1366.c`` frames it:

- host -> chip: ``55 AA | header | length | data | crc``; ``length`` counts header, length,
  data and CRC. Commands (``header & 0x20 == 0``) end with CRC5 (poly x^5+x^2+1, init 0x1F,
  MSB first) over header..data; jobs (``TYPE_JOB``) end with CRC16/CCITT-FALSE
  (poly 0x1021, init 0xFFFF) over header..data, big-endian.
- chip -> host: 11 bytes ``AA 55 | 4 data bytes | 2 id bytes | 2 bytes | type(3 bits)+crc5(5 bits)``;
  the CRC5 covers bytes 2..9 and the 3 type bits. Type 4 (``0x80``) is a nonce result
  ``nonce[4] midstate job_id version[2]``, type 0 a register value ``value[4] chip reg ...``.

Everything here is pure bytes in, bytes out, except :func:`open_port`,
:func:`enumerate_chips` and :class:`ConsoleReader`, which use pyserial and therefore work
on ``loop://``, a pty and a real ``/dev/tty*`` alike.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Union

import serial as pyserial

from asic_reservoir.drivers.errors import ConnectionRefused
from asic_reservoir.drivers.events import LogEvent, parse_line

log = logging.getLogger(__name__)

TYPE_JOB = 0x20
TYPE_CMD = 0x40
GROUP_ALL = 0x10
CMD_SETADDRESS = 0x00
CMD_WRITE = 0x01
CMD_READ = 0x02
CMD_INACTIVE = 0x03
RESPONSE_JOB = 4  # type bits (top 3 bits of the last byte) of a nonce result
RESPONSE_CMD = 0

PREAMBLE_TX = b"\x55\xaa"
PREAMBLE_RX = b"\xaa\x55"
RESULT_LEN = 11
JOB_DATA_LEN = 82
DEFAULT_BAUD = 115200

REG_CHIP_ID = 0x00
REG_PLL0 = 0x08
REG_TICKET_MASK = 0x14
REG_MISC_CONTROL = 0x18
REG_VERSION_MASK = 0xA4


class FrameError(ValueError):
    """A frame with a bad preamble, length or CRC."""


def crc5(data: bytes, nbits: int | None = None) -> int:
    """CRC5 (x^5 + x^2 + 1, init 0x1F, MSB first) over the first ``nbits`` bits of ``data``."""
    nbits = len(data) * 8 if nbits is None else nbits
    if not 0 <= nbits <= len(data) * 8:
        raise ValueError(f"nbits {nbits} outside 0..{len(data) * 8}")
    crc = 0x1F
    for i in range(nbits):
        bit = (data[i >> 3] >> (7 - (i & 7))) & 1
        feedback = ((crc >> 4) ^ bit) & 1
        crc = (((crc << 1) | feedback) ^ (feedback << 2)) & 0x1F
    return crc


def crc16_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor)."""
    return binascii.crc_hqx(data, 0xFFFF)


def command_frame(header: int, data: bytes) -> bytes:
    """A command frame (CRC5) or a job frame (CRC16) depending on ``header & TYPE_JOB``."""
    if not 0 <= header <= 0xFF:
        raise ValueError(f"header {header} is not a byte")
    if header & TYPE_JOB:
        body = bytes([header, len(data) + 4]) + data
        return PREAMBLE_TX + body + crc16_false(body).to_bytes(2, "big")
    body = bytes([header, len(data) + 3]) + data
    return PREAMBLE_TX + body + bytes([crc5(body)])


def decode_command_frame(frame: bytes) -> tuple[int, bytes]:
    """Inverse of :func:`command_frame`: ``(header, data)`` after length and CRC checks."""
    if len(frame) < 5 or frame[:2] != PREAMBLE_TX:
        raise FrameError(f"not a host frame: {frame[:4].hex()}")
    header, length = frame[2], frame[3]
    if length != len(frame) - 2:
        raise FrameError(f"length byte {length} but frame carries {len(frame) - 2}")
    if header & TYPE_JOB:
        body, crc = frame[2:-2], int.from_bytes(frame[-2:], "big")
        if crc16_false(body) != crc:
            raise FrameError(f"CRC16 {crc:04x} != {crc16_false(body):04x}")
    else:
        body, crc = frame[2:-1], frame[-1]
        if crc5(body) != crc:
            raise FrameError(f"CRC5 {crc:02x} != {crc5(body):02x}")
    return header, bytes(body[2:])


def read_register(register: int, chip: int = 0, *, broadcast: bool = False) -> bytes:
    """Read a register of one chip, or of every chip (chip enumeration with register 0)."""
    return command_frame(TYPE_CMD | (GROUP_ALL if broadcast else 0) | CMD_READ,
                         bytes([chip, register]))


def write_register(register: int, value: int, chip: int = 0, *, broadcast: bool = False) -> bytes:
    """Write a 32-bit register value (sent big-endian, as ESP-Miner writes its byte arrays)."""
    return command_frame(TYPE_CMD | (GROUP_ALL if broadcast else 0) | CMD_WRITE,
                         bytes([chip, register]) + value.to_bytes(4, "big"))


def set_chip_address(address: int) -> bytes:
    """Give the first unaddressed chip on the chain this logical address."""
    return command_frame(TYPE_CMD | CMD_SETADDRESS, bytes([address, 0]))


def chain_inactive() -> bytes:
    """Stop chips forwarding address commands, before :func:`set_chip_address` rounds."""
    return command_frame(TYPE_CMD | GROUP_ALL | CMD_INACTIVE, b"\x00\x00")


@dataclass(frozen=True)
class JobFrame:
    """BM1366 job (full-header format, ESP-Miner ``BM1366_job``); hashes travel as given."""

    job_id: int
    nbits: int
    ntime: int
    merkle_root: bytes
    prev_block_hash: bytes
    version: int
    starting_nonce: int = 0
    num_midstates: int = 1

    def encode(self) -> bytes:
        if len(self.merkle_root) != 32 or len(self.prev_block_hash) != 32:
            raise ValueError("merkle_root and prev_block_hash must be 32 bytes")
        data = (bytes([self.job_id & 0xFF, self.num_midstates])
                + self.starting_nonce.to_bytes(4, "little") + self.nbits.to_bytes(4, "little")
                + self.ntime.to_bytes(4, "little") + self.merkle_root + self.prev_block_hash
                + self.version.to_bytes(4, "little"))
        return command_frame(TYPE_JOB | CMD_WRITE, data)

    @classmethod
    def decode(cls, frame: bytes) -> JobFrame:
        header, data = decode_command_frame(frame)
        if not header & TYPE_JOB or len(data) != JOB_DATA_LEN:
            raise FrameError(f"not a job frame (header {header:02x}, {len(data)} data bytes)")
        le = lambda b: int.from_bytes(b, "little")  # noqa: E731
        return cls(job_id=data[0], num_midstates=data[1], starting_nonce=le(data[2:6]),
                   nbits=le(data[6:10]), ntime=le(data[10:14]), merkle_root=bytes(data[14:46]),
                   prev_block_hash=bytes(data[46:78]), version=le(data[78:82]))


@dataclass(frozen=True)
class NonceResult:
    """A nonce a chip found. ``nonce`` is the value ESP-Miner submits (little-endian read)."""

    nonce: int
    midstate: int
    result_header: int
    version_field: int

    @property
    def core(self) -> int:
        """Main core id: top 7 bits of the nonce in wire (big-endian) order."""
        return (int.from_bytes(self.nonce.to_bytes(4, "little"), "big") >> 25) & 0x7F

    @property
    def chip_address(self) -> int:
        """Logical chip address: bits 17-24 of the wire-order nonce (divide by the address step)."""
        return (int.from_bytes(self.nonce.to_bytes(4, "little"), "big") >> 17) & 0xFF

    @property
    def job_id(self) -> int:
        return self.result_header & 0xF8

    @property
    def small_core(self) -> int:
        return self.result_header & 0x07

    @property
    def version_bits(self) -> int:
        """Rolled version bits: the 16-bit field (wire order) shifted left by 13."""
        return self.version_field << 13

    def encode(self) -> bytes:
        body = (self.nonce.to_bytes(4, "little") + bytes([self.midstate, self.result_header])
                + self.version_field.to_bytes(2, "big"))
        return _response(body, RESPONSE_JOB)


@dataclass(frozen=True)
class RegisterValue:
    """A register read reply; reading register 0 of every chip enumerates the chain."""

    value: bytes
    chip_address: int
    register: int
    extra: bytes = b"\x00\x00"

    @property
    def chip_id(self) -> str:
        """Chip type from register 0, e.g. ``'1366'`` for BM1366."""
        return self.value[:2].hex()

    def encode(self) -> bytes:
        return _response(self.value + bytes([self.chip_address, self.register]) + self.extra,
                         RESPONSE_CMD)


ChipResponse = Union[NonceResult, RegisterValue]


def _response(body: bytes, kind: int) -> bytes:
    if len(body) != 8:
        raise ValueError("response body must be 8 bytes")
    tail = kind << 5
    crc = crc5(body + bytes([tail]), 67)
    return PREAMBLE_RX + body + bytes([tail | crc])


def decode_response(frame: bytes) -> ChipResponse:
    """11-byte chip response -> :class:`NonceResult` or :class:`RegisterValue` (CRC checked)."""
    if len(frame) != RESULT_LEN or frame[:2] != PREAMBLE_RX:
        raise FrameError(f"not an 11-byte chip response: {frame.hex()}")
    body = bytes(frame[2:10])
    kind, crc = frame[10] >> 5, frame[10] & 0x1F
    expected = crc5(bytes(frame[2:11]), 67)
    if crc != expected:
        raise FrameError(f"response CRC5 {crc:02x} != {expected:02x}")
    if kind == RESPONSE_JOB:
        return NonceResult(int.from_bytes(body[:4], "little"), body[4], body[5],
                           int.from_bytes(body[6:8], "big"))
    if kind == RESPONSE_CMD:
        return RegisterValue(body[:4], body[4], body[5], body[6:8])
    raise FrameError(f"unknown response type {kind}")


class ResponseDecoder:
    """Stream decoder for chip responses: resynchronises on the preamble after garbage."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped_bytes = 0
        self.crc_errors = 0

    def feed(self, data: bytes) -> list[ChipResponse]:
        self._buf += data
        out: list[ChipResponse] = []
        while True:
            start = self._buf.find(PREAMBLE_RX)
            if start < 0:
                keep = 1 if self._buf.endswith(PREAMBLE_RX[:1]) else 0
                self.dropped_bytes += len(self._buf) - keep
                del self._buf[:len(self._buf) - keep]
                return out
            if start:
                self.dropped_bytes += start
                del self._buf[:start]
            if len(self._buf) < RESULT_LEN:
                return out
            try:
                out.append(decode_response(bytes(self._buf[:RESULT_LEN])))
                del self._buf[:RESULT_LEN]
            except FrameError:
                self.crc_errors += 1
                self.dropped_bytes += 1
                del self._buf[:1]


def open_port(url: str, baudrate: int = DEFAULT_BAUD, timeout: float = 0.2) -> pyserial.SerialBase:
    """Open ``loop://``, a pty path or ``/dev/tty*`` the same way (pyserial URL handlers)."""
    return pyserial.serial_for_url(url, baudrate=baudrate, timeout=timeout)


def enumerate_chips(port: pyserial.SerialBase, quiet: float = 0.3,
                    max_chips: int = 256) -> list[RegisterValue]:
    """Broadcast a read of register 0 and collect every chip's reply until the line is quiet."""
    port.reset_input_buffer()
    port.write(read_register(REG_CHIP_ID, broadcast=True))
    port.flush()
    decoder = ResponseDecoder()
    chips: list[RegisterValue] = []
    old_timeout = port.timeout
    port.timeout = quiet
    try:
        while len(chips) < max_chips:
            data = port.read(RESULT_LEN)
            if not data:
                break
            chips += [r for r in decoder.feed(data)
                      if isinstance(r, RegisterValue) and r.register == REG_CHIP_ID]
    finally:
        port.timeout = old_timeout
    return chips


class ConsoleReader:
    """Reads the ESP32 console and yields parsed events (the websocket parser, shared).

    A tty or pty is waited on by the event loop's selector, so no thread blocks and a
    virtual-time loop sees the wait (a thread blocked in a read counts as work in flight and
    stops the virtual clock, so the simulated unit would never print the awaited line).
    Ports without a file descriptor (``loop://``) read in a worker thread with a short
    timeout. Either way, closing the reader ends the iteration promptly.
    """

    def __init__(self, url: str, baudrate: int = DEFAULT_BAUD) -> None:
        self.url = url
        self.baudrate = baudrate
        self.garbage_lines = 0
        self._port: pyserial.SerialBase | None = None
        self._closed = False
        self._readable: asyncio.Future[None] | None = None

    def open(self) -> ConsoleReader:
        try:
            self._port = open_port(self.url, self.baudrate)
        except (pyserial.SerialException, OSError, ValueError) as exc:
            raise ConnectionRefused(f"cannot open serial console: {exc}", unit=self.url,
                                    command="open") from None
        return self

    def close(self) -> None:
        self._closed = True
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)     # the waiting read sees _closed and ends
        if self._port is not None:
            self._port.close()

    async def __aenter__(self) -> ConsoleReader:
        return self.open()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def events(self) -> AsyncIterator[LogEvent]:
        if self._port is None:
            self.open()
        pending = b""
        while not self._closed:
            try:
                chunk = await self._next_chunk()
            except (pyserial.SerialException, OSError, TypeError) as exc:
                if self._closed:
                    return
                raise ConnectionRefused(f"serial console lost: {exc}", unit=self.url,
                                        command="read") from None
            if not chunk:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                event = parse_line(line.decode("utf-8", errors="replace"))
                if event is None:
                    self.garbage_lines += 1
                    continue
                yield event

    async def _next_chunk(self) -> bytes:
        try:
            fd = self._port.fileno() if self._port is not None else None
        except (OSError, ValueError):           # loop:// and ports without a descriptor
            fd = None
        if fd is None:
            return await asyncio.to_thread(self._read_chunk)
        loop = asyncio.get_running_loop()
        self._readable = readable = loop.create_future()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(fd)
            self._readable = None
        return self._read_chunk()

    def _read_chunk(self) -> bytes:
        port = self._port
        if port is None or self._closed:
            return b""
        waiting = port.in_waiting
        return port.read(max(1, waiting))
