"""The validator's cached fast path against a naive recomputation with asic_reservoir.drivers.stratum.work:
for random jobs, masks, version bits and nonces the verdict and the achieved difficulty
must match a from-scratch header build (merkle root, header, proof of work, target)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from asic_reservoir.drivers.stratum.work import (Job, difficulty_to_target, hash_to_int, roll_version,
                                 roll_version_xor, share_difficulty, version_bits_allowed)
from asic_reservoir.drivers.stratum import DUPLICATE, LOW_DIFFICULTY, OTHER
from asic_reservoir.drivers.stratum.jobs import JobRegistry, make_sent_job
from asic_reservoir.drivers.stratum.validation import ShareValidator, resolve_version

u32 = st.integers(0, 0xFFFFFFFF)
hash32 = st.binary(min_size=32, max_size=32)


@st.composite
def cases(draw):
    algorithm = draw(st.sampled_from(["sha256d", "sha256d", "lbry"]))
    job = Job(job_id=draw(st.text("0123456789abcdef", min_size=1, max_size=8)),
              prevhash=draw(hash32), coinb1=draw(st.binary(max_size=60)),
              coinb2=draw(st.binary(max_size=60)), branches=tuple(draw(st.lists(hash32, max_size=4))),
              version=draw(u32), nbits=draw(st.sampled_from([0x1D00FFFF, 0x207FFFFF, 0x1A05B4C4])),
              ntime=draw(st.integers(0, 0xFFFFFFFF - 8000)),
              claimtrie=draw(hash32) if algorithm == "lbry" else None, algorithm=algorithm)
    mask = draw(st.sampled_from([0x1FFFE000, 0x00FFE000, 0, 0xFFFFFFFF]))
    bits_kind = draw(st.sampled_from(["none", "inside", "absolute", "any"]))
    if bits_kind == "none":
        bits = None
    elif bits_kind == "inside":
        bits = draw(u32) & mask
    elif bits_kind == "absolute":
        bits = (job.version & ~mask & 0xFFFFFFFF) | (draw(u32) & mask)
    else:
        bits = draw(u32)
    return dict(job=job, en1=draw(st.binary(min_size=4, max_size=4)),
                en2=draw(st.binary(min_size=4, max_size=4)),
                ntime=job.ntime + draw(st.integers(0, 7200)), nonce=draw(u32), bits=bits, mask=mask,
                xor=draw(st.booleans()))


@settings(max_examples=300)
@given(case=cases())
def test_verdict_matches_naive_recomputation(case):
    job, mask, bits = case["job"], case["mask"], case["bits"]
    factor = 256.0 if job.algorithm == "lbry" else 1.0
    difficulty = 2.0 ** -31 * factor          # about half of all hashes meet it
    registry = JobRegistry()
    registry.add(make_sent_job(job, difficulty, factor, case["en1"], 0), True)
    validator = ShareValidator(job.algorithm, factor, 4, 0, 7200)
    params = ["w", job.job_id, case["en2"].hex(), f"{case['ntime']:08x}", f"{case['nonce']:08x}"]
    if bits is not None:
        params.append(f"{bits:08x}")
    verdict = validator.check(params, True, {"w"}, registry, mask, case["xor"], difficulty)

    # naive reference, from the documented rule and the work module only
    if bits is None:
        allowed, version = True, job.version
    else:
        allowed = version_bits_allowed(bits, mask, job.version)
        if bits & ~mask & 0xFFFFFFFF:
            version = roll_version(job.version, bits, mask)
        elif case["xor"]:
            version = roll_version_xor(job.version, bits)
        else:
            version = roll_version(job.version, bits, mask)
    if not allowed:
        assert not verdict.accepted and verdict.code == OTHER and "mask" in verdict.reason
        return
    header = job.header(case["en1"], case["en2"], case["ntime"], case["nonce"], version)
    digest = job.pow(header)
    meets = hash_to_int(digest) <= difficulty_to_target(difficulty, factor)
    assert verdict.version == version
    assert verdict.share_difficulty == pytest.approx(share_difficulty(digest, factor), rel=1e-12)
    assert verdict.accepted == meets
    assert verdict.code == (None if meets else LOW_DIFFICULTY)
    if meets:
        again = validator.check(params, True, {"w"}, registry, mask, case["xor"], difficulty)
        assert again.code == DUPLICATE


@given(job_version=u32, bits=u32, mask=u32, xor=st.booleans())
def test_resolve_version_only_changes_bits_inside_the_mask(job_version, bits, mask, xor):
    version = resolve_version(job_version, bits, mask, xor)
    if version is None:
        assert not version_bits_allowed(bits, mask, job_version)
    else:
        assert (version ^ job_version) & ~mask & 0xFFFFFFFF == 0
