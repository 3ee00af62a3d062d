"""How ESP-IDF's ``esp_http_server`` and ESP-Miner's cJSON helpers put a reply on the wire,
shared by every simulated AxeOS release (and the parts of it each release's handlers use).

``httpd_resp_send_err`` answers ``text/html`` with the message as the body; a URI that has a
handler for another method gets esp_http_server's 405 text; ESP-Miner's
``HTTP_send_json_error`` (v2.15.0) answers ``{"message": ...}`` with its CORS headers; cJSON
prints a whole double without a fraction and ``cJSON_AddFloatToObject`` (``cjson_utils.c``)
rounds the float32 value to 7 decimals. Handlers are registered with the firmware's wildcard
URIs (``httpd_uri_match_wildcard``: a trailing ``*`` matches the rest of the path).
"""

from __future__ import annotations

import json

import math
import struct
from typing import Any

from aiohttp import web

CORS_HEADERS = {"Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type"}


def send_err(status: int, message: str) -> web.Response:
    """``httpd_resp_send_err(req, status, message)``."""
    return web.Response(status=status, text=message, content_type="text/html")


def bad_request(message: str) -> web.Response:
    return send_err(400, message)


def method_not_allowed() -> web.Response:
    """esp_http_server's answer when a URI has a handler, but not for this method."""
    return send_err(405, "Request method for this URI is not handled by server")


def json_message(message: str, status: int = 200) -> web.Response:
    """A ``{"message": ...}`` reply (``HTTP_send_json_error`` for an error status)."""
    return web.json_response({"message": message}, status=status, headers=CORS_HEADERS)


_PLAIN = frozenset({str, int, bool, type(None)})


def cjson_number(value: Any) -> Any:
    """cJSON prints a whole double without a fraction ("%1.15g"): so does this reply.
    (Exact types first: a closed loop polls the full info object several times a slot.)"""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        return {k: cjson_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [cjson_number(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def cjson_float(value: float) -> float:
    """cJSON_AddFloatToObject (cjson_utils.c): the float32 value rounded to 7 decimals."""
    return round(float(struct.unpack("f", struct.pack("f", float(value)))[0]), 7)


def httpd_path(uri: str) -> str:
    """A firmware wildcard URI as an aiohttp route path (``/api/*`` -> ``/api/{tail:.*}``)."""
    return uri[:-1] + "{tail:.*}" if uri.endswith("*") else uri


def firmware_uri(path: str) -> str:
    """The inverse of :func:`httpd_path` on a route's canonical path (``{tail}`` -> ``*``)."""
    return path[:-len("{tail}")] + "*" if path.endswith("{tail}") else path


NOT_JSON = object()            # what cjson_parse gives for a body cJSON_Parse cannot read


def cjson_parse(raw: bytes) -> Any:
    """``cJSON_Parse`` on a request body: the document, or :data:`NOT_JSON` where the
    firmware's parse returns NULL (not UTF-8, not JSON)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON


def cjson_get(obj: Any, key: str, default: Any = None) -> Any:
    """``cJSON_GetObjectItem``: the first member whose name matches ignoring case (nothing
    for an array or a scalar)."""
    if isinstance(obj, dict):
        wanted = key.lower()
        for name, value in obj.items():
            if name.lower() == wanted:
                return value
    return default


def cjson_view(obj: Any, names: tuple[str, ...] | list[str]) -> Any:
    """The members a handler looks up by name with ``cJSON_GetObjectItem``, under their
    canonical names (a body's ``"FREQUENCY"`` is the firmware's ``frequency``); anything
    that is no object comes back unchanged."""
    if not isinstance(obj, dict):
        return obj
    view = {}
    for name in names:
        value = cjson_get(obj, name, _ABSENT)
        if value is not _ABSENT:
            view[name] = value
    return view


_ABSENT = object()
