"""Jobs: experiment templates, the default job generator, and each session's job registry.

An experiment fixes any subset of a job's fields with a :class:`JobTemplate`; the
:class:`JobFactory` fills the rest (random previous-block hash, a coinbase transaction
that carries the extranonces in its scriptSig, optional random merkle branches, the
current time). Each session remembers the jobs it was sent together with the difficulty
in force *when it was sent* (:class:`SentJob`), because a share is judged against the
difficulty of its job, not the difficulty at the time it arrives.
"""

from __future__ import annotations

import random
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from asic_reservoir.drivers.stratum.work import (
    ALGORITHMS,
    Job,
    WorkError,
    difficulty_to_target,
    nbits_to_target,
    unhex,
)

DEFAULT_VERSION = 0x20000000
"""BIP9 top bits; no bits inside the BIP320 rolling mask, so OR and XOR rolling agree."""

DEFAULT_NBITS = {"sha256d": 0x17034219, "lbry": 0x1A05B4C4}
"""Network-like compact targets (magnitude of recent mainnet blocks; values arbitrary)."""

COINBASE_TAG = b"/asic-reservoir/"
COINBASE_VALUE_SAT = 312_500_000


def _hexbytes(value: bytes | str | None, name: str, length: int | None = None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if length is not None and len(raw) != length:
            raise WorkError(f"{name} must be {length} bytes, got {len(raw)}")
        return raw
    return unhex(value, name, length)


def _u32(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFFFFFF:
        raise WorkError(f"{name} must be a uint32, got {value!r}")
    return value


@dataclass(frozen=True)
class JobTemplate:
    """Fixes any subset of a job's fields; ``None`` fields come from the default generator.

    Byte fields accept ``bytes`` or hex strings. ``prevhash`` and ``claimtrie`` are in
    Stratum (word-swapped) form, as in ``mining.notify``. ``coinb1``/``coinb2`` must leave
    room for extranonce1 + extranonce2 between them. ``algorithm`` restricts a pool-wide
    push to one listener (``None``: every listener).
    """

    prevhash: bytes | str | None = None
    coinb1: bytes | str | None = None
    coinb2: bytes | str | None = None
    branches: Sequence[bytes | str] | None = None
    version: int | None = None
    nbits: int | None = None
    ntime: int | None = None
    claimtrie: bytes | str | None = None
    algorithm: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "prevhash", _hexbytes(self.prevhash, "prevhash", 32))
        set_(self, "coinb1", _hexbytes(self.coinb1, "coinb1"))
        set_(self, "coinb2", _hexbytes(self.coinb2, "coinb2"))
        set_(self, "claimtrie", _hexbytes(self.claimtrie, "claimtrie", 32))
        if self.branches is not None:
            if isinstance(self.branches, (str, bytes)):
                raise WorkError("branches must be a sequence of 32-byte hashes")
            set_(self, "branches", tuple(_hexbytes(b, "merkle branch", 32) for b in self.branches))
        for name in ("version", "nbits", "ntime"):
            _u32(getattr(self, name), name)
        if self.nbits is not None:
            nbits_to_target(self.nbits)  # rejects negative compact targets
        if self.algorithm is not None and self.algorithm not in ALGORITHMS:
            raise WorkError(f"unknown algorithm {self.algorithm!r}; expected one of {ALGORITHMS}")
        if self.algorithm == "sha256d" and self.claimtrie is not None:
            raise WorkError("claimtrie is an LBRY field; a sha256d template cannot fix it")


def default_coinbase(extranonce_size: int, height: int, tag: bytes) -> tuple[bytes, bytes]:
    """A well-formed coinbase transaction split around the extranonce bytes.

    scriptSig = push(height, BIP34) || push(extranonce1||extranonce2) || push(tag); one
    OP_RETURN output. Every job gets a fresh ``tag`` so each job is distinct work.
    """
    height_push = b"\x03" + height.to_bytes(3, "little")
    tag_push = bytes([len(tag)]) + tag
    script_len = len(height_push) + 1 + extranonce_size + len(tag_push)
    if extranonce_size > 75 or script_len > 100:
        raise WorkError("extranonce or tag too long for a coinbase scriptSig")
    out_script = b"\x6a" + bytes([len(COINBASE_TAG)]) + COINBASE_TAG
    coinb1 = (struct.pack("<I", 1) + b"\x01" + bytes(32) + b"\xff\xff\xff\xff"
              + bytes([script_len]) + height_push + bytes([extranonce_size]))
    coinb2 = (tag_push + b"\xff\xff\xff\xff" + b"\x01" + struct.pack("<Q", COINBASE_VALUE_SAT)
              + bytes([len(out_script)]) + out_script + struct.pack("<I", 0))
    return coinb1, coinb2


class JobFactory:
    """Builds :class:`Job` records for one algorithm from templates plus defaults.

    The "current block" (prevhash, height, merkle branches, claimtrie) stays fixed until
    :meth:`new_block`; each built job gets the current time and a fresh coinbase tag.
    """

    def __init__(self, algorithm: str, extranonce_size: int, branches: int = 0,
                 seed: int | None = None, unix_time: Callable[[], float] = time.time) -> None:
        if algorithm not in ALGORITHMS:
            raise WorkError(f"unknown algorithm {algorithm!r}")
        if branches < 0:
            raise WorkError("branches must be >= 0")
        self.algorithm = algorithm
        self.extranonce_size = extranonce_size
        self.n_branches = branches
        self._unix_time = unix_time         # the pool clock's calendar time (virtual runs repeat)
        self._rng = random.Random(seed)
        self.new_block()

    def _bytes(self, n: int) -> bytes:
        return self._rng.getrandbits(8 * n).to_bytes(n, "little")

    def new_block(self) -> None:
        self.prevhash = self._bytes(32)
        self.height = self._rng.randrange(800_000, 8_000_000)
        self.branches = tuple(self._bytes(32) for _ in range(self.n_branches))
        self.claimtrie = self._bytes(32) if self.algorithm == "lbry" else None

    def build(self, job_id: str, template: JobTemplate | None = None, clean: bool = True) -> Job:
        t = template or JobTemplate()
        if t.coinb1 is None or t.coinb2 is None:
            c1, c2 = default_coinbase(self.extranonce_size, self.height,
                                      COINBASE_TAG[:-1] + b":" + self._bytes(8).hex().encode())
        claimtrie = None
        if self.algorithm == "lbry":
            claimtrie = t.claimtrie if t.claimtrie is not None else self.claimtrie
        return Job(
            job_id=job_id,
            prevhash=t.prevhash if t.prevhash is not None else self.prevhash,
            coinb1=t.coinb1 if t.coinb1 is not None else c1,
            coinb2=t.coinb2 if t.coinb2 is not None else c2,
            branches=t.branches if t.branches is not None else self.branches,
            version=t.version if t.version is not None else DEFAULT_VERSION,
            nbits=t.nbits if t.nbits is not None else DEFAULT_NBITS[self.algorithm],
            ntime=t.ntime if t.ntime is not None else int(self._unix_time()),
            clean_jobs=clean,
            claimtrie=claimtrie,
            algorithm=self.algorithm,
        )


@dataclass(slots=True, eq=False)
class SentJob:
    """A job as one session received it: the difficulty and extranonce1 then in force."""

    job: Job
    difficulty: float
    target: int
    block_target: int
    extranonce1: bytes
    sent_ns: int
    mids: dict = field(default_factory=dict)   # extranonce2 -> header bytes between version and ntime
    seen: set = field(default_factory=set)     # accepted shares' extranonce2|ntime|nonce|version


MIDS_PER_JOB = 4096
"""Cached merkle roots per job; a miner uses few extranonce2 values per job."""


class JobRegistry:
    """The jobs one session may still submit against (newest last, bounded)."""

    def __init__(self, max_jobs: int = 16) -> None:
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, SentJob] = OrderedDict()

    def add(self, sent: SentJob, clean: bool) -> None:
        """Remember a job; ``clean`` (as sent in its notify) makes older jobs stale."""
        if clean:
            self._jobs.clear()
        self._jobs[sent.job.job_id] = sent
        while len(self._jobs) > self.max_jobs:
            self._jobs.popitem(last=False)

    def get(self, job_id: str) -> SentJob | None:
        return self._jobs.get(job_id)

    def latest(self) -> SentJob | None:
        return next(reversed(self._jobs.values()), None)

    def __len__(self) -> int:
        return len(self._jobs)


@lru_cache(maxsize=256)
def share_target(difficulty: float, factor: float) -> int:
    """Cached :func:`difficulty_to_target` (exact but slow; broadcasts reuse a few values)."""
    return difficulty_to_target(difficulty, factor)


@lru_cache(maxsize=64)
def block_target(nbits: int) -> int:
    return nbits_to_target(nbits)


def make_sent_job(job: Job, difficulty: float, factor: float, extranonce1: bytes,
                  sent_ns: int) -> SentJob:
    return SentJob(job, difficulty, share_target(difficulty, factor), block_target(job.nbits),
                   extranonce1, sent_ns)
