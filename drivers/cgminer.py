"""Async client for the cgminer/bmminer RPC on TCP 4028 (Antminer S9, Goldshell LB-Box).

The protocol is one request per connection: send ``{"command": ..., "parameter": ...}``
(or the text form ``command|parameter``), read until the server closes, strip the
trailing NUL. Real firmware emits JSON that is not quite JSON (``}{`` between objects,
``,}``, bare ``inf``/``nan``) and sometimes closes mid-reply; :func:`decode_reply`
repairs the first and reports the second as :class:`TruncatedReply`. Repairs are tried
only after a strict parse fails, so valid JSON is never rewritten.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from asic_reservoir.drivers.errors import (AccessDenied, CommandError, ConnectionRefused, InvalidCommand,
                            MalformedReply, Timeout, TruncatedReply, retry_read)

log = logging.getLogger(__name__)

DEFAULT_PORT = 4028
MAX_REPLY_BYTES = 4 << 20  # a stats reply of a 3-chain S9 is ~4 kB; anything huge is garbage

# cgminer api.c status codes the drivers act on (see firmware_notes/antminer-s9.md).
CODE_INVALID_COMMAND = 14
CODE_ACCESS_DENIED = 45
ERROR_STATUS = ("E", "F")

_BARE_NONFINITE = re.compile(r'(?<=[:\[,])(\s*)-?(?:inf|nan)\b', re.IGNORECASE)


def repair(text: str) -> str:
    """Apply the known firmware JSON quirks: ``}{``, ``,}``/``,]`` and bare ``inf``/``nan``."""
    text = text.replace("}{", "},{")
    text = re.sub(r",\s*([}\]])", r"\1", text)
    text = text.replace("[,", "[")
    return _BARE_NONFINITE.sub(r"\1null", text)


def _unbalanced(text: str) -> bool:
    """True if brackets are left open or a string is unterminated: the reply was cut off."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def _loads(text: str) -> Any:
    # NaN/Infinity literals (valid for Python's json) become None: never a usable reading.
    return json.loads(text, strict=False, parse_constant=lambda _: None)


def decode_reply(raw: bytes, *, unit: str = "", command: str = "") -> dict[str, Any]:
    """Bytes from the socket -> reply dict (JSON or text form), repairing known quirks."""
    text = raw.replace(b"\x00", b"").decode("utf-8", errors="replace").strip()
    if not text:
        raise TruncatedReply("empty reply", unit=unit, command=command)
    if not text.startswith(("{", "[")):
        if not text.endswith("|"):  # every text section ends with '|'
            raise TruncatedReply(f"text reply cut off: ends {text[-40:]!r}", unit=unit,
                                 command=command)
        return parse_text_reply(text, unit=unit, command=command)
    try:
        data = _loads(text)
    except ValueError:
        try:
            data = _loads(repair(text))
        except ValueError as exc:
            kind = TruncatedReply if _unbalanced(text) else MalformedReply
            raise kind(f"unparseable reply ({exc}); starts {text[:80]!r}",
                       unit=unit, command=command) from None
    if not isinstance(data, dict):
        raise MalformedReply(f"reply is a {type(data).__name__}, not an object",
                             unit=unit, command=command)
    return data


def _text_value(value: str) -> Any:
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return value


def parse_text_reply(text: str, *, unit: str = "", command: str = "") -> dict[str, Any]:
    """Parse the text form ``STATUS=S,Code=11,...|SUMMARY,Elapsed=3,...|`` into the JSON shape.

    Each ``|``-separated section is one object; its name is a leading bare token
    (``SUMMARY``) or the key of its first pair (``ASC=0`` -> ``ASC``); sections of the same
    name become one list, like the JSON reply.
    """
    reply: dict[str, Any] = {}
    for section in filter(None, (s.strip() for s in text.split("|"))):
        fields = section.split(",")
        name = None
        record: dict[str, Any] = {}
        for i, field in enumerate(fields):
            key, sep, value = field.partition("=")
            if not sep:
                if i == 0:
                    name = key
                    continue
                raise MalformedReply(f"text field without '=': {field[:40]!r}",
                                     unit=unit, command=command)
            record[key] = _text_value(value)
            if name is None:
                name = key
        if name is None:
            continue
        reply.setdefault(name, []).append(record)
    if "STATUS" not in reply:
        raise MalformedReply(f"no STATUS section in reply {text[:80]!r}", unit=unit, command=command)
    return reply


def check_status(reply: dict[str, Any], *, unit: str = "", command: str = "") -> dict[str, Any]:
    """Raise the typed error for an E/F STATUS; return the reply otherwise (W is logged)."""
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        status = status[0]
    if not isinstance(status, dict):
        raise MalformedReply("reply without STATUS", unit=unit, command=command)
    letter = str(status.get("STATUS", ""))
    code = status.get("Code")
    msg = str(status.get("Msg", ""))
    if letter in ERROR_STATUS:
        kind = {CODE_ACCESS_DENIED: AccessDenied,
                CODE_INVALID_COMMAND: InvalidCommand}.get(code, CommandError)
        raise kind(f"firmware status {letter} code {code}: {msg}", code=code,
                   unit=unit, command=command)
    if letter == "W":
        log.warning("unit %s command %s: warning code %s: %s", unit, command, code, msg)
    return reply


class CgminerRPC:
    """One cgminer-compatible RPC endpoint. Reads retry with backoff; privileged writes never do."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, *, timeout: float = 5.0,
                 attempts: int = 3, unit: str | None = None) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.attempts = attempts
        self.unit = unit or f"{host}:{port}"
        self.join_supported: bool | None = None  # learnt on the first multicommand

    async def exchange(self, payload: bytes, command: str) -> bytes:
        """One connection: send ``payload``, read until EOF; typed errors for every failure."""
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except ConnectionRefusedError:
                    raise ConnectionRefused(f"connection refused on port {self.port}",
                                            unit=self.unit, command=command) from None
                except OSError as exc:
                    raise ConnectionRefused(f"cannot connect to port {self.port}: {exc}",
                                            unit=self.unit, command=command) from None
                chunks: list[bytes] = []
                size = 0
                try:
                    writer.write(payload)
                    await writer.drain()
                    while chunk := await reader.read(65536):
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > MAX_REPLY_BYTES:
                            raise MalformedReply(f"reply exceeds {MAX_REPLY_BYTES} bytes",
                                                 unit=self.unit, command=command)
                except (ConnectionResetError, BrokenPipeError) as exc:
                    if not chunks:
                        raise ConnectionRefused(f"connection reset: {exc}", unit=self.unit,
                                                command=command) from None
                    # a reset after data: decode what arrived; truncation is detected there
                finally:
                    writer.close()
                    try:
                        await writer.wait_closed()
                    except OSError:
                        pass
                return b"".join(chunks)
        except TimeoutError:
            raise Timeout(f"no complete reply within {self.timeout:g}s", unit=self.unit,
                          command=command) from None

    async def _once(self, command: str, parameter: Any, text: bool) -> dict[str, Any]:
        if text:
            payload = command if parameter is None else f"{command}|{parameter}"
            data = payload.encode()
        else:
            request: dict[str, Any] = {"command": command}
            if parameter is not None:
                request["parameter"] = parameter
            data = json.dumps(request).encode()
        raw = await self.exchange(data, command)
        return decode_reply(raw, unit=self.unit, command=command)

    async def command(self, command: str, parameter: Any = None, *, text: bool = False,
                      check: bool = True, retry: bool = True) -> dict[str, Any]:
        """Send one command; returns the reply dict after STATUS checking."""
        async def call() -> dict[str, Any]:
            return await self._once(command, parameter, text)

        reply = await (retry_read(call, attempts=self.attempts) if retry else call())
        return check_status(reply, unit=self.unit, command=command) if check else reply

    async def multicommand(self, *commands: str) -> dict[str, dict[str, Any]]:
        """Several report commands at once (``summary+devs``), falling back to one by one.

        Returns ``{command: reply}`` with each reply STATUS-checked. Firmware that rejects
        ``+`` answers with a top-level STATUS error; the client then remembers to send
        single requests.
        """
        if not commands:
            raise ValueError("multicommand needs at least one command")
        replies: dict[str, dict[str, Any]] = {}
        if self.join_supported is not False and len(commands) > 1:
            joined = "+".join(commands)
            reply = await self.command(joined, check=False)
            if "STATUS" in reply and not any(c in reply for c in commands):
                self.join_supported = False
                log.info("unit %s rejects joined commands; using single requests", self.unit)
            else:
                self.join_supported = True
                for c in commands:
                    part = reply.get(c)
                    if isinstance(part, list) and part and isinstance(part[0], dict):
                        replies[c] = check_status(part[0], unit=self.unit, command=c)
        for c in commands:
            if c not in replies:
                replies[c] = await self.command(c)
        return replies

    async def privileged(self, command: str, parameter: Any = None) -> dict[str, Any]:
        """A command that changes the miner: never retried (it may have been applied)."""
        return await self.command(command, parameter, retry=False)

    async def can_write(self) -> bool:
        """Ask the firmware whether this client may use privileged commands (46 OK vs 45 denied)."""
        try:
            await self.command("privileged", retry=True)
        except (AccessDenied, InvalidCommand):
            return False
        return True

    async def version(self) -> dict[str, Any]:
        return await self.command("version")

    async def summary(self) -> dict[str, Any]:
        return await self.command("summary")

    async def devs(self) -> dict[str, Any]:
        return await self.command("devs")

    async def pools(self) -> dict[str, Any]:
        return await self.command("pools")

    async def stats(self) -> dict[str, Any]:
        return await self.command("stats")
