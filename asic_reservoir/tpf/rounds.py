"""SHA-256 in numpy, vectorised over nonces, with the working state after any round.

The probability-filter study needs what an ASIC has after ``k`` rounds of a header's
hash, for many nonces at once, and it must agree with ``hashlib`` to the bit. Every
quantity here is a ``uint32`` array; header constants have shape ``(H, 1)`` and nonce
dependent values ``(H, M)``, so numpy broadcasting skips the work that does not depend on
the nonce (the first three rounds of the header's second block and the schedule words
W16, W17), as mining firmware does.

Round numbering over one nonce ("global rounds", 1..128):

* ``1..64``   -- rounds of the first hash's second block, started from the midstate
  (the header's first 64 bytes are compressed once per header, not per nonce);
* ``65..128`` -- rounds of the second hash (round ``k - 64`` of its only block).

State words are ordered ``a, b, c, d, e, f, g, h``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from asic_reservoir.drivers.stratum.work import WorkError

ROUNDS = 64
"""Rounds of one SHA-256 compression."""

ROUNDS_PER_NONCE = 2 * ROUNDS
"""Nonce-dependent rounds of SHA-256d on an 80-byte header (midstate amortised)."""

K = np.array([
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
], dtype=np.uint32)

IV = np.array([0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
               0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19], dtype=np.uint32)

_U = [np.uint32(i) for i in range(33)]


def _rotr(x: np.ndarray, n: int) -> np.ndarray:
    out = np.right_shift(x, _U[n])
    out |= np.left_shift(x, _U[32 - n])
    return out


def _big_sigma(x: np.ndarray, r1: int, r2: int, r3: int) -> np.ndarray:
    # rotr(x,r1) ^ rotr(x,r2) ^ rotr(x,r3) == rotr(x ^ rotr(x,r2-r1) ^ rotr(x,r3-r1), r1)
    y = _rotr(x, r2 - r1)
    y ^= x
    y ^= _rotr(x, r3 - r1)
    return _rotr(y, r1)


def _small_sigma(x: np.ndarray, r1: int, r2: int, s: int) -> np.ndarray:
    y = _rotr(x, r1)
    y ^= _rotr(x, r2)
    y ^= np.right_shift(x, _U[s])
    return y


def _as_u32(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != np.uint32:
        if arr.dtype.kind not in "ui" or (arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF)):
            raise WorkError("SHA-256 words must be uint32 values")
        arr = arr.astype(np.uint32)
    return arr if arr.ndim else arr.reshape(1)


@dataclass(frozen=True)
class RoundState:
    """Working variables after ``round`` rounds of one compression, and the schedule used.

    ``state`` has shape ``(..., 8)`` (a..h); ``schedule`` (when requested) has shape
    ``(..., round)`` (W_0..W_{round-1}); both broadcast to the batch shape.
    """

    round: int
    state: np.ndarray
    schedule: np.ndarray | None = None


def compress(state: Sequence, block: Sequence, observe: Iterable[int] = (), rounds: int = ROUNDS,
             schedule: bool = False) -> tuple[np.ndarray | None, dict[int, RoundState]]:
    """One SHA-256 compression over broadcastable batches of uint32 words.

    ``state`` is 8 chaining words and ``block`` 16 message words (each an array or
    scalar; shapes broadcast). Returns the chaining value after the feed-forward, shape
    ``(..., 8)`` (None if stopped early by ``rounds`` < 64), and a :class:`RoundState`
    for each round number in ``observe`` (0..64; 64 is the state before the
    feed-forward), with the schedule words if ``schedule``.
    """
    if len(state) != 8 or len(block) != 16:
        raise WorkError("compress needs 8 state words and 16 message words")
    wanted = sorted(set(int(k) for k in observe))
    if wanted and not 0 <= wanted[0] <= wanted[-1] <= rounds:
        raise WorkError(f"rounds to observe must lie in 0..{rounds}, got {wanted}")
    if not 0 <= rounds <= ROUNDS:
        raise WorkError(f"a compression has {ROUNDS} rounds, asked for {rounds}")
    init = [_as_u32(s) for s in state]
    w = [_as_u32(m) for m in block]
    regs = list(init)
    seen: dict[int, RoundState] = {}
    with np.errstate(over="ignore"):
        for t in range(rounds):
            if t in wanted:
                seen[t] = _snapshot(t, regs, w, schedule)
            if t >= 16:
                w.append(_small_sigma(w[t - 2], 17, 19, 10) + w[t - 7]
                         + _small_sigma(w[t - 15], 7, 18, 3) + w[t - 16])
            regs = _round(regs, w[t], K[t])
        if rounds in wanted:
            seen[rounds] = _snapshot(rounds, regs, w, schedule)
        out = _stack([s0 + s1 for s0, s1 in zip(init, regs)]) if rounds == ROUNDS else None
    return out, seen


def _round(regs: list[np.ndarray], w: np.ndarray, k: np.uint32) -> list[np.ndarray]:
    # Out of place on purpose: header constants (H, 1) and nonce-dependent (H, M) words
    # mix in the early rounds. Preallocated in-place rounds measured no faster (the
    # kernel is bound by element throughput, ~0.3 ns per element-op, not allocation).
    a, b, c, d, e, f, g, h = regs
    t1 = _big_sigma(e, 6, 11, 25) + (g ^ (e & (f ^ g))) + (h + (w + k))
    t2 = _big_sigma(a, 2, 13, 22) + ((a & b) | (c & (a | b)))
    return [t1 + t2, a, b, c, d + t1, e, f, g]


def _stack(words: Sequence[np.ndarray]) -> np.ndarray:
    shape = np.broadcast_shapes(*(x.shape for x in words))
    return np.stack([np.broadcast_to(x, shape) for x in words], axis=-1)


def _snapshot(t: int, regs: Sequence[np.ndarray], w: Sequence[np.ndarray],
              schedule: bool) -> RoundState:
    shape = np.broadcast_shapes(*(x.shape for x in regs), *(x.shape for x in w[:t]))
    state = np.stack([np.broadcast_to(x, shape) for x in regs], axis=-1)
    if not schedule:
        return RoundState(t, state)
    if t:
        words = np.stack([np.broadcast_to(x, shape) for x in w[:t]], axis=-1)
    else:
        words = np.zeros(shape + (0,), dtype=np.uint32)
    return RoundState(t, state, words)


def midstates(prefixes: Sequence[bytes]) -> np.ndarray:
    """Chaining values after the first 64 bytes of each header, shape ``(H, 8)``.

    Computed once per header for all its nonces, in one vectorised pass over headers.
    """
    if any(len(p) < 64 for p in prefixes):
        raise WorkError("a midstate needs at least 64 bytes of header")
    words = np.array([struct.unpack(">16I", p[:64]) for p in prefixes], dtype=np.uint32)
    out, _ = compress(IV, [words[:, i] for i in range(16)])
    return out.reshape(len(prefixes), 8)


def words_to_digest(words: np.ndarray) -> list[bytes]:
    """Raw digests (hashlib byte order) from chaining words of shape ``(n, 8)``."""
    be = np.ascontiguousarray(words, dtype=">u4").reshape(-1, 8)
    return [row.tobytes() for row in be]


def top_bits(words: np.ndarray) -> np.ndarray:
    """The 64 most significant bits of each digest read as a Bitcoin hash integer.

    A hash is compared as the little-endian integer of its raw digest, so its top 32
    bits are the byte-swapped last chaining word (H7) and the next 32 the swapped H6.
    """
    h7 = words[..., 7].astype(np.uint32).byteswap().astype(np.uint64)
    h6 = words[..., 6].astype(np.uint32).byteswap().astype(np.uint64)
    return (h7 << np.uint64(32)) | h6


def meets_bits(words: np.ndarray, bits: int) -> np.ndarray:
    """True where the digest has at least ``bits`` leading zero bits (hash < 2^(256-bits))."""
    if not 0 <= bits <= 64:
        raise WorkError(f"difficulty bits must lie in 0..64, got {bits}")
    if bits == 0:
        return np.ones(words.shape[:-1], dtype=bool)
    return top_bits(words) < np.uint64(1 << (64 - bits)) if bits < 64 else top_bits(words) == 0


@dataclass(frozen=True)
class HeaderTrace:
    """Round states of SHA-256d over a batch of headers x nonces.

    ``states[k]`` is a :class:`RoundState` flattened to ``(H*M, ...)`` for each requested
    global round ``k`` (1..128); ``digest`` holds the final double-hash chaining words
    ``(H*M, 8)``, header-major (all nonces of header 0 first), or None when the trace
    stopped after the last requested round.
    """

    states: dict[int, RoundState]
    digest: np.ndarray | None


def trace_headers(prefixes: Sequence[bytes], nonces, rounds: Iterable[int] = (),
                  schedule: bool = False, finish: bool = True) -> HeaderTrace:
    """SHA-256d of ``prefix + nonce (LE)`` for every prefix x nonce, keeping round states.

    ``prefixes`` are 76-byte header prefixes (``Job.header_prefix``); ``nonces`` is a
    uint32 array of shape ``(M,)`` (same nonces for every header) or ``(H, M)``. With
    ``schedule`` each state carries the message words used so far; with ``finish=False``
    hashing stops after the last requested round (no digest).
    """
    wanted = sorted(set(int(k) for k in rounds))
    if wanted and not 1 <= wanted[0] <= wanted[-1] <= ROUNDS_PER_NONCE:
        raise WorkError(f"rounds must lie in 1..{ROUNDS_PER_NONCE}, got {wanted}")
    if not finish and not wanted:
        raise WorkError("finish=False needs at least one round to stop at")
    if not prefixes:
        raise WorkError("trace_headers needs at least one header prefix")
    if any(len(p) != 76 for p in prefixes):
        raise WorkError("header prefixes must be 76 bytes (an 80-byte header without nonce)")
    nonces = _as_u32(nonces)
    if nonces.ndim == 1:
        nonces = nonces.reshape(1, -1)
    n_headers = len(prefixes)
    if nonces.ndim != 2 or nonces.shape[0] not in (1, n_headers):
        raise WorkError("nonces must have shape (M,) or (len(prefixes), M)")
    nonces = np.broadcast_to(nonces, (n_headers, nonces.shape[1]))
    mids = midstates(prefixes)                                   # (H, 8)
    tails = np.array([struct.unpack(">3I", p[64:76]) for p in prefixes], dtype=np.uint32)
    shape = nonces.shape
    # The nonce sits little-endian in the header and SHA-256 reads words big-endian.
    block = [tails[:, 0:1], tails[:, 1:2], tails[:, 2:3], nonces.byteswap(),
             0x80000000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 640]
    last = ROUNDS_PER_NONCE if finish else wanted[-1]
    first, seen1 = compress([mids[:, i:i + 1] for i in range(8)], block,
                            [k for k in wanted if k <= ROUNDS], min(last, ROUNDS), schedule)
    seen2: dict[int, RoundState] = {}
    final = None
    if last > ROUNDS:
        first = np.broadcast_to(first, shape + (8,))
        block2 = [first[..., i] for i in range(8)] + [0x80000000, 0, 0, 0, 0, 0, 0, 256]
        final, seen2 = compress(IV, block2, [k - ROUNDS for k in wanted if k > ROUNDS],
                                last - ROUNDS, schedule)
    states = {}
    for k in wanted:
        rs = seen1[k] if k <= ROUNDS else seen2[k - ROUNDS]
        states[k] = RoundState(k, _flat(rs.state, shape), _flat(rs.schedule, shape))
    return HeaderTrace(states, _flat(final, shape))


def _flat(x: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if x is None:
        return None
    return np.ascontiguousarray(np.broadcast_to(x, shape + x.shape[-1:])).reshape(-1, x.shape[-1])
