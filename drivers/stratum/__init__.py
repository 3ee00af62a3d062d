"""Asyncio Stratum v1 pool (SHA-256d and LBRY) that crafts every job and checks every share.

Experiments attach through :class:`Pool`: push job templates, set difficulties per session
or worker, and consume the :class:`ShareEvent` stream. See :mod:`.pool` for behaviour,
:mod:`.validation` for the share rules and :mod:`.protocol` for the wire format::

    async with Pool(PoolConfig(port=0, lbry_port=0, difficulty=0.001)) as pool:
        events = pool.subscribe()
        ...                                   # point miners at pool.url / pool.lbry_url
        info = await pool.wait_for_session(worker="lv06.1", timeout=30)
        await pool.set_difficulty(0.002, worker="lv06.1")   # set_difficulty + new notify
        await pool.push_job(JobTemplate(ntime=0x495FAB29), session=info)
        event = await events.get()            # ShareEvent: verdict, nonce, times, chip
"""

from .jobs import JobTemplate
from .config import PoolConfig
from .pool import Pool
from .protocol import (
                       DUPLICATE,
                       JOB_NOT_FOUND,
                       LOW_DIFFICULTY,
                       NOT_SUBSCRIBED,
                       OTHER,
                       UNAUTHORIZED,
                       StratumError,
)
from .session import SessionInfo
from .validation import ShareEvent

__all__ = [
                       "DUPLICATE",
                       "JOB_NOT_FOUND",
                       "LOW_DIFFICULTY",
                       "NOT_SUBSCRIBED",
                       "OTHER",
                       "UNAUTHORIZED",
                       "JobTemplate",
                       "Pool",
                       "PoolConfig",
                       "SessionInfo",
                       "ShareEvent",
                       "StratumError",
]
