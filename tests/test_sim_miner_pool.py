"""The simulated units' Stratum client against the toolkit's own pool, over loopback TCP.

The pool re-hashes every share, so zero rejections over thousands of shares means every
dialect builds its headers, extranonces and version bits exactly as the pool reads them.
"""

from __future__ import annotations

import asyncio
import logging

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.drivers.stratum.work import chip_of_nonce
from asic_reservoir.drivers.stratum import JobTemplate, Pool, PoolConfig
from asic_reservoir.simulator.miner import FoundShare, StratumMiner
from tests.support import wait_until

BUDGET = 4000     # hashes per engine call, split over the chips


def new_miner(url: str, flavor: str, worker: str, n_chips: int, **kw) -> StratumMiner:
    algorithm = "lbry" if flavor == "goldshell" else "sha256d"
    kw.setdefault("clock", Clock(speed=20.0))
    return StratumMiner(flavor=flavor, algorithm=algorithm, url=url, worker=worker,
                        password="x", n_chips=n_chips, **kw)


async def mine_shares(miner: StratumMiner, n: int, timeout: float = 20.0) -> list[FoundShare]:
    """Tick loop stand-in: hash until ``n`` more shares went out, then await every answer."""
    found: list[FoundShare] = []
    per_chip = max(1, BUDGET // miner.n_chips)
    goal = miner.submitted + n
    deadline = asyncio.get_running_loop().time() + timeout
    while miner.submitted < goal or miner.accepted + miner.rejected < miner.submitted:
        assert asyncio.get_running_loop().time() < deadline, "shares not answered in time"
        if miner.submitted < goal:
            found += miner.mine([per_chip] * miner.n_chips)
        await asyncio.sleep(0)
    return found


def drain(queue: asyncio.Queue) -> list:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


async def test_thousands_of_shares_from_every_dialect_with_zero_rejections():
    config = PoolConfig(port=0, lbry_port=0, difficulty=5e-9, lbry_difficulty=4e-7,
                        branches=2, refresh_s=None)
    async with Pool(config) as pool:
        events = pool.subscribe()
        # Job version with bits inside the rolling mask: the XOR and OR forms now differ,
        # so ESP-Miner's XOR version bits must be read as XOR.
        await pool.push_job(JobTemplate(version=0x2000E000, algorithm="sha256d"))
        miners = [new_miner(pool.url, "esp-miner", "lv06.sim", 1),
                  new_miner(pool.url, "bmminer", "s9.sim", 189),
                  new_miner(pool.lbry_url, "goldshell", "lbbox.sim", 2)]
        for miner in miners:
            pool.set_chip_count(miner.worker, miner.n_chips)
            await miner.start()
        try:
            for miner in miners:
                await pool.wait_for_session(worker=miner.worker, timeout=5)
                await wait_until(lambda: miner.job is not None and miner.connected)
            found = {m.worker: await mine_shares(m, 2000) for m in miners}
            for miner in miners:
                assert miner.accepted >= 2000 and miner.rejected == 0, miner.worker
            totals = pool.totals()
            assert totals["rejected"] == 0 and totals["accepted"] >= 6000
            by_worker: dict[str, list] = {}
            for event in drain(events):
                by_worker.setdefault(event.worker, []).append(event)
            esp_versions = {e.version for e in by_worker["lv06.sim"]}
            assert len(esp_versions) > 10                       # the version really rolled
            assert all(e.version_bits & ~0x1FFFE000 == 0 for e in by_worker["lv06.sim"])
            for miner in miners:                                # chip read back from nonce
                chips = {(s.nonce, s.extranonce2): s.chip for s in found[miner.worker]}
                for event in by_worker[miner.worker]:
                    assert event.chip == chips[(event.nonce, event.extranonce2)]
                    assert event.chip == chip_of_nonce(event.nonce, miner.n_chips)
            assert len({e.chip for e in by_worker["s9.sim"]}) > 100
            assert {e.algorithm for e in by_worker["lbbox.sim"]} == {"lbry"}
        finally:
            for miner in miners:
                await miner.stop()


async def test_difficulty_change_applies_from_next_job_and_clean_jobs():
    async with Pool(PoolConfig(difficulty=1e-6, refresh_s=None)) as pool:
        events = pool.subscribe()
        miner = new_miner(pool.url, "bmminer", "s9.sim", 4)
        await miner.start()
        try:
            await pool.wait_for_session(worker="s9.sim", timeout=5)
            await wait_until(lambda: miner.job is not None)
            first_job = miner.job.job_id
            await mine_shares(miner, 5)
            await pool.set_difficulty(4e-6)      # set_difficulty, then a new clean job
            await wait_until(lambda: miner.job.job_id != first_job)
            assert miner.difficulty == 4e-6
            n = miner.accepted
            found = await mine_shares(miner, 5)
            submitted = [s for s in found if s.submitted]
            assert all(s.pool_difficulty == 4e-6 and s.difficulty >= 4e-6 for s in submitted)
            job_id = await pool.push_job(JobTemplate(), clean=True)
            await wait_until(lambda: miner.job.job_id == job_id)
            found = await mine_shares(miner, 5)
            assert {s.job_id for s in found if s.submitted} == {job_id}
            assert miner.rejected == 0
            events = drain(events)
            assert {e.pool_difficulty for e in events if e.job_id == job_id} == {4e-6}
            assert {e.pool_difficulty for e in events if e.job_id == first_job} == {1e-6}
        finally:
            await miner.stop()


async def test_client_reconnect_and_pool_restart_with_backoff():
    async with Pool(PoolConfig(difficulty=1e-6, refresh_s=None)) as other:
        first = Pool(PoolConfig(difficulty=1e-6, refresh_s=None))
        await first.start()
        port = first.port
        bm = new_miner(first.url, "bmminer", "s9.sim", 2, backoff_base_s=2.0)
        esp = new_miner(first.url, "esp-miner", "lv06.sim", 1, backoff_base_s=2.0)
        await bm.start()
        await esp.start()
        try:
            await first.wait_for_session(worker="s9.sim", timeout=5)
            await first.wait_for_session(worker="lv06.sim", timeout=5)
            await first.reconnect(worker="s9.sim", host="127.0.0.1", port=other.port)
            await other.wait_for_session(worker="s9.sim", timeout=5)
            assert bm.pool_url == other.url
            await first.reconnect(worker="lv06.sim")
            await wait_until(lambda: esp.connections == 2 and esp.connected)
            assert esp.pool_url == first.url
            await first.stop()                              # pool goes away ...
            await wait_until(lambda: not esp.connected)
            await asyncio.sleep(0.3)
            restarted = Pool(PoolConfig(port=port, difficulty=1e-6, refresh_s=None))
            await restarted.start()                         # ... and comes back
            try:
                await restarted.wait_for_session(worker="lv06.sim", timeout=5)
                await wait_until(lambda: esp.job is not None and esp.connected)
                await mine_shares(esp, 5)
                assert restarted.totals()["accepted"] >= 5 and esp.rejected == 0
                assert esp.connections >= 3
            finally:
                await restarted.stop()
        finally:
            await bm.stop()
            await esp.stop()


async def test_replies_to_suggest_difficulty_and_extranonce_subscribe_are_expected(caplog):
    """ESP-Miner sends both after authorizing and goes on without their replies; the pool's
    answers (true) are the replies to those requests, not unexpected messages."""
    async with Pool(PoolConfig(port=0, difficulty=5e-9, refresh_s=None)) as pool:
        miner = new_miner(pool.url, "esp-miner", "w.suggest", 1, extranonce_subscribe=True)
        with caplog.at_level(logging.INFO, logger="asic_reservoir.simulator.miner"):
            await miner.start()
            try:
                info = await pool.wait_for_session(worker="w.suggest", timeout=30)
                await mine_shares(miner, 3)
            finally:
                await miner.stop()
    assert info.suggested_difficulty == 1000
    assert miner.accepted >= 3
    assert not [r for r in caplog.records if "unexpected message" in r.getMessage()]
