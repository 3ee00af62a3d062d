"""Typed errors for everything that talks to a unit, plus retry-with-backoff for reads.

Every error names the unit and the command so a log line from a long experiment says
which miner failed at what; an experiment loop catches :class:`UnitError` and carries on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class UnitError(Exception):
    """Base class: a unit did not do what was asked. ``unit`` and ``command`` say where."""

    def __init__(self, message: str, *, unit: str = "", command: str = "") -> None:
        self.unit = unit
        self.command = command
        self.detail = message
        where = " ".join(p for p in (unit and f"unit {unit}", command and f"command {command!r}") if p)
        super().__init__(f"{where}: {message}" if where else message)


class Timeout(UnitError, TimeoutError):
    """No (complete) answer within the timeout."""


class ConnectionRefused(UnitError, ConnectionError):
    """Nothing listens on the port, or the connection was reset before a reply."""


class HTTPError(UnitError):
    """An HTTP status the command does not accept (4xx/5xx other than 401/403)."""

    def __init__(self, message: str, *, status: int, unit: str = "", command: str = "") -> None:
        self.status = status
        super().__init__(message, unit=unit, command=command)


class ServerError(HTTPError):
    """HTTP 5xx: the unit's web backend failed (transient on busy firmware; reads retry)."""


class AuthError(UnitError):
    """Login refused, or a token that stays invalid after one re-login."""


class MalformedReply(UnitError):
    """A reply that cannot be parsed even after the known firmware quirks are repaired."""


class TruncatedReply(MalformedReply):
    """A reply cut off before its end (connection closed mid-object)."""


class CommandError(UnitError):
    """The firmware answered with an error status (cgminer STATUS E/F)."""

    def __init__(self, message: str, *, code: int | None = None, unit: str = "",
                 command: str = "") -> None:
        self.code = code
        super().__init__(message, unit=unit, command=command)


class AccessDenied(CommandError):
    """cgminer code 45: the command is privileged and this client is not allowed (api-allow)."""


class InvalidCommand(CommandError):
    """cgminer code 14: the firmware does not know the command."""


class UnsupportedSetting(UnitError):
    """The unit has no actuator for this setting (e.g. pause on an S9)."""


class EnvelopeError(UnitError, ValueError):
    """A setting outside the model's safe envelope; nothing was sent to the unit."""


class OverTemperature(UnitError):
    """A temperature crossed the model's limit: stop the experiment."""


class SafeMode(OverTemperature):
    """The unit's own overheat protection has taken over its settings: nothing is written
    back until someone has looked at the unit."""


RETRYABLE: tuple[type[BaseException], ...] = (Timeout, ConnectionRefused, TruncatedReply,
                                              ServerError)


async def retry_read(call: Callable[[], Awaitable[T]], *, attempts: int = 3, backoff: float = 0.1,
                     retry_on: tuple[type[BaseException], ...] = RETRYABLE) -> T:
    """Run an idempotent read, retrying transient failures with exponential backoff.

    Only for reads: a write that timed out may have been applied, so it is never repeated.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(attempts - 1):
        try:
            return await call()
        except retry_on as exc:
            delay = backoff * (2 ** attempt)
            log.debug("retrying after %s (%.2fs)", exc, delay)
            await asyncio.sleep(delay)
    return await call()
