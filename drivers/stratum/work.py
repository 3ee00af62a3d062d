"""Block-header, merkle and target math for Stratum v1 work (SHA-256d and LBRY).

Everything that turns a Stratum job plus a miner's submission into a header and a
hash lives here, so the pool, the simulator's hashing engine and the probability-filter
study all agree to the bit. Byte-order conventions follow Stratum v1 as implemented by
cgminer/bmminer and ESP-Miner:

* ``version``, ``nbits``, ``ntime`` and ``nonce`` travel as big-endian hex of a uint32
  and sit in the header little-endian;
* ``prevhash`` (and LBRY's claimtrie root) travel with each 4-byte word byte-reversed
  against header order; :func:`swap_words` converts;
* coinbase and merkle branches are hex of raw bytes and are hashed as given.

A hash is compared as the little-endian integer of its raw digest.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Sequence

DIFF1_TARGET = 0xFFFF << 208
"""Target of difficulty 1 (Bitcoin 'pdiff' scale, 0x00000000FFFF0000...)."""

LBRY_DIFFICULTY_FACTOR = 256.0
"""LBRY pools express difficulty 256x the Bitcoin scale (cpuminer-multi, yiimp)."""

MAX_TARGET = (1 << 256) - 1
ALGORITHMS = ("sha256d", "lbry")


class WorkError(ValueError):
    """Raised for malformed work parameters (bad hex, wrong lengths, out-of-range values)."""


# --------------------------------------------------------------------------- hashing

def sha256d(data: bytes) -> bytes:
    """Double SHA-256 of ``data`` (raw digest, internal byte order)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def _ripemd160_hashlib(data: bytes) -> bytes:
    return hashlib.new("ripemd160", data).digest()


def ripemd160_pure(data: bytes) -> bytes:
    """RIPEMD-160 in pure Python, for OpenSSL builds that no longer ship it."""
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    msg = bytearray(data)
    bit_len = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bit_len)
    for offset in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[offset:offset + 64])
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(80):
            rnd = j >> 4
            t = (al + _rmd_f(j, bl, cl, dl) + x[_RMD_R[j]] + _RMD_K[rnd]) & 0xFFFFFFFF
            t = (_rol(t, _RMD_S[j]) + el) & 0xFFFFFFFF
            al, el, dl, cl, bl = el, dl, _rol(cl, 10), bl, t
            t = (ar + _rmd_f(79 - j, br, cr, dr) + x[_RMD_RP[j]] + _RMD_KP[rnd]) & 0xFFFFFFFF
            t = (_rol(t, _RMD_SP[j]) + er) & 0xFFFFFFFF
            ar, er, dr, cr, br = er, dr, _rol(cr, 10), br, t
        t = (h[1] + cl + dr) & 0xFFFFFFFF
        h[1] = (h[2] + dl + er) & 0xFFFFFFFF
        h[2] = (h[3] + el + ar) & 0xFFFFFFFF
        h[3] = (h[4] + al + br) & 0xFFFFFFFF
        h[4] = (h[0] + bl + cr) & 0xFFFFFFFF
        h[0] = t
    return struct.pack("<5I", *h)


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def _rmd_f(j: int, x: int, y: int, z: int) -> int:
    if j < 16:
        return x ^ y ^ z
    if j < 32:
        return (x & y) | (~x & z)
    if j < 48:
        return (x | ~y) ^ z
    if j < 64:
        return (x & z) | (y & ~z)
    return x ^ (y | ~z)


_RMD_R = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8,
    3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12,
    1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2,
    4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
]
_RMD_RP = [
    5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12,
    6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2,
    15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13,
    8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14,
    12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
]
_RMD_S = [
    11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8,
    7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12,
    11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5,
    11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12,
    9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
]
_RMD_SP = [
    8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6,
    9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11,
    9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5,
    15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8,
    8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
]
_RMD_K = [0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E]
_RMD_KP = [0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000]


def _pick_ripemd160():
    try:
        _ripemd160_hashlib(b"")
    except (ValueError, TypeError):  # OpenSSL 3 without the legacy provider
        return ripemd160_pure
    return _ripemd160_hashlib


ripemd160 = _pick_ripemd160()
"""RIPEMD-160 from hashlib when available, else :func:`ripemd160_pure`."""


def lbry_pow(header: bytes) -> bytes:
    """LBRY proof of work: dsha -> sha512 -> ripemd160 of each half -> dsha."""
    if len(header) != 112:
        raise WorkError(f"LBRY header must be 112 bytes, got {len(header)}")
    s = hashlib.sha512(sha256d(header)).digest()
    return sha256d(ripemd160(s[:32]) + ripemd160(s[32:]))


def pow_hash(header: bytes, algorithm: str = "sha256d") -> bytes:
    """Proof-of-work digest of a header for ``algorithm`` ('sha256d' or 'lbry')."""
    if algorithm == "sha256d":
        if len(header) != 80:
            raise WorkError(f"Bitcoin header must be 80 bytes, got {len(header)}")
        return sha256d(header)
    if algorithm == "lbry":
        return lbry_pow(header)
    raise WorkError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")


# --------------------------------------------------------------------------- bytes

def unhex(value: str, name: str, length: int | None = None) -> bytes:
    """Decode hex from the wire with a clear error naming the field."""
    if not isinstance(value, str):
        raise WorkError(f"{name} must be a hex string, got {type(value).__name__}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise WorkError(f"{name} is not valid hex: {value[:80]!r}") from None
    if length is not None and len(raw) != length:
        raise WorkError(f"{name} must be {length} bytes, got {len(raw)}")
    return raw


def hex_u32(value: str, name: str) -> int:
    """Parse a Stratum uint32 (big-endian hex, exactly 8 digits)."""
    return int.from_bytes(unhex(value, name, 4), "big")


def swap_words(data: bytes) -> bytes:
    """Reverse the bytes of every 4-byte word (Stratum prevhash <-> header order)."""
    if len(data) % 4:
        raise WorkError("swap_words needs a multiple of 4 bytes")
    return b"".join(data[i:i + 4][::-1] for i in range(0, len(data), 4))


def hash_to_int(digest: bytes) -> int:
    """Integer value of a raw digest, as compared against a target."""
    return int.from_bytes(digest, "little")


def display_hash(digest: bytes) -> str:
    """Hex in block-explorer (display) order."""
    return digest[::-1].hex()


# --------------------------------------------------------------------------- merkle / header

def build_coinbase(coinb1: bytes, extranonce1: bytes, extranonce2: bytes, coinb2: bytes) -> bytes:
    return coinb1 + extranonce1 + extranonce2 + coinb2


def merkle_root(coinbase: bytes, branches: Sequence[bytes]) -> bytes:
    """Fold the coinbase hash with Stratum merkle branches (each a raw 32-byte hash)."""
    root = sha256d(coinbase)
    for branch in branches:
        if len(branch) != 32:
            raise WorkError(f"merkle branch must be 32 bytes, got {len(branch)}")
        root = sha256d(root + branch)
    return root


def build_header(version: int, prevhash: bytes, root: bytes, ntime: int, nbits: int,
                 nonce: int, claimtrie: bytes | None = None) -> bytes:
    """Assemble an 80-byte (or, with ``claimtrie``, 112-byte LBRY) header.

    ``prevhash`` and ``claimtrie`` are given in Stratum (word-swapped) form.
    """
    if len(prevhash) != 32 or len(root) != 32:
        raise WorkError("prevhash and merkle root must be 32 bytes")
    head = struct.pack("<I", version & 0xFFFFFFFF) + swap_words(prevhash) + root
    if claimtrie is not None:
        if len(claimtrie) != 32:
            raise WorkError("claimtrie root must be 32 bytes")
        head += swap_words(claimtrie)
    for name, value in (("ntime", ntime), ("nbits", nbits), ("nonce", nonce)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise WorkError(f"{name} out of uint32 range: {value}")
    return head + struct.pack("<III", ntime, nbits, nonce)


# --------------------------------------------------------------------------- targets

def nbits_to_target(nbits: int) -> int:
    """Expand compact nBits into a 256-bit target."""
    exponent = nbits >> 24
    mantissa = nbits & 0x007FFFFF
    if nbits & 0x00800000:
        raise WorkError(f"negative compact target {nbits:08x}")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def target_to_nbits(target: int) -> int:
    """Compress a target into nBits (rounds down, as Bitcoin Core's GetCompact)."""
    if target <= 0:
        return 0
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        mantissa = target << (8 * (3 - size))
    else:
        mantissa = target >> (8 * (size - 3))
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def difficulty_to_target(difficulty: float, factor: float = 1.0) -> int:
    """Share target for a (possibly fractional) pool difficulty.

    ``factor`` is the algorithm's difficulty scale (1 for Bitcoin, 256 for LBRY pools).
    """
    if not difficulty > 0 or difficulty != difficulty or difficulty == float("inf"):
        raise WorkError(f"difficulty must be a finite number > 0, got {difficulty!r}")
    # Exact rational arithmetic: fractional difficulties below 1 give targets above diff1.
    target = int(Fraction(DIFF1_TARGET) * Fraction(factor) / Fraction(difficulty))
    return min(target, MAX_TARGET)


def target_to_difficulty(target: int, factor: float = 1.0) -> float:
    if target <= 0:
        return float("inf")
    return DIFF1_TARGET * factor / target


def share_difficulty(digest: bytes, factor: float = 1.0) -> float:
    """Difficulty a digest achieves: diff1 / hash (scaled by ``factor`` for LBRY)."""
    value = hash_to_int(digest)
    return float("inf") if value == 0 else DIFF1_TARGET * factor / value


# --------------------------------------------------------------------------- version rolling

BIP320_MASK = 0x1FFFE000
"""Version bits free for rolling (BIP320); what pools usually grant."""


def roll_version(job_version: int, version_bits: int, mask: int) -> int:
    """Header version from submitted bits in BIP310 OR-mask form."""
    return (job_version & ~mask & 0xFFFFFFFF) | (version_bits & mask)


def roll_version_xor(job_version: int, version_bits: int) -> int:
    """Header version from ESP-Miner's form, where it submits ``rolled ^ job_version``."""
    return (job_version ^ version_bits) & 0xFFFFFFFF


def version_bits_allowed(version_bits: int, mask: int, job_version: int = 0) -> bool:
    """True if the submitted bits change only bits inside the negotiated mask.

    Accepts both the OR form (bits outside the mask are zero) and the XOR/absolute form
    (bits outside the mask equal the job version's).
    """
    outside = version_bits & ~mask & 0xFFFFFFFF
    return outside == 0 or outside == (job_version & ~mask & 0xFFFFFFFF)


# --------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    """One Stratum job as the pool sends it, in decoded form.

    The same record drives the pool (validation), the simulator (hashing) and the
    probability-filter study (headers), so header assembly exists exactly once.
    """

    job_id: str
    prevhash: bytes            # 32 bytes, Stratum word-swapped form
    coinb1: bytes
    coinb2: bytes
    branches: tuple[bytes, ...] = ()
    version: int = 0x20000000
    nbits: int = 0x1D00FFFF
    ntime: int = 0
    clean_jobs: bool = True
    claimtrie: bytes | None = None    # LBRY only (Stratum form)
    algorithm: str = "sha256d"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise WorkError(f"unknown algorithm {self.algorithm!r}")
        if (self.algorithm == "lbry") != (self.claimtrie is not None):
            raise WorkError("LBRY jobs need a claimtrie root and only LBRY jobs have one")

    def merkle_root(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        return merkle_root(build_coinbase(self.coinb1, extranonce1, extranonce2, self.coinb2),
                           self.branches)

    def header(self, extranonce1: bytes, extranonce2: bytes, ntime: int, nonce: int,
               version: int | None = None, root: bytes | None = None) -> bytes:
        """Header for a candidate; pass ``root`` to reuse a merkle root across nonces."""
        if root is None:
            root = self.merkle_root(extranonce1, extranonce2)
        return build_header(self.version if version is None else version, self.prevhash,
                            root, ntime, self.nbits, nonce, self.claimtrie)

    def header_prefix(self, extranonce1: bytes, extranonce2: bytes, ntime: int,
                      version: int | None = None) -> bytes:
        """Header without its last 4 bytes (the nonce): hashing engines append nonces."""
        return self.header(extranonce1, extranonce2, ntime, 0, version)[:-4]

    def pow(self, header: bytes) -> bytes:
        return pow_hash(header, self.algorithm)

    def notify_params(self) -> list:
        """``mining.notify`` parameters (9 for SHA-256d, 10 with claimtrie for LBRY)."""
        common = [self.coinb1.hex(), self.coinb2.hex(), [b.hex() for b in self.branches],
                  f"{self.version:08x}", f"{self.nbits:08x}", f"{self.ntime:08x}",
                  bool(self.clean_jobs)]
        head = [self.job_id, self.prevhash.hex()]
        if self.claimtrie is not None:
            head.append(self.claimtrie.hex())
        return head + common

    @classmethod
    def from_notify(cls, params: list, algorithm: str = "sha256d") -> "Job":
        """Parse ``mining.notify`` parameters; raises :class:`WorkError` on bad input."""
        expected = 10 if algorithm == "lbry" else 9
        if not isinstance(params, list) or len(params) != expected:
            raise WorkError(f"mining.notify for {algorithm} needs {expected} params")
        if algorithm == "lbry":
            job_id, prev, claim, c1, c2, br, ver, bits, ntime, clean = params
            claimtrie = unhex(claim, "claimtrie", 32)
        else:
            job_id, prev, c1, c2, br, ver, bits, ntime, clean = params
            claimtrie = None
        if not isinstance(br, list):
            raise WorkError("merkle branches must be a list")
        return cls(job_id=str(job_id), prevhash=unhex(prev, "prevhash", 32),
                   coinb1=unhex(c1, "coinb1"), coinb2=unhex(c2, "coinb2"),
                   branches=tuple(unhex(b, "merkle branch", 32) for b in br),
                   version=hex_u32(ver, "version"), nbits=hex_u32(bits, "nbits"),
                   ntime=hex_u32(ntime, "ntime"), clean_jobs=bool(clean),
                   claimtrie=claimtrie, algorithm=algorithm)


# --------------------------------------------------------------------------- chips

def nonce_slice(chip: int, n_chips: int) -> range:
    """The contiguous slice of the 32-bit nonce space searched by ``chip`` of ``n_chips``.

    Mirrors how BM13xx chains split the nonce space by chip address, so the chip that
    found a share can be read back from its nonce with :func:`chip_of_nonce`.
    """
    if not 0 <= chip < n_chips:
        raise WorkError(f"chip {chip} out of range for {n_chips} chips")
    def boundary(c: int) -> int:  # ceil(c * 2^32 / n): exact inverse of chip_of_nonce
        return -(-(c << 32) // n_chips)

    return range(boundary(chip), boundary(chip + 1))


def chip_of_nonce(nonce: int, n_chips: int) -> int:
    """Inverse of :func:`nonce_slice`: which chip's slice a nonce lies in."""
    return ((nonce & 0xFFFFFFFF) * n_chips) >> 32
