"""Genuine hashing engine: each simulated chip searches its own slice of the nonce space.

Real BM13xx chains split the 32-bit nonce space by chip address, so the chip that found a
nonce can be read back from it (:func:`asic_reservoir.drivers.stratum.work.chip_of_nonce`). The engine keeps
one cursor per chip over ``nonce_slice(chip, n_chips)`` of the current job; when a chip's
slice is exhausted it moves to a fresh extranonce2 (a new, never-searched coinbase), so every
candidate is a distinct, genuine header.

With version rolling (ESP-Miner / BM1366 style) a chip walks its slice in chunks of
:data:`VERSION_CHUNK` nonces and tries every rolled version (bits inside the negotiated mask)
on a chunk before moving to the next one, so shares carry varied version bits as the real
chip's results do. The exact order in which BM1366 cores visit (version, nonce) is not
public; this order is an estimate that only affects which genuine solutions are found first.

Hashes are compared as the little-endian integer of the raw digest against a precomputed
target (the chip floor); the caller decides which of those chip results reach the pool.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from asic_reservoir.drivers.stratum.work import Job, WorkError, nonce_slice, ripemd160

VERSION_CHUNK = 1024
"""Nonces searched per rolled version before the next version (estimate, see module doc)."""

_U32 = struct.Struct("<I")


@dataclass(slots=True)
class ChipResult:
    """A nonce whose hash meets the chip floor: what the ASIC reports to its controller.

    Not frozen: one is made per chip result, and a frozen dataclass costs ten times as much
    to create (a guarded ``object.__setattr__`` per field)."""

    chip: int
    nonce: int
    ntime: int
    version: int          # header version actually hashed (rolled when rolling)
    extranonce2: bytes
    digest: bytes         # raw proof-of-work digest (little-endian integer order)


def _mask_bits(mask: int) -> tuple[int, ...]:
    return tuple(b for b in range(32) if mask >> b & 1)


def _deposit(index: int, bits: tuple[int, ...]) -> int:
    """Spread the bits of ``index`` onto the bit positions ``bits`` (a software PDEP)."""
    value = 0
    for i, bit in enumerate(bits):
        if index >> i & 1:
            value |= 1 << bit
    return value


def scan_sha256d(mid, tail: bytes, start: int, stop: int, target: int,
                 wanted: int = 0) -> list[tuple[int, bytes]]:
    """SHA-256d of ``prefix + LE32(nonce)`` for nonces in [start, stop) with a midstate.

    ``mid`` is a hashlib object that has absorbed the first 64 header bytes; ``tail`` holds
    header bytes 64..75. Returns (nonce, digest) for digests <= ``target``, stopping at the
    ``wanted``-th one when ``wanted`` > 0.
    """
    sha256 = hashlib.sha256
    copy = mid.copy
    from_bytes = int.from_bytes
    top = target >> 248            # quick reject on the digest's most significant byte
    hits = []
    for nonce in range(start, stop):
        h = copy()
        h.update(tail + nonce.to_bytes(4, "little"))
        d = sha256(h.digest()).digest()
        if d[31] <= top and from_bytes(d, "little") <= target:
            hits.append((nonce, d))
            if len(hits) == wanted:
                break
    return hits


def scan_lbry(mid, tail: bytes, start: int, stop: int, target: int,
              wanted: int = 0) -> list[tuple[int, bytes]]:
    """LBRY proof of work (dsha -> sha512 -> ripemd160 halves -> dsha) over a nonce range."""
    sha256 = hashlib.sha256
    sha512 = hashlib.sha512
    copy = mid.copy
    from_bytes = int.from_bytes
    rmd = ripemd160
    top = target >> 248
    hits = []
    for nonce in range(start, stop):
        h = copy()
        h.update(tail + nonce.to_bytes(4, "little"))
        s = sha512(sha256(h.digest()).digest()).digest()
        d = sha256(sha256(rmd(s[:32]) + rmd(s[32:])).digest()).digest()
        if d[31] <= top and from_bytes(d, "little") <= target:
            hits.append((nonce, d))
            if len(hits) == wanted:
                break
    return hits


class _ChipCursor:
    """Where one chip is in its slice: extranonce2, rolled version, next nonce."""

    __slots__ = ("chip", "start", "stop", "extranonce2", "base", "version_index",
                 "chunk_start", "pos", "mid", "tail", "version")

    def __init__(self, chip: int, span: range) -> None:
        self.chip = chip
        self.start = span.start
        self.stop = span.stop
        self.extranonce2 = b""
        self.base = b""            # header prefix (76/108 bytes) for the current extranonce2
        self.version_index = 0
        self.chunk_start = span.start
        self.pos = span.start
        self.mid = None
        self.tail = b""
        self.version = 0


class HashingEngine:
    """Searches each chip's nonce slice of the current job for hashes under a target."""

    def __init__(self, n_chips: int, algorithm: str = "sha256d", roll_versions: bool = False,
                 version_chunk: int = VERSION_CHUNK) -> None:
        if n_chips < 1:
            raise ValueError(f"n_chips must be >= 1, got {n_chips}")
        if algorithm not in ("sha256d", "lbry"):
            raise ValueError(f"unknown algorithm {algorithm!r}")
        if version_chunk < 1:
            raise ValueError("version_chunk must be >= 1")
        self.n_chips = n_chips
        self.algorithm = algorithm
        self.roll_versions = roll_versions
        self.version_chunk = version_chunk
        self._scan = scan_lbry if algorithm == "lbry" else scan_sha256d
        self._job: Job | None = None
        self._extranonce1 = b""
        self._en2_size = 0
        self._mask = 0
        self._mask_bits: tuple[int, ...] = ()
        self._n_versions = 1
        self._next_en2 = 0
        self._chips: list[_ChipCursor | None] = []
        self._shared_en2 = b""
        self._shared_base = b""
        self.hashes = 0            # total nonces hashed since creation

    @property
    def job(self) -> Job | None:
        return self._job

    def set_work(self, job: Job | None, extranonce1: bytes = b"", extranonce2_size: int = 4,
                 version_mask: int = 0) -> None:
        """Start searching ``job`` from the beginning of every chip's slice."""
        if job is not None and job.algorithm != self.algorithm:
            raise WorkError(f"{job.algorithm} job given to a {self.algorithm} engine")
        if not 0 <= extranonce2_size <= 32:
            raise WorkError(f"extranonce2 size out of range: {extranonce2_size}")
        self._job = job
        self._extranonce1 = extranonce1
        self._en2_size = extranonce2_size
        self._mask = version_mask & 0xFFFFFFFF if self.roll_versions else 0
        self._mask_bits = _mask_bits(self._mask)
        self._n_versions = 1 << len(self._mask_bits)
        self._next_en2 = 0
        self._chips = [None] * self.n_chips if job is not None else []
        if job is not None:                  # all chips start on one coinbase: slices differ
            self._shared_en2 = self._take_extranonce2()
            self._shared_base = self._prefix(self._shared_en2)

    def _cursor(self, chip: int) -> _ChipCursor:
        """Chip cursors are created on first use: set_work stays cheap for many chips."""
        cursor = _ChipCursor(chip, nonce_slice(chip, self.n_chips))
        cursor.extranonce2, cursor.base = self._shared_en2, self._shared_base
        self._set_version(cursor, 0)
        self._chips[chip] = cursor
        return cursor

    def _take_extranonce2(self) -> bytes:
        value = self._next_en2 % (1 << (8 * self._en2_size)) if self._en2_size else 0
        self._next_en2 += 1
        return value.to_bytes(self._en2_size, "little")

    def _prefix(self, extranonce2: bytes) -> bytes:
        job = self._job
        return job.header_prefix(self._extranonce1, extranonce2, job.ntime)

    def _set_version(self, cursor: _ChipCursor, index: int) -> None:
        cursor.version_index = index
        version = self._job.version
        if self._mask:
            version = (version & ~self._mask & 0xFFFFFFFF) | _deposit(index, self._mask_bits)
        cursor.version = version
        prefix = _U32.pack(version) + cursor.base[4:]
        cursor.mid = hashlib.sha256(prefix[:64])
        cursor.tail = prefix[64:]
        cursor.pos = cursor.chunk_start

    def _advance(self, cursor: _ChipCursor) -> None:
        """The cursor reached the end of its range: next version, chunk or extranonce2."""
        if self._mask:
            if cursor.version_index + 1 < self._n_versions:
                self._set_version(cursor, cursor.version_index + 1)
                return
            cursor.chunk_start += self.version_chunk
            if cursor.chunk_start < cursor.stop:
                self._set_version(cursor, 0)
                return
        cursor.chunk_start = cursor.start
        if self._en2_size:
            cursor.extranonce2 = self._take_extranonce2()
            cursor.base = self._prefix(cursor.extranonce2)
        self._set_version(cursor, 0)

    def _range_end(self, cursor: _ChipCursor) -> int:
        if self._mask:
            return min(cursor.chunk_start + self.version_chunk, cursor.stop)
        return cursor.stop

    def _per_chip(self, counts: Sequence[int], what: str) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.int64)
        if counts.shape != (self.n_chips,):
            raise ValueError(f"expected {self.n_chips} {what}, got {len(counts)}")
        if counts.size and np.minimum.reduce(counts) < 0:
            chip = int(np.argmin(counts))
            raise ValueError(f"negative {what[:-1]} {counts[chip]} for chip {chip}")
        return counts

    def find(self, results_per_chip: Sequence[int], target: int) -> list[ChipResult]:
        """Hash on chip c until it has found ``results_per_chip[c]`` results (hash <= target).

        The caller draws how many results each chip returns (their statistics are the
        physics'); the hashing finds that many genuine ones, in nonce order, at a cost of
        ``1 / P(hash <= target)`` hashes per result on average.
        """
        if self._job is None:
            return []
        counts = self._per_chip(results_per_chip, "result counts")
        results: list[ChipResult] = []
        ntime = self._job.ntime
        scan = self._scan
        chips = counts.nonzero()[0]
        for chip, wanted in zip(chips.tolist(), counts[chips].tolist()):
            cursor = self._chips[chip] or self._cursor(chip)
            while wanted > 0:
                end = self._range_end(cursor)
                hits = scan(cursor.mid, cursor.tail, cursor.pos, end, target, wanted)
                stop = hits[-1][0] + 1 if len(hits) == wanted else end
                for nonce, digest in hits:
                    results.append(ChipResult(cursor.chip, nonce, ntime, cursor.version,
                                              cursor.extranonce2, digest))
                self.hashes += stop - cursor.pos
                wanted -= len(hits)
                cursor.pos = stop
                if stop >= end:
                    self._advance(cursor)
        return results

    def search(self, hashes_per_chip: Sequence[int], target: int) -> list[ChipResult]:
        """Hash ``hashes_per_chip[c]`` nonces on chip c; return results with hash <= target."""
        if self._job is None:
            return []
        budgets = self._per_chip(hashes_per_chip, "hash budgets")
        results: list[ChipResult] = []
        ntime = self._job.ntime
        scan = self._scan
        # a tick gives an S9's 189 chips a few hashes in all: visit only the chips that have some
        for chip in np.flatnonzero(budgets).tolist():
            budget = int(budgets[chip])
            cursor = self._chips[chip] or self._cursor(chip)
            self.hashes += budget
            while budget > 0:
                end = self._range_end(cursor)
                stop = min(cursor.pos + budget, end)
                for nonce, digest in scan(cursor.mid, cursor.tail, cursor.pos, stop, target):
                    results.append(ChipResult(cursor.chip, nonce, ntime, cursor.version,
                                              cursor.extranonce2, digest))
                budget -= stop - cursor.pos
                cursor.pos = stop
                if stop >= end:
                    self._advance(cursor)
        return results
