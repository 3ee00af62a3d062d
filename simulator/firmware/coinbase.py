"""What ESP-Miner v2.15.0 learns from a ``mining.notify`` coinbase, for its info reply.

Follows ``components/stratum/coinbase_decoder.c`` (``coinbase_process_notification``) and
``components/stratum/utils.c`` (``networkDifficulty``) at tag v2.15.0: the BIP34 block height
pushed first in the scriptSig, the printable rest of the scriptSig ("miner tag", extranonces
left out), the outputs' values and, when the pool's ``stratumDecodeCoinbase`` is on, what each
output pays to. A notify the decoder cannot read teaches the firmware nothing (``None``).
Output scripts are named as the firmware names ``OP_RETURN`` ones (``"OP_RETURN: <text>"``);
other script types (P2PKH, P2WPKH, ...) are shown as ``"UNKNOWN:<hex>"`` here because the
simulator does not encode addresses -- the toolkit's pool pays an ``OP_RETURN`` output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

MAX_OUTPUTS = 6                  # MAX_COINBASE_TX_OUTPUTS (coinbase_decoder.h)
BIP110_SIGNAL_BIT = 4
BIP110_SIGNAL_EXPIRY_BLOCK = 965664
_OP_RETURN = 0x6A


@dataclass(frozen=True)
class CoinbaseFacts:
    """What the firmware keeps from the newest job's coinbase (global_state.h fields)."""

    block_height: int
    scriptsig: str
    network_difficulty: int                 # uint64 cast of networkDifficulty(nbits)
    total_value_sat: int
    user_value_sat: int
    outputs: tuple[tuple[int, str], ...]    # (value in satoshis, address text)
    signals: tuple[str, ...]                # "BIP-54", "BIP-110"


def network_difficulty(nbits: int) -> float:
    mantissa = nbits & 0x007FFFFF
    exponent = (nbits >> 24) & 0xFF
    return (2.0 ** 208 * 65535) / (mantissa * 256.0 ** (exponent - 3))


def _printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def _address(script: bytes) -> str:
    if script and script[0] == _OP_RETURN:
        offset = 2 if len(script) > 1 and 0 < script[1] <= 0x4B and script[1] + 2 == len(script) else 1
        return "OP_RETURN: " + _printable(script[offset:])
    return "UNKNOWN:" + script[:32].hex()


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    first = data[offset]
    if first < 0xFD:
        return first, offset + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[offset + 1:offset + 1 + size], "little"), offset + 1 + size


@functools.lru_cache(maxsize=64)
def decode(coinb1: bytes, coinb2: bytes, version: int, nbits: int, extranonce_size: int,
           user: str, decode_outputs: bool = True) -> CoinbaseFacts | None:
    """The firmware's reading of one notify; ``extranonce_size`` = extranonce1 + extranonce2
    bytes. ``None`` where ``coinbase_process_notification`` gives up before the height.
    (Cached: the API decodes the current job on every info request; the facts are frozen.)"""
    offset = 41                                   # version, input count, prevout hash + index
    if len(coinb1) < offset + 2:
        return None
    script_len, height_len = coinb1[offset], coinb1[offset + 1]
    offset += 2
    if not 0 < height_len <= 4 or len(coinb1) < offset:
        return None
    height = int.from_bytes(coinb1[offset:offset + height_len], "little")
    offset += height_len
    tag_len = script_len - 1 - height_len
    if len(coinb1) - offset < tag_len:            # the scriptSig runs over the extranonces
        tag_len -= extranonce_size
    scriptsig = ""
    if tag_len > 0:
        head = coinb1[offset:offset + tag_len]
        rest = tag_len - len(head)
        if len(coinb2) >= rest:
            scriptsig = _printable(head + coinb2[:rest])
    remainder = (script_len - 1 - height_len) - (len(coinb1) - offset)
    out = max(0, remainder - extranonce_size) if remainder > 0 else 0
    if out + 4 > len(coinb2):
        return None
    sequence = int.from_bytes(coinb2[out:out + 4], "little")
    out += 4
    if out >= len(coinb2):
        return None
    count, out = _varint(coinb2, out)
    total = user_value = 0
    outputs: list[tuple[int, str]] = []
    for i in range(count):
        if out + 8 > len(coinb2):
            break
        value = int.from_bytes(coinb2[out:out + 8], "little")
        out += 8
        total += value
        if out >= len(coinb2):
            break
        n, out = _varint(coinb2, out)
        if out + n > len(coinb2):
            break
        if decode_outputs and i < MAX_OUTPUTS:
            address = _address(coinb2[out:out + n])
            if value > 0 and address and user.startswith(address):
                user_value += value
            outputs.append((value, address))
        out += n
    lock_time = int.from_bytes(coinb2[out:out + 4], "little") if out + 4 <= len(coinb2) else 0
    signals = []
    if decode_outputs and lock_time == height - 1 and sequence != 0xFFFFFFFF:
        signals.append("BIP-54")
    if decode_outputs and height < BIP110_SIGNAL_EXPIRY_BLOCK and version & (1 << BIP110_SIGNAL_BIT):
        signals.append("BIP-110")
    return CoinbaseFacts(height, scriptsig, int(network_difficulty(nbits)), total, user_value,
                         tuple(outputs), tuple(signals))
