"""Stratum v1 wire format: newline-delimited JSON-RPC messages and error codes.

Requests carry ``id``, ``method`` and ``params``; responses carry ``id``, ``result`` and
``error``; notifications are requests with ``id: null``. Errors travel as
``[code, message, null]`` with the conventional Stratum codes (20 other, 21 job not
found / stale, 22 duplicate, 23 low difficulty, 24 unauthorized worker, 25 not
subscribed). Everything a miner sends is parsed here into a :class:`Message` or rejected
with a :class:`StratumError`, so the session code never touches raw JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

OTHER = 20
JOB_NOT_FOUND = 21
DUPLICATE = 22
LOW_DIFFICULTY = 23
UNAUTHORIZED = 24
NOT_SUBSCRIBED = 25


class StratumError(Exception):
    """A Stratum-level error answered to the miner as ``[code, message, null]``."""

    def __init__(self, code: int, message: str, msg_id: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.msg_id = msg_id     # id of the offending request, when it could be read

    def as_json(self) -> list:
        return [self.code, self.message, None]


@dataclass(slots=True)
class Message:
    """One parsed line: a request/notification (``method`` set) or a response."""

    id: Any
    method: str | None
    params: Any = None
    result: Any = None
    error: Any = None


_raw_decode = json.JSONDecoder().raw_decode   # UTF-8 only, as Stratum is
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def parse_line(line: bytes) -> Message:
    """Parse one line from a miner; raise :class:`StratumError` (code 20) if malformed.

    The error's message names the problem; the caller answers it with ``id: null``
    unless an id could be read.
    """
    try:
        text = line.decode().strip()
        obj, end = _raw_decode(text)
        if end != len(text):
            raise ValueError("trailing data after the JSON value")
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise StratumError(OTHER, f"malformed JSON: {str(exc)[:60]}") from None
    if type(obj) is not dict:
        raise StratumError(OTHER, f"message must be a JSON object, got {type(obj).__name__}")
    msg_id = obj.get("id")
    if msg_id is not None and type(msg_id) not in (int, str):
        raise StratumError(OTHER, "id must be an integer, a string or null")
    method = obj.get("method")
    if method is None:
        if "result" not in obj and "error" not in obj:
            raise StratumError(OTHER, "message has neither method nor result")
        return Message(msg_id, None, None, obj.get("result"), obj.get("error"))
    if type(method) is not str:
        raise StratumError(OTHER, "method must be a string", msg_id)
    params = obj.get("params", [])
    if params is None:
        params = []
    if type(params) not in (list, dict):
        raise StratumError(OTHER, "params must be a list", msg_id)
    return Message(msg_id, method, params)


def encode_id(msg_id: Any) -> str:
    return str(msg_id) if type(msg_id) is int else _dumps(msg_id)


def encode_response(msg_id: Any, result: Any, error: StratumError | None = None) -> bytes:
    err = "null" if error is None else _dumps(error.as_json())
    return f'{{"id":{encode_id(msg_id)},"result":{_dumps(result)},"error":{err}}}\n'.encode()


def encode_request(msg_id: Any, method: str, params: list) -> bytes:
    """A request (``msg_id`` set) or notification (``msg_id`` None) line."""
    return f'{{"id":{encode_id(msg_id)},"method":{_dumps(method)},"params":{_dumps(params)}}}\n'.encode()


def encode_notification(method: str, params: list) -> bytes:
    return encode_request(None, method, params)
