"""Asyncio Stratum v1 pool (SHA-256d and LBRY) that crafts every job and checks every share.

Experiments attach through :class:`Pool`: push job templates, set difficulties per session
or worker, and consume the :class:`ShareEvent` stream. See :mod:`.pool` for behaviour,
:mod:`.validation` for the share rules and :mod:`.protocol` for the wire format.
"""

from .jobs import JobTemplate
from .pool import Pool, PoolConfig
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
