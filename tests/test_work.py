"""Work math: the reference vectors and property tests against naive implementations."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, strategies as st

from asic_reservoir.drivers.stratum import work
from asic_reservoir.drivers.stratum.work import (DIFF1_TARGET, Job, WorkError, build_header, difficulty_to_target,
                                 display_hash, lbry_pow, merkle_root, nbits_to_target,
                                 ripemd160, ripemd160_pure, roll_version, roll_version_xor,
                                 share_difficulty, sha256d, swap_words, target_to_difficulty,
                                 target_to_nbits, version_bits_allowed)

GENESIS_COINB1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104"
GENESIS_COINB2 = ("65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e"
                  "64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55482719"
                  "67f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7"
                  "ba0b8d578a4c702b6bf11d5fac00000000")


def genesis_job() -> Job:
    return Job.from_notify(["gen", "00" * 32, GENESIS_COINB1, GENESIS_COINB2, [], "00000001",
                            "1d00ffff", "495fab29", True])


def test_genesis_coinbase_txid_and_block_hash():
    job = genesis_job()
    en1, en2 = bytes.fromhex("45546865"), bytes.fromhex("2054696d")
    coinbase = work.build_coinbase(job.coinb1, en1, en2, job.coinb2)
    assert display_hash(sha256d(coinbase)) == \
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    header = job.header(en1, en2, 0x495FAB29, 0x7C2BAC1D)
    assert len(header) == 80
    digest = job.pow(header)
    assert display_hash(digest) == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    assert share_difficulty(digest) == pytest.approx(2536.426, abs=1e-3)
    assert work.hash_to_int(digest) <= nbits_to_target(job.nbits)  # a block candidate
    assert job.header_prefix(en1, en2, 0x495FAB29) == header[:76]


def test_lbry_pow_of_zero_header():
    # The reference lists this vector as a "raw digest"; it is in display order
    # (uint256::GetHex), i.e. the byte-reversed raw digest.
    assert display_hash(lbry_pow(bytes(112))) == \
        "9fc796675469cbae02e8df29d87dd024ba1f01e403fb316434ea963410aca4e3"


# The published RIPEMD-160 test vectors (Dobbertin, Bosselaers, Preneel, "RIPEMD-160: A
# strengthened version of RIPEMD", 1996, appendix), fixed here so that no test compares an
# implementation with itself when hashlib lacks RIPEMD-160 (OpenSSL 3 may not ship it).
RIPEMD160_VECTORS = [
    (b"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"),
    (b"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"),
    (b"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"),
    (b"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"),
    (b"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",   # 56 bytes: two blocks
     "12a053384a9c0c88e405a06c27dcf49ada62eb2b"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
     "b0e20b6e3116640286ed3a87a5713079b21f5189"),
    (b"1234567890" * 8, "9b752e45573d4b39f4dbd3323cab82bf63326bfb"),
]


@pytest.mark.parametrize("data, expected", RIPEMD160_VECTORS)
@pytest.mark.parametrize("impl", [ripemd160_pure, ripemd160], ids=["pure", "selected"])
def test_ripemd160_published_vectors(impl, data, expected):
    assert impl(data).hex() == expected


def _hashlib_has_ripemd160() -> bool:
    try:
        hashlib.new("ripemd160")
    except ValueError:
        return False
    return True


@pytest.mark.skipif(not _hashlib_has_ripemd160(), reason="hashlib has no RIPEMD-160 (OpenSSL 3 "
                    "without the legacy provider): the published vectors above still run")
@given(st.binary(max_size=300))
def test_pure_ripemd160_matches_openssl_on_any_length(data):
    assert ripemd160_pure(data) == hashlib.new("ripemd160", data).digest()


def test_lbry_pow_is_same_with_pure_ripemd(monkeypatch):
    monkeypatch.setattr(work, "ripemd160", ripemd160_pure)
    # the published zero-header vector (test_lbry_pow_of_zero_header), through the pure code
    assert display_hash(lbry_pow(bytes(112))) == \
        "9fc796675469cbae02e8df29d87dd024ba1f01e403fb316434ea963410aca4e3"


@given(st.binary(min_size=0, max_size=200), st.lists(st.binary(min_size=32, max_size=32), max_size=8))
def test_merkle_root_folds_like_naive(coinbase, branches):
    naive = hashlib.sha256(hashlib.sha256(coinbase).digest()).digest()
    for b in branches:
        naive = hashlib.sha256(hashlib.sha256(naive + b).digest()).digest()
    assert merkle_root(coinbase, branches) == naive


@given(st.binary(min_size=32, max_size=32).map(lambda b: b))
def test_swap_words_is_an_involution(data):
    assert swap_words(swap_words(data)) == data
    assert swap_words(data)[:4] == data[:4][::-1]


@given(st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_header_layout(version, prev, root, ntime, nbits, nonce):
    header = build_header(version, prev, root, ntime, nbits, nonce)
    assert struct.unpack("<I", header[:4])[0] == version
    assert header[4:36] == swap_words(prev)
    assert header[36:68] == root
    assert struct.unpack("<III", header[68:]) == (ntime, nbits, nonce)
    lbry = build_header(version, prev, root, ntime, nbits, nonce, claimtrie=prev)
    assert len(lbry) == 112 and lbry[68:100] == swap_words(prev) and lbry[100:] == header[68:]


@pytest.mark.parametrize("nbits, target", [
    (0x1D00FFFF, 0xFFFF << 208),
    (0x1B0404CB, 0x0404CB << (8 * 24)),
    (0x03123456, 0x123456),
])
def test_nbits_known_values(nbits, target):
    assert nbits_to_target(nbits) == target
    assert target_to_nbits(target) == nbits


@given(st.integers(1, 2**255))
def test_nbits_round_trip_loses_only_low_bits(target):
    back = nbits_to_target(target_to_nbits(target))
    assert back <= target
    assert target - back < 2 ** max(0, target.bit_length() - 15)


@given(st.floats(min_value=1e-9, max_value=1e12, allow_nan=False))
def test_difficulty_target_round_trip(diff):
    target = difficulty_to_target(diff)
    assert target_to_difficulty(target) == pytest.approx(diff, rel=1e-9)


def test_fractional_and_invalid_difficulties():
    assert difficulty_to_target(1) == DIFF1_TARGET
    assert difficulty_to_target(0.5) == 2 * DIFF1_TARGET
    assert difficulty_to_target(1, factor=256) == 256 * DIFF1_TARGET
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(WorkError):
            difficulty_to_target(bad)


def test_share_difficulty_is_diff1_over_hash():
    digest = (DIFF1_TARGET // 4).to_bytes(32, "little")
    assert share_difficulty(digest) == pytest.approx(4.0)
    assert share_difficulty(digest, factor=256) == pytest.approx(1024.0)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_version_rolling_forms_agree_when_job_bits_clear(job_version, rolled):
    mask = work.BIP320_MASK
    job_version &= ~mask & 0xFFFFFFFF
    rolled_version = roll_version(job_version, rolled, mask)
    # ESP-Miner submits rolled ^ job_version; the OR form and the XOR form then agree.
    xor_bits = rolled_version ^ job_version
    assert roll_version_xor(job_version, xor_bits) == rolled_version
    assert version_bits_allowed(rolled & mask, mask, job_version)
    assert version_bits_allowed(xor_bits, mask, job_version)


def test_version_bits_outside_mask_rejected():
    assert not version_bits_allowed(0x00000001, work.BIP320_MASK, 0x20000000)
    assert version_bits_allowed(0x00002000, work.BIP320_MASK, 0x20000000)


def test_notify_round_trip_and_bad_input():
    job = genesis_job()
    assert Job.from_notify(job.notify_params()) == job
    lbry = Job("j", bytes(32), b"\x01", b"\x02", claimtrie=bytes(range(32)), algorithm="lbry")
    assert Job.from_notify(lbry.notify_params(), "lbry") == lbry
    with pytest.raises(WorkError, match="params"):
        Job.from_notify(job.notify_params(), "lbry")
    params = job.notify_params()
    params[1] = "zz" * 32
    with pytest.raises(WorkError, match="prevhash"):
        Job.from_notify(params)
    with pytest.raises(WorkError):
        Job("j", bytes(32), b"", b"", algorithm="lbry")


@given(st.integers(1, 5000), st.data())
def test_chip_slices_partition_nonce_space(n_chips, data):
    chip = data.draw(st.integers(0, n_chips - 1))
    sl = work.nonce_slice(chip, n_chips)
    assert work.chip_of_nonce(sl.start, n_chips) == chip
    assert work.chip_of_nonce(sl.stop - 1, n_chips) == chip
    if chip + 1 < n_chips:
        assert work.nonce_slice(chip + 1, n_chips).start == sl.stop
