"""Pool behaviour over real TCP sockets on 127.0.0.1: handshakes as ESP-Miner and
bmminer/cgminer speak them, genuine shares found by brute force, every rejection code
from a forged share, version-rolling forms, difficulty timing, jobs and the event stream."""

from __future__ import annotations

import asyncio

import pytest
from stratum_client import StratumTestClient

from asic_reservoir.drivers.stratum.work import (
    DIFF1_TARGET,
    Job,
    build_coinbase,
    chip_of_nonce,
    hash_to_int,
    lbry_pow,
    sha256d,
)
from asic_reservoir.drivers.stratum import (
    DUPLICATE,
    JOB_NOT_FOUND,
    LOW_DIFFICULTY,
    NOT_SUBSCRIBED,
    OTHER,
    UNAUTHORIZED,
    JobTemplate,
    Pool,
    PoolConfig,
    ShareEvent,
)
from tests.support import wait_until

DIFF = 2.0 ** -20   # ~4,000 hashes per share
HOST = "127.0.0.1"


@pytest.fixture
async def pool():
    p = Pool(PoolConfig(host=HOST, difficulty=DIFF, lbry_port=0, refresh_s=None, seed=7))
    await p.start()
    yield p
    await p.stop()


async def client(pool: Pool, flavor: str = "bmminer", worker: str = "w1", algorithm: str = "sha256d",
                 **kw) -> StratumTestClient:
    port = pool.lbry_port if algorithm == "lbry" else pool.port
    c = await StratumTestClient(HOST, port, algorithm=algorithm, flavor=flavor).connect()
    await c.handshake(worker=worker, **kw)
    return c


def error_code(reply: dict) -> int | None:
    return None if reply["error"] is None else reply["error"][0]


# ---------------------------------------------------------------- handshakes and accepts

@pytest.mark.parametrize("flavor", ["esp-miner", "bmminer"])
async def test_handshake_and_genuine_shares_are_accepted(pool, flavor):
    events = pool.subscribe()
    c = await client(pool, flavor, worker=f"rig.{flavor}")
    try:
        info = await pool.wait_for_session(worker=f"rig.{flavor}", timeout=5)
        assert info.subscribed and info.authorized and info.algorithm == "sha256d"
        assert info.version_mask == 0x1FFFE000 == c.version_mask
        assert c.difficulty == DIFF and c.extranonce2_size == 4 and len(c.extranonce1) == 4
        shares = [c.solve(), c.solve(roll=0x0ABCE000), c.solve(five_params=True)]
        for share in shares:
            reply = await c.submit(share)
            assert reply["result"] is True and reply["error"] is None
        got = [events.get_nowait() for _ in shares]
        for share, ev in zip(shares, got):
            assert isinstance(ev, ShareEvent) and ev.accepted and ev.code is None
            assert (ev.nonce, ev.version, ev.job_id) == (share.nonce, share.version, share.job_id)
            assert ev.share_difficulty == pytest.approx(DIFF1_TARGET / hash_to_int(share.digest))
            assert ev.share_difficulty >= DIFF == ev.pool_difficulty
            assert ev.worker == f"rig.{flavor}" and ev.session_id == info.session_id
        assert got[1].version == 0x20000000 | 0x0ABCE000
        assert pool.totals()["accepted"] == 3
    finally:
        await c.close()


async def test_configure_replies_mask_intersection_and_unknown_extensions(pool):
    async with StratumTestClient(HOST, pool.port) as c:
        reply = await c.call("mining.configure", [
            ["version-rolling", "minimum-difficulty", "subscribe-extranonce", "made-up"],
            {"version-rolling.mask": "00fff000", "minimum-difficulty.value": 2}])
        assert reply["result"] == {"version-rolling": True, "version-rolling.mask": "00ffe000",
                                   "minimum-difficulty": True, "subscribe-extranonce": True,
                                   "made-up": False}
        reply = await c.call("mining.configure", [["version-rolling"], {
            "version-rolling.mask": "00000001", "version-rolling.min-bit-count": 2}])
        assert reply["result"] == {"version-rolling": False}
        reply = await c.call("mining.subscribe", ["cgminer/4.11"])
        (subs, en1, size) = reply["result"]
        sid = subs[0][1]
        assert subs == [["mining.set_difficulty", sid], ["mining.notify", sid]]
        assert len(bytes.fromhex(en1)) == 4 and size == 4


async def test_extranonce1_is_unique_per_session(pool):
    clients = [await client(pool, worker=f"w{i}") for i in range(6)]
    try:
        en1s = {c.extranonce1 for c in clients}
        assert len(en1s) == 6
        assert {i.extranonce1 for i in pool.sessions.values()} == {e.hex() for e in en1s}
    finally:
        for c in clients:
            await c.close()


async def test_default_job_coinbase_carries_extranonces_and_branches():
    async with Pool(PoolConfig(host=HOST, difficulty=DIFF, branches=3, extranonce2_size=6,
                               refresh_s=None)) as p:
        c = await client(p)
        try:
            job = c.job.job
            assert len(job.branches) == 3 and c.extranonce2_size == 6
            en2 = bytes(range(6))
            coinbase = build_coinbase(job.coinb1, c.extranonce1, en2, job.coinb2)
            # scriptSig length byte covers height push + extranonce push + tag push
            script_len = coinbase[41]
            script = coinbase[42:42 + script_len]
            assert (c.extranonce1 + en2) in script and script[4] == 10
            assert coinbase[42 + script_len:46 + script_len] == b"\xff\xff\xff\xff"
            assert (await c.submit(c.solve(extranonce2=en2)))["result"] is True
        finally:
            await c.close()


async def test_lbry_listener_sends_ten_param_notify_and_accepts_genuine_lbry_share(pool):
    events = pool.subscribe()
    c = await client(pool, algorithm="lbry", worker="lbbox")
    try:
        notify = [n for n in c.notifications if n["method"] == "mining.notify"][-1]
        assert len(notify["params"]) == 10
        job = c.job.job
        assert job.claimtrie is not None and len(job.claimtrie) == 32
        share = c.solve()
        assert (await c.submit(share))["result"] is True
        ev = events.get_nowait()
        assert ev.algorithm == "lbry" and ev.accepted
        header = job.header(c.extranonce1, bytes.fromhex(share.extranonce2), share.ntime, share.nonce,
                            share.version)
        assert len(header) == 112
        assert ev.share_difficulty == pytest.approx(256 * DIFF1_TARGET / hash_to_int(lbry_pow(header)))
        # the LBRY scale: the same hash judged on the Bitcoin scale would be 256x lower
        low = c.solve(want_low=True)
        reply = await c.submit(low)
        assert error_code(reply) == LOW_DIFFICULTY
    finally:
        await c.close()


# ---------------------------------------------------------------- rejection codes

async def test_every_rejection_code(pool):
    events = pool.subscribe()
    c = await client(pool, worker="good")
    try:
        share = c.solve()
        assert (await c.submit(share))["result"] is True
        # 22 duplicate
        assert error_code(await c.submit(share)) == DUPLICATE
        # 23 low difficulty
        assert error_code(await c.submit(c.solve(want_low=True))) == LOW_DIFFICULTY
        # 21 unknown job
        forged = c.solve()
        forged.job_id = "deadbeef"
        assert error_code(await c.submit(forged)) == JOB_NOT_FOUND
        # 24 worker not authorized on this session
        assert error_code(await c.submit(c.solve(), worker="someone.else")) == UNAUTHORIZED
        # 20: forged nonce (hash no longer meets target is 23; a malformed one is 20)
        bad = share.params("good")
        bad[4] = "xyz12345"
        assert error_code(await c.call("mining.submit", bad)) == OTHER
        bad = share.params("good")
        bad[2] = "00"   # wrong extranonce2 size
        reply = await c.call("mining.submit", bad)
        assert error_code(reply) == OTHER and "extranonce2" in reply["error"][1]
        assert error_code(await c.call("mining.submit", ["good", share.job_id])) == OTHER
    finally:
        await c.close()
    # 25 not subscribed: authorize only, then submit
    async with StratumTestClient(HOST, pool.port) as raw:
        assert (await raw.call("mining.authorize", ["good", "x"]))["result"] is True
        reply = await raw.call("mining.submit", ["good", "1", "00000000", "00000000", "00000000"])
        assert error_code(reply) == NOT_SUBSCRIBED
    # 24 not authorized: subscribe only
    async with StratumTestClient(HOST, pool.port) as raw:
        await raw.call("mining.subscribe", ["x"])
        reply = await raw.call("mining.submit", ["good", "1", "00000000", "00000000", "00000000"])
        assert error_code(reply) == UNAUTHORIZED
    codes = []
    while not events.empty():
        codes.append(events.get_nowait().code)
    assert codes == [None, DUPLICATE, LOW_DIFFICULTY, JOB_NOT_FOUND, UNAUTHORIZED, OTHER, OTHER,
                     OTHER, NOT_SUBSCRIBED, UNAUTHORIZED]
    totals = pool.totals()
    assert totals["accepted"] == 1 and totals["rejected"] == 9
    assert totals["rejected_by_code"] == {"20": 3, "21": 1, "22": 1, "23": 1, "24": 2, "25": 1}


async def test_ntime_window_and_version_bits_outside_mask(pool):
    c = await client(pool)
    try:
        job = c.job.job
        share = c.solve()
        early = share.params(c.worker)
        early[3] = f"{job.ntime - 1:08x}"
        reply = await c.call("mining.submit", early)
        assert error_code(reply) == OTHER and "ntime" in reply["error"][1]
        late = share.params(c.worker)
        late[3] = f"{job.ntime + 7201:08x}"
        assert "ntime" in (await c.call("mining.submit", late))["error"][1]
        outside = share.params(c.worker)
        outside[5] = "00000001"
        reply = await c.call("mining.submit", outside)
        assert error_code(reply) == OTHER and "mask" in reply["error"][1]
        # a rolled ntime inside the window is hashed (and therefore accepted if it meets target)
        assert (await c.submit(share))["result"] is True
    finally:
        await c.close()


async def test_authorize_allowlist_and_password():
    cfg = PoolConfig(host=HOST, difficulty=DIFF, workers=["alice"], password="s3cret", refresh_s=None)
    async with Pool(cfg) as p, StratumTestClient(HOST, p.port) as c:
        await c.call("mining.subscribe", [])
        for worker, password in (("bob", "s3cret"), ("alice", "wrong")):
            reply = await c.call("mining.authorize", [worker, password])
            assert reply["result"] is False and error_code(reply) == UNAUTHORIZED
        assert not next(iter(p.sessions.values())).authorized
        assert (await c.call("mining.authorize", ["alice", "s3cret"]))["result"] is True


# ---------------------------------------------------------------- version rolling forms

async def test_version_forms_when_job_version_has_bits_inside_mask(pool):
    """With job version bits inside the mask, OR and XOR forms differ; each miner's own
    form is accepted and the other form of the same header is not."""
    await pool.push_job(JobTemplate(version=0x20006000))
    esp = await client(pool, "esp-miner", worker="esp")
    bm = await client(pool, "bmminer", worker="bm")
    try:
        for c in (esp, bm):
            assert c.job.job.version == 0x20006000
            share = c.solve(roll=0x00012000)
            assert (await c.submit(share))["result"] is True
        # zero bits: OR form clears the in-mask job bits, XOR form keeps the job version
        assert bm.solve(roll=0).version == 0x20000000 and esp.solve(roll=0).version == 0x20006000
        for c in (esp, bm):
            assert (await c.submit(c.solve(roll=0)))["result"] is True
        # ESP-Miner XOR: bits 0x00012000 flip bit 13 off -> version 0x20014000
        assert esp.solve(roll=0x00012000).version == 0x20014000
        assert bm.solve(roll=0x00012000).version == 0x20012000
        # bmminer sending the whole rolled version ("absolute" form) is also accepted
        assert (await bm.submit(bm.solve(roll=0x00ff0000, absolute=True)))["result"] is True
        # an OR-form submission on the XOR session names a different header: it misses
        esp.flavor = "bmminer"
        or_share = esp.solve(roll=0x00012000)
        esp.flavor = "esp-miner"
        assert error_code(await esp.submit(or_share)) == LOW_DIFFICULTY
    finally:
        await esp.close()
        await bm.close()


async def test_version_form_override_config():
    cfg = PoolConfig(host=HOST, difficulty=DIFF, refresh_s=None, version_form="or")
    async with Pool(cfg) as p:
        await p.push_job(JobTemplate(version=0x20006000))
        esp = await client(p, "esp-miner", worker="esp")
        try:
            share = esp.solve(roll=0x00012000)   # XOR form: pool configured for OR -> different header
            reply = await esp.submit(share)
            assert error_code(reply) == LOW_DIFFICULTY
        finally:
            await esp.close()


# ---------------------------------------------------------------- difficulty and jobs

async def test_difficulty_applies_from_next_job_and_old_jobs_keep_theirs(pool):
    c = await client(pool, worker="d")
    try:
        old = c.job
        info = await pool.wait_for_session(worker="d")
        await pool.set_difficulty(DIFF * 8, session=info.session_id, clean=False)
        new = await c.next_job()
        assert new.job.job_id != old.job.job_id and new.difficulty == DIFF * 8
        # a share good enough for the old job's difficulty only: accepted on the old job ...
        weak = c.solve(old)
        while DIFF1_TARGET / hash_to_int(weak.digest) >= DIFF * 8:
            weak = c.solve(old)
        assert (await c.submit(weak))["result"] is True
        # ... but the same quality on the new job is low difficulty
        weak_new = c.solve(new, difficulty=DIFF)
        while DIFF1_TARGET / hash_to_int(weak_new.digest) >= DIFF * 8:
            weak_new = c.solve(new, difficulty=DIFF)
        assert error_code(await c.submit(weak_new)) == LOW_DIFFICULTY
        assert (await c.submit(c.solve(new)))["result"] is True
        # difficulty notification preceded the notify
        methods = [n["method"] for n in c.notifications]
        assert methods[-2:] == ["mining.set_difficulty", "mining.notify"]
    finally:
        await c.close()


async def test_clean_job_makes_old_jobs_stale_and_non_clean_keeps_them(pool):
    c = await client(pool)
    try:
        first = c.job
        await pool.push_job(clean=False)
        second = await c.next_job()
        assert (await c.submit(c.solve(first)))["result"] is True
        await pool.push_job(JobTemplate(prevhash="11" * 32), clean=True)
        third = await c.next_job()
        assert third.job.prevhash == bytes.fromhex("11" * 32)
        assert pool.current_job("sha256d").notify_params()[:7] == third.job.notify_params()[:7]
        assert error_code(await c.submit(c.solve(second))) == JOB_NOT_FOUND
        assert (await c.submit(c.solve(third)))["result"] is True
    finally:
        await c.close()


async def test_push_job_template_fields_and_per_worker_targeting(pool):
    a = await client(pool, worker="a")
    b = await client(pool, worker="b")
    try:
        branch = bytes(range(32))
        template = JobTemplate(prevhash="ab" * 32, branches=[branch], version=0x20000000,
                               nbits=0x1D00FFFF, ntime=0x495FAB29)
        job_id = await pool.push_job(template, worker="a")
        ja = await a.next_job()
        assert ja.job.job_id == job_id and ja.job.branches == (branch,)
        assert (ja.job.prevhash.hex(), ja.job.nbits, ja.job.ntime) == ("ab" * 32, 0x1D00FFFF, 0x495FAB29)
        assert b.job.job.prevhash != ja.job.prevhash
        assert (await a.submit(a.solve()))["result"] is True
        # the worker's template follows it to a new session
        a2 = await client(pool, worker="a")
        assert a2.job.job.prevhash.hex() == "ab" * 32
        await a2.close()
        # session-targeted difficulty only touches that session
        info_b = next(i for i in pool.sessions.values() if i.worker == "b")
        await pool.set_difficulty(DIFF * 2, session=info_b)
        await b.next_job()
        assert b.difficulty == DIFF * 2 and a.difficulty == DIFF
    finally:
        await a.close()
        await b.close()


async def test_block_candidates_are_flagged(pool):
    events = pool.subscribe()
    await pool.push_job(JobTemplate(nbits=0x207FFFFF))   # regtest target: any share is a block
    c = await client(pool)
    try:
        assert (await c.submit(c.solve()))["result"] is True
        ev = events.get_nowait()
        assert ev.block_candidate and pool.totals()["block_candidates"] == 1
        await pool.push_job(JobTemplate(nbits=0x1D00FFFF))
        await c.next_job()
        assert (await c.submit(c.solve()))["result"] is True
        assert not events.get_nowait().block_candidate
    finally:
        await c.close()


async def test_chip_index_from_nonce(pool):
    events = pool.subscribe()
    pool.set_chip_count("s9", 189)
    c = await client(pool, worker="s9")
    try:
        share = c.solve()
        await c.submit(share)
        assert events.get_nowait().chip == chip_of_nonce(share.nonce, 189)
    finally:
        await c.close()


async def test_refresh_sends_non_clean_jobs_and_old_jobs_stay_valid():
    async with Pool(PoolConfig(host=HOST, difficulty=DIFF, refresh_s=0.2)) as p:
        c = await client(p)
        try:
            first = c.job
            refreshed = await c.next_job(timeout=3)
            assert refreshed.job.job_id != first.job.job_id
            assert refreshed.job.clean_jobs is False
            assert refreshed.job.prevhash == first.job.prevhash
            assert refreshed.job.coinb2 != first.job.coinb2      # distinct work
            assert (await c.submit(c.solve(first)))["result"] is True
        finally:
            await c.close()


async def test_suggest_difficulty_honored_only_when_configured(pool):
    c = await client(pool, "esp-miner", worker="esp", suggest=DIFF * 4)
    try:
        info = await pool.wait_for_session(worker="esp")
        assert info.suggested_difficulty == DIFF * 4 and info.difficulty == DIFF
    finally:
        await c.close()
    cfg = PoolConfig(host=HOST, difficulty=DIFF, refresh_s=None, honor_suggested_difficulty=True)
    async with Pool(cfg) as p:
        c = await client(p, "esp-miner", worker="esp", suggest=DIFF * 4)
        try:
            await wait_until(lambda: c.difficulty == DIFF * 4 and c.job.difficulty == DIFF * 4)
            info = await p.wait_for_session(worker="esp")
            assert info.difficulty == DIFF * 4
        finally:
            await c.close()


# ---------------------------------------------------------------- server-side messages

async def test_set_extranonce_version_mask_reconnect_and_ping(pool):
    c = await client(pool, worker="x")
    try:
        info = await pool.wait_for_session(worker="x")
        assert await pool.set_extranonce(info) == 0          # not subscribed to extranonce
        await c.call("mining.extranonce.subscribe", [])
        old_en1, old_job = c.extranonce1, c.job
        assert await pool.set_extranonce(info) == 1
        await c.next_job()
        assert c.extranonce1 != old_en1 and info.extranonce1 == c.extranonce1.hex()
        assert (await c.submit(c.solve()))["result"] is True
        # a share for the pre-change job (cleaned) is stale
        assert error_code(await c.submit(c.solve(old_job))) == JOB_NOT_FOUND
        assert await pool.set_version_mask(0x00FF0000, session=info) == 1
        await wait_until(lambda: c.version_mask == 0x00FF0000)
        assert c.version_mask == 0x00FF0000 and info.version_mask == 0x00FF0000
        share = c.solve(roll=0x1F000000)   # bits outside the new mask are cut by the client...
        share.version_bits = 0x1F000000    # ...so forge them back in
        assert error_code(await c.submit(share)) == OTHER
        assert 0 < await pool.ping(info, timeout=2) < 2
        assert await pool.reconnect(info, host="127.0.0.1", port=1, wait_s=5) == 1
        await wait_until(lambda: c.notifications[-1]["method"] == "client.reconnect")
        assert c.notifications[-1] == {"id": None, "method": "client.reconnect",
                                       "params": ["127.0.0.1", 1, 5]}
    finally:
        await c.close()


# ---------------------------------------------------------------- event stream and sessions

async def test_every_subscriber_gets_every_event_and_slow_ones_drop(pool):
    fast = pool.subscribe()
    slow = pool.subscribe(maxsize=1)
    c = await client(pool)
    try:
        for _ in range(3):
            assert (await c.submit(c.solve()))["result"] is True
        assert fast.qsize() == 3 and slow.qsize() == 1 and slow.dropped == 2
        assert pool.totals()["dropped_events"] == 2
        pool.unsubscribe(slow)
        await c.submit(c.solve())
        assert fast.qsize() == 4 and slow.qsize() == 1
    finally:
        await c.close()


async def test_sessions_come_and_go_without_disturbing_others(pool):
    steady = await client(pool, worker="steady")
    try:
        for round_ in range(3):
            transient = [await client(pool, worker=f"t{round_}.{i}") for i in range(4)]
            assert (await transient[0].submit(transient[0].solve()))["result"] is True
            for t in transient:
                await t.close()
            assert (await steady.submit(steady.solve()))["result"] is True
        await wait_until(lambda: len(pool.sessions) == 1)
        assert list(i.worker for i in pool.sessions.values()) == ["steady"]
        assert pool.totals()["sessions_total"] == 13
    finally:
        await steady.close()


async def test_wait_for_session_times_out_and_stop_is_clean(pool):
    with pytest.raises(TimeoutError):
        await pool.wait_for_session(worker="nobody", timeout=0.1)
    c = await client(pool, worker="late")
    await pool.stop()
    await asyncio.wait_for(c.closed.wait(), 2)
    assert pool.sessions == {}


def test_share_hash_matches_reference_assembly():
    """The pool's cached header path equals work.Job.header for a solved share."""
    job = Job("1", bytes(range(32)), b"\x01" * 40, b"\x02" * 30, (b"\x03" * 32,), ntime=5)
    en1, en2 = b"\xaa" * 4, b"\xbb" * 4
    from asic_reservoir.drivers.stratum.jobs import JobRegistry, make_sent_job
    from asic_reservoir.drivers.stratum.validation import ShareValidator
    sent = make_sent_job(job, 1e-12, 1.0, en1, 0)
    reg = JobRegistry()
    reg.add(sent, True)
    validator = ShareValidator("sha256d", 1.0, 4, 0, 7200)
    v = validator.check(["w", "1", en2.hex(), "00000006", "0000abcd", "00002000"], True, {"w"}, reg,
                        0x1FFFE000, False, 1e-12)
    assert v.accepted
    digest = sha256d(job.header(en1, en2, 6, 0xABCD, 0x20002000))
    assert v.share_difficulty == pytest.approx(DIFF1_TARGET / hash_to_int(digest))


def test_share_event_fast_construction_is_a_complete_frozen_dataclass():
    import dataclasses

    from asic_reservoir.drivers.stratum.validation import Verdict
    v = Verdict(accepted=True, code=None, reason="accepted", worker="w", job_id="1",
                extranonce2="00", ntime=1, nonce=0x80000000, version_bits=2, version=3,
                share_difficulty=4.0, pool_difficulty=5.0, block_candidate=True)
    ev = v.event(10, 11, "s1", "sha256d", 4)
    fields = dataclasses.asdict(ev)
    assert list(fields) == [f.name for f in dataclasses.fields(ShareEvent)]
    assert ev == ShareEvent(**fields) and ev.chip == 2 and ev.code is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.nonce = 1


# ---------------------------------------------------------------- configuration and API edges

@pytest.mark.parametrize("kw, word", [
    ({"difficulty": 0}, "difficulty"), ({"difficulty": float("nan")}, "difficulty"),
    ({"port": None, "lbry_port": None}, "port"), ({"port": 70000}, "port"),
    ({"extranonce2_size": 0}, "extranonce"), ({"version_form": "both"}, "version_form"),
    ({"refresh_s": 0}, "refresh_s"), ({"branches": -1}, "branches"),
    ({"lbry_difficulty_factor": -256}, "lbry_difficulty_factor"),
])
def test_pool_config_rejects_bad_values(kw, word):
    with pytest.raises(ValueError, match=word):
        PoolConfig(**kw)


@pytest.mark.parametrize("kw", [
    {"prevhash": "00" * 31}, {"prevhash": "zz" * 32}, {"branches": ["00" * 31]}, {"branches": "00" * 32},
    {"version": -1}, {"nbits": 1 << 32}, {"nbits": 0x1D800000}, {"ntime": "5"},
    {"algorithm": "scrypt"}, {"algorithm": "sha256d", "claimtrie": "00" * 32},
])
def test_job_template_rejects_bad_fields(kw):
    from asic_reservoir.drivers.stratum.work import WorkError
    with pytest.raises(WorkError):
        JobTemplate(**kw)


async def test_api_arguments_are_checked(pool):
    for bad in (0, -1.0, float("inf"), True, "1"):
        with pytest.raises(ValueError):
            await pool.set_difficulty(bad)
    with pytest.raises(KeyError):
        await pool.set_difficulty(1.0, session="no-such-session")
    with pytest.raises(ValueError):
        pool.set_chip_count("w", 0)
    async with Pool(PoolConfig(host=HOST, refresh_s=None)) as sha_only:
        with pytest.raises(ValueError, match="lbry"):
            await sha_only.push_job(JobTemplate(algorithm="lbry"))


async def test_algorithm_scoped_push_and_difficulty(pool):
    sha = await client(pool, worker="sha")
    lbry = await client(pool, worker="lb", algorithm="lbry")
    try:
        sha_job, lbry_job = sha.job.job.job_id, lbry.job.job.job_id
        await pool.push_job(JobTemplate(algorithm="lbry", claimtrie="cd" * 32))
        await lbry.next_job()
        assert lbry.job.job.claimtrie == bytes.fromhex("cd" * 32) and sha.job.job.job_id == sha_job
        await pool.set_difficulty(DIFF * 2, algorithm="lbry")
        await wait_until(lambda: lbry.job.difficulty == DIFF * 2)
        assert sha.difficulty == DIFF and pool.difficulty("lbry") == DIFF * 2 == lbry.difficulty
        assert pool.difficulty("sha256d") == DIFF and lbry.job.job.job_id != lbry_job
        assert (await lbry.submit(lbry.solve()))["result"] is True
    finally:
        await sha.close()
        await lbry.close()


async def test_two_workers_on_one_session_and_events_carry_the_submitting_worker(pool):
    events = pool.subscribe()
    c = await client(pool, worker="proxy.a")
    try:
        assert (await c.call("mining.authorize", ["proxy.b", "x"]))["result"] is True
        await c.submit(c.solve(), worker="proxy.b")
        await c.submit(c.solve(), worker="proxy.a")
        assert [e.worker for e in (events.get_nowait(), events.get_nowait())] == ["proxy.b", "proxy.a"]
        assert next(iter(pool.sessions.values())).worker == "proxy.a"
    finally:
        await c.close()


async def test_events_use_the_pool_clock():
    from asic_reservoir.drivers.clock import Clock
    clock = Clock(speed=50.0)
    async with Pool(PoolConfig(host=HOST, difficulty=DIFF, refresh_s=None), clock=clock) as p:
        events = p.subscribe()
        c = await client(p)
        try:
            await c.submit(c.solve())
            ev = events.get_nowait()
            assert ev.clock_ns == clock.to_experiment_ns(ev.recv_ns)
            assert ev.clock_ns > 0 and abs(ev.clock_ns / 1e9 - clock.now()) < 50 * 0.5
        finally:
            await c.close()


async def test_session_limit_refuses_extra_connections_only():
    async with Pool(PoolConfig(host=HOST, difficulty=DIFF, refresh_s=None, max_sessions=2)) as p:
        a, b = await client(p, worker="a"), await client(p, worker="b")
        reader, writer = await asyncio.open_connection(HOST, p.port)
        try:                                                          # closed at once
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass
        writer.close()
        assert (await a.submit(a.solve()))["result"] is True
        await b.close()
        await wait_until(lambda: len(p.sessions) == 1)
        c = await client(p, worker="c")                              # a freed slot is usable
        assert (await c.submit(c.solve()))["result"] is True
        await a.close()
        await c.close()


async def test_show_message_and_disconnect(pool):
    c = await client(pool, worker="m")
    try:
        assert await pool.show_message("hello", worker="m") == 1
        await wait_until(lambda: c.notifications[-1]["method"] == "client.show_message")
        assert c.notifications[-1]["params"] == ["hello"]
        assert await pool.disconnect(worker="m") == 1
        await asyncio.wait_for(c.closed.wait(), 5)
        await wait_until(lambda: pool.sessions == {})
    finally:
        await c.close()


async def test_merkle_root_is_computed_once_per_job_and_extranonce2(pool):
    """Validation costs one header double-SHA per share once the root is cached."""
    c = await client(pool)
    try:
        en2 = b"\x00\x00\x00\x07"
        for _ in range(3):
            assert (await c.submit(c.solve(extranonce2=en2)))["result"] is True
        (session,) = pool._sessions.values()
        sent = session.jobs.get(c.job.job.job_id)
        assert list(sent.mids) == [en2] and len(sent.seen) == 3
    finally:
        await c.close()
