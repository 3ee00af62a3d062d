"""Share checks: every ``mining.submit`` is re-hashed and judged; nothing is taken on trust.

Order of checks (the first failure decides the code): parameter shape, hex and
extranonce2 size (20), subscribed (25), worker authorized on this session (24), job known
to this session (21, also for jobs dropped by a ``clean_jobs`` notify), ntime window
relative to the job's ntime (20), version bits inside the negotiated mask (20), duplicate
of an already accepted share (22), then the hash against the target of the difficulty
that was in force when the job was sent (23). Accepted shares whose hash is also <= the
job's nBits target are flagged as block candidates.

Version rolling (BIP310). A submit's sixth parameter ``version_bits`` is resolved
deterministically, hashing exactly one header:

* bits outside the mask are set -> the miner sent its whole rolled version ("absolute"
  form); allowed only if those outside bits equal the job version's, and the header
  version is ``(job & ~mask) | (bits & mask)``;
* otherwise the bits lie inside the mask, and the OR form ``(job & ~mask) | bits``
  (cgminer/bmminer, BIP310) and ESP-Miner's XOR form ``job ^ bits`` give the *same*
  version whenever ``job & mask == 0`` (every default job: version 0x20000000). Only for
  templates that set bits inside the mask do they differ; then the session's form
  decides: XOR for ESP-Miner (detected by its ``version-rolling.mask`` request of
  ``ffffffff`` or a ``bitaxe``/``esp-miner`` user agent), OR for everyone else,
  overridable with ``PoolConfig.version_form``.

A 5-parameter submit hashes the job's own version.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from asic_reservoir.drivers.stratum.work import DIFF1_TARGET, chip_of_nonce, lbry_pow

from .jobs import MIDS_PER_JOB, JobRegistry, SentJob
from .protocol import (
    DUPLICATE,
    JOB_NOT_FOUND,
    LOW_DIFFICULTY,
    NOT_SUBSCRIBED,
    OTHER,
    UNAUTHORIZED,
    StratumError,
)

REASON_OK = "accepted"
REASONS = {
    JOB_NOT_FOUND: "job not found",
    DUPLICATE: "duplicate share",
    LOW_DIFFICULTY: "low difficulty share",
    UNAUTHORIZED: "unauthorized worker",
    NOT_SUBSCRIBED: "not subscribed",
}

_sha256 = hashlib.sha256
_pack_version = struct.Struct("<I").pack
_pack_tail = struct.Struct("<III").pack
_unpack_u32x2 = struct.Struct(">II").unpack_from
_unpack_u32 = struct.Struct(">I").unpack_from


@dataclass(frozen=True)
class ShareEvent:
    """One submitted share and the pool's verdict, as streamed to subscribers."""

    recv_ns: int              # the pool clock's base_ns() when the line arrived
    clock_ns: int             # the same instant on the experiment clock
    session_id: str
    worker: str
    algorithm: str
    job_id: str
    extranonce2: str          # hex
    ntime: int
    nonce: int
    version_bits: int         # as submitted (0 for a 5-parameter submit)
    version: int              # header version that was hashed
    share_difficulty: float   # achieved; 0.0 if rejected before hashing (listener's scale:
                              # LBRY difficulties are 256x the Bitcoin scale by default)
    pool_difficulty: float    # difficulty in force when the job was sent (or now, if unknown)
    chip: int | None
    accepted: bool
    code: int | None          # None if accepted, else 20..25
    reason: str
    block_candidate: bool


@dataclass(slots=True)
class Verdict:
    """Result of :meth:`ShareValidator.check` before it becomes a :class:`ShareEvent`."""

    accepted: bool = False
    code: int | None = OTHER
    reason: str = ""
    worker: str = ""
    job_id: str = ""
    extranonce2: str = ""
    ntime: int = 0
    nonce: int = 0
    version_bits: int = 0
    version: int = 0
    share_difficulty: float = 0.0
    pool_difficulty: float = 0.0
    block_candidate: bool = False

    def error(self) -> StratumError | None:
        return None if self.accepted else StratumError(self.code or OTHER, self.reason)

    def event(self, recv_ns: int, clock_ns: int, session_id: str, algorithm: str,
              n_chips: int | None) -> ShareEvent:
        # Built without the generated frozen __init__ (one object.__setattr__ per field),
        # which cost several double-SHA-256s per share; the result is an ordinary,
        # equal-comparing, immutable ShareEvent.
        accepted = self.accepted
        event = _new(ShareEvent)
        _setattr(event, "__dict__", {
            "recv_ns": recv_ns, "clock_ns": clock_ns, "session_id": session_id,
            "worker": self.worker, "algorithm": algorithm, "job_id": self.job_id,
            "extranonce2": self.extranonce2, "ntime": self.ntime, "nonce": self.nonce,
            "version_bits": self.version_bits, "version": self.version,
            "share_difficulty": self.share_difficulty, "pool_difficulty": self.pool_difficulty,
            "chip": chip_of_nonce(self.nonce, n_chips) if n_chips else None,
            "accepted": accepted, "code": None if accepted else self.code,
            "reason": self.reason, "block_candidate": self.block_candidate})
        return event


_new = object.__new__
_setattr = object.__setattr__


def _reject(code: int, reason: str, pool_difficulty: float, worker: str = "", job_id: str = "",
            extranonce2: object = "", ntime: int = 0, nonce: int = 0, bits: int = 0,
            version: int = 0, achieved: float = 0.0) -> Verdict:
    return Verdict(False, code, reason, worker, job_id,
                   extranonce2[:64] if type(extranonce2) is str else "", ntime, nonce, bits,
                   version, achieved, pool_difficulty, False)


def resolve_version(job_version: int, bits: int, mask: int, xor_form: bool) -> int | None:
    """Header version for submitted ``bits`` (see module docstring); None if not allowed."""
    outside = bits & ~mask & 0xFFFFFFFF
    if outside:
        if outside != job_version & ~mask & 0xFFFFFFFF:
            return None
        return (job_version & ~mask & 0xFFFFFFFF) | (bits & mask)
    if xor_form:
        return (job_version ^ bits) & 0xFFFFFFFF
    return (job_version & ~mask & 0xFFFFFFFF) | bits


class ShareValidator:
    """Checks submits for one listener (algorithm, difficulty scale, size/ntime limits)."""

    def __init__(self, algorithm: str, factor: float, extranonce2_size: int,
                 ntime_past_s: int, ntime_future_s: int) -> None:
        self.algorithm = algorithm
        self.factor = factor
        self.extranonce2_size = extranonce2_size
        self.ntime_past_s = ntime_past_s
        self.ntime_future_s = ntime_future_s
        self._diff_scale = DIFF1_TARGET * factor

    def check(self, params: object, subscribed: bool, workers: set, jobs: JobRegistry,
              mask: int, xor_form: bool, current_difficulty: float) -> Verdict:
        # Hot path: locals only, one fromhex for all hex fields, one Verdict at the end;
        # failures return early through _reject with whatever was parsed so far.
        if type(params) is not list or not 5 <= len(params) <= 6:
            return _reject(OTHER, "mining.submit needs 5 or 6 params", current_difficulty)
        worker, job_id, en2_hex, ntime_hex, nonce_hex = params[:5]
        if type(worker) is not str or type(job_id) is not str:
            return _reject(OTHER, "worker and job_id must be strings", current_difficulty)
        size = self.extranonce2_size
        six = len(params) == 6
        fields = params[2:]
        try:
            raw = bytes.fromhex("".join(fields))
        except (TypeError, ValueError):
            raw = b""
        if (len(raw) != size + (12 if six else 8) or len(en2_hex) != 2 * size
                or len(ntime_hex) != 8 or len(nonce_hex) != 8 or (six and len(params[5]) != 8)):
            return _reject(OTHER, self._explain_hex(fields), current_difficulty, worker, job_id)
        en2 = raw[:size]
        ntime, nonce = _unpack_u32x2(raw, size)
        bits = _unpack_u32(raw, size + 8)[0] if six else 0
        if not subscribed:
            return _reject(NOT_SUBSCRIBED, REASONS[NOT_SUBSCRIBED], current_difficulty, worker,
                           job_id, en2_hex, ntime, nonce, bits)
        if worker not in workers:
            return _reject(UNAUTHORIZED, REASONS[UNAUTHORIZED], current_difficulty, worker,
                           job_id, en2_hex, ntime, nonce, bits)
        sent = jobs.get(job_id)
        if sent is None:
            return _reject(JOB_NOT_FOUND, REASONS[JOB_NOT_FOUND], current_difficulty, worker,
                           job_id, en2_hex, ntime, nonce, bits)
        job = sent.job
        pool_difficulty = sent.difficulty
        if not job.ntime - self.ntime_past_s <= ntime <= job.ntime + self.ntime_future_s:
            return _reject(OTHER, "ntime out of range", pool_difficulty, worker, job_id,
                           en2_hex, ntime, nonce, bits)
        version = job.version
        if six:
            version = resolve_version(version, bits, mask, xor_form)
            if version is None:
                return _reject(OTHER, "version bits outside the negotiated mask", pool_difficulty,
                               worker, job_id, en2_hex, ntime, nonce, bits)
        packed_version = _pack_version(version)
        key = raw[:size + 8] + packed_version    # extranonce2, ntime, nonce, version: compact
        if key in sent.seen:
            return _reject(DUPLICATE, REASONS[DUPLICATE], pool_difficulty, worker, job_id,
                           en2_hex, ntime, nonce, bits, version)
        mid = sent.mids.get(en2)
        if mid is None:
            mid = self._mid(sent, en2)
        header = packed_version + mid + _pack_tail(ntime, job.nbits, nonce)
        if self.algorithm == "sha256d":
            digest = _sha256(_sha256(header).digest()).digest()
        else:
            digest = lbry_pow(header)
        value = int.from_bytes(digest, "little")
        achieved = self._diff_scale / value if value else float("inf")
        if value > sent.target:
            return _reject(LOW_DIFFICULTY, REASONS[LOW_DIFFICULTY], pool_difficulty, worker,
                           job_id, en2_hex, ntime, nonce, bits, version, achieved)
        sent.seen.add(key)
        return Verdict(True, None, REASON_OK, worker, job_id, en2_hex, ntime, nonce, bits,
                       version, achieved, pool_difficulty, value <= sent.block_target)

    def _explain_hex(self, fields: list) -> str:
        """The precise complaint about malformed hex fields (slow path)."""
        size = self.extranonce2_size
        for value, name, n in zip(fields, ("extranonce2", "ntime", "nonce", "version_bits"),
                                  (size, 4, 4, 4)):
            if type(value) is not str:
                return f"{name} must be a hex string"
            if len(value) != 2 * n:
                return f"{name} must be {n} bytes ({2 * n} hex digits)"
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raw = b""
            if len(raw) != n:
                return f"{name} is not valid hex"
        return "malformed share"

    @staticmethod
    def _mid(sent: SentJob, en2: bytes) -> bytes:
        """Header bytes between version and ntime (prevhash, root[, claimtrie]), cached."""
        if len(sent.mids) >= MIDS_PER_JOB:
            sent.mids.clear()
        header = sent.job.header(sent.extranonce1, en2, 0, 0, version=0)
        mid = sent.mids[en2] = header[4:-12]
        return mid

