"""The numpy SHA-256 kernel against hashlib and an independent round-by-round reference."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from asic_reservoir.tpf.rounds import (IV, K, compress, meets_bits, midstates, top_bits, trace_headers,
                                   words_to_digest)
from asic_reservoir.drivers.stratum.work import Job, WorkError, hash_to_int, sha256d

M32 = 0xFFFFFFFF


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & M32


def ref_compress(state: list[int], block: bytes) -> tuple[list[int], list[list[int]], list[int]]:
    """Textbook FIPS 180-4 compression: (output, state after each round 0..64, schedule)."""
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = _ror(w[t - 15], 7) ^ _ror(w[t - 15], 18) ^ (w[t - 15] >> 3)
        s1 = _ror(w[t - 2], 17) ^ _ror(w[t - 2], 19) ^ (w[t - 2] >> 10)
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & M32)
    a, b, c, d, e, f, g, h = state
    states = [[a, b, c, d, e, f, g, h]]
    for t in range(64):
        t1 = (h + (_ror(e, 6) ^ _ror(e, 11) ^ _ror(e, 25)) + ((e & f) ^ (~e & g)) + int(K[t]) + w[t]) & M32
        t2 = ((_ror(a, 2) ^ _ror(a, 13) ^ _ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & M32
        a, b, c, d, e, f, g, h = (t1 + t2) & M32, a, b, c, (d + t1) & M32, e, f, g
        states.append([a, b, c, d, e, f, g, h])
    return [(x + y) & M32 for x, y in zip(state, states[-1])], states, w


def ref_trace(header: bytes) -> tuple[list[list[int]], list[int], list[int]]:
    """Round states of both nonce-dependent compressions of SHA-256d(header)."""
    mid, _, _ = ref_compress([int(v) for v in IV], header[:64])
    tail = header[64:] + b"\x80" + bytes(39) + struct.pack(">Q", 640)
    first, states1, w1 = ref_compress(mid, tail)
    block2 = struct.pack(">8I", *first) + b"\x80" + bytes(23) + struct.pack(">Q", 256)
    final, states2, w2 = ref_compress([int(v) for v in IV], block2)
    return states1 + states2[1:], final, w1 + w2


def test_reference_matches_hashlib():
    header = bytes(range(80))
    _, final, _ = ref_trace(header)
    assert struct.pack(">8I", *final) == sha256d(header)


def test_single_block_compress_matches_hashlib():
    msg = b"abc"
    block = msg + b"\x80" + bytes(64 - len(msg) - 9) + struct.pack(">Q", 8 * len(msg))
    out, _ = compress(IV, list(struct.unpack(">16I", block)))
    assert words_to_digest(out.reshape(1, 8))[0] == hashlib.sha256(msg).digest()


@settings(max_examples=25)
@given(prefix=st.binary(min_size=76, max_size=76),
       nonces=st.lists(st.integers(0, M32), min_size=1, max_size=20))
def test_trace_digest_matches_hashlib(prefix, nonces):
    trace = trace_headers([prefix], np.array(nonces, dtype=np.uint32))
    expected = [sha256d(prefix + n.to_bytes(4, "little")) for n in nonces]
    assert words_to_digest(trace.digest) == expected


@settings(max_examples=10)
@given(prefix=st.binary(min_size=76, max_size=76), nonce=st.integers(0, M32),
       rounds=st.lists(st.integers(1, 128), min_size=1, max_size=6))
def test_round_states_match_reference(prefix, nonce, rounds):
    trace = trace_headers([prefix], np.array([nonce], dtype=np.uint32), rounds, schedule=True)
    states, _, schedule = ref_trace(prefix + nonce.to_bytes(4, "little"))
    for k in rounds:
        assert trace.states[k].state[0].tolist() == states[k]
        offset = 0 if k <= 64 else 64
        assert trace.states[k].schedule[0].tolist() == schedule[offset:k]


def test_many_headers_and_nonces_header_major():
    job = Job("1", bytes(range(32)), b"\x01" * 40, b"\x02" * 40, (bytes(32),))
    prefixes = [job.header_prefix(b"\x00\x00\x00\x01", i.to_bytes(4, "big"), 1_700_000_000)
                for i in range(3)]
    nonces = np.array([[0, 1, 0xFFFFFFFF], [7, 8, 9], [2**31, 5, 6]], dtype=np.uint32)
    trace = trace_headers(prefixes, nonces, [4, 64, 70])
    digests = words_to_digest(trace.digest)
    for h in range(3):
        for j in range(3):
            header = prefixes[h] + int(nonces[h, j]).to_bytes(4, "little")
            assert digests[3 * h + j] == job.pow(header)
            states, _, _ = ref_trace(header)
            assert trace.states[64].state[3 * h + j].tolist() == states[64]
    # The first three rounds do not touch the nonce: same state for every nonce of a header.
    early = trace_headers(prefixes, nonces, [3]).states[3].state.reshape(3, 3, 8)
    assert (early == early[:, :1]).all()


def test_midstates_are_first_block_compressions():
    prefixes = [bytes(range(100, 176)), bytes(76), bytes([255]) * 80]
    expected = [ref_compress([int(v) for v in IV], p[:64])[0] for p in prefixes]
    assert midstates(prefixes).tolist() == expected


@settings(max_examples=40)
@given(prefix=st.binary(min_size=76, max_size=76), nonce=st.integers(0, M32),
       bits=st.integers(0, 64))
def test_meets_bits_is_hash_below_target(prefix, nonce, bits):
    trace = trace_headers([prefix], np.array([nonce], dtype=np.uint32))
    value = hash_to_int(sha256d(prefix + nonce.to_bytes(4, "little")))
    assert int(top_bits(trace.digest)[0]) == value >> 192
    assert bool(meets_bits(trace.digest, bits)[0]) == (value < 1 << (256 - bits))


def test_meets_bits_on_a_planted_small_hash():
    words = np.zeros((2, 8), dtype=np.uint32)
    words[0, 7] = 0x00010000   # swapped: top 32 bits 0x00000100 -> 23 leading zeros
    words[1, 7] = 0x00000080   # swapped: 0x80000000 -> 0 leading zeros
    assert meets_bits(words, 23).tolist() == [True, False]
    assert meets_bits(words, 24).tolist() == [False, False]


@pytest.mark.parametrize("bad", [
    lambda: trace_headers([bytes(75)], np.zeros(1, dtype=np.uint32)),
    lambda: trace_headers([], np.zeros(1, dtype=np.uint32)),
    lambda: trace_headers([bytes(76)], np.zeros(1, dtype=np.uint32), [0]),
    lambda: trace_headers([bytes(76)], np.zeros(1, dtype=np.uint32), [129]),
    lambda: trace_headers([bytes(76)], np.array([-1])),
    lambda: trace_headers([bytes(76)] * 2, np.zeros((3, 4), dtype=np.uint32)),
    lambda: compress(IV, [0] * 15),
    lambda: meets_bits(np.zeros((1, 8), dtype=np.uint32), 65),
    lambda: midstates([bytes(64), bytes(10)]),
])
def test_bad_input_raises_work_error(bad):
    with pytest.raises(WorkError):
        bad()


def test_stopping_early_gives_the_same_states_without_a_digest():
    prefixes = [bytes(range(76)), bytes(range(1, 77))]
    nonces = np.arange(50, dtype=np.uint32)
    full = trace_headers(prefixes, nonces, [5, 70])
    early = trace_headers(prefixes, nonces, [5], finish=False)
    assert early.digest is None and early.states[5].schedule is None
    assert np.array_equal(early.states[5].state, full.states[5].state)
    stopped = trace_headers(prefixes, nonces, [5, 70], finish=False)
    assert np.array_equal(stopped.states[70].state, full.states[70].state)
    with pytest.raises(WorkError):
        trace_headers(prefixes, nonces, finish=False)


def test_top_hash_word_is_fixed_after_round_61_of_the_second_hash():
    # What makes round 125 the study's positive control and the exact early reject valid.
    prefixes = [bytes(range(76))]
    nonces = np.arange(300, dtype=np.uint32)
    trace = trace_headers(prefixes, nonces, [125, 126])
    e61 = trace.states[125].state[:, 4]
    e62 = trace.states[126].state[:, 4]
    with np.errstate(over="ignore"):
        assert np.array_equal(trace.digest[:, 7], e61 + IV[7])
        assert np.array_equal(trace.digest[:, 6], e62 + IV[6])
