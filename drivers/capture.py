"""Record what a real unit answers, for the firmware notes: every read-only GET endpoint and
RPC report command its family is known to serve, as raw replies in one JSON document.

Why: several firmware behaviours the simulator follows are estimates (Lucky's closed
ESP-Miner fork, the LB-Box's web API, the stock S9 release's exact RPC fields); a capture of a
real unit is what settles them. A capture never writes: only GETs and the RPC report commands
(no restart, no PUT, no ``reboot.cgi``), and only to the unit named. An endpoint that fails is
recorded with its error, so one refusal does not lose the other replies.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from asic_reservoir.drivers.errors import UnitError

FORMAT = "asic-reservoir capture 1"


async def capture_http(unit: Any) -> dict[str, dict[str, Any]]:
    """``{path: {"status", "content_type", "body"}}`` (or ``{"error"}``) per capture path."""
    replies: dict[str, dict[str, Any]] = {}
    for path in unit.capture_paths:
        try:
            status, body, headers = await unit.get_raw(path)
        except UnitError as exc:
            replies[path] = {"error": str(exc)}
            continue
        reply: dict[str, Any] = {"status": status,
                                 "content_type": headers.get("Content-Type", ""), "body": body}
        if "Location" in headers:
            reply["location"] = headers["Location"]
        replies[path] = reply
    return replies


async def capture_rpc(unit: Any) -> dict[str, dict[str, Any]]:
    """``{command: {"reply"}}`` (or ``{"error"}``): each JSON request's reply as received,
    its NUL and any quirk (``}{``) included."""
    replies: dict[str, dict[str, Any]] = {}
    for command in unit.capture_commands:
        try:
            raw = await unit.rpc.exchange(json.dumps({"command": command}).encode(), command)
        except UnitError as exc:
            replies[command] = {"error": str(exc)}
            continue
        replies[command] = {"reply": raw.decode("utf-8", errors="replace")}
    return replies


async def capture(unit: Any) -> dict[str, Any]:
    """Every capture reply of ``unit`` (an opened :class:`~asic_reservoir.drivers.units.Unit`)."""
    return {"format": FORMAT, "url": unit.name, "model": unit.model,
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "http": await capture_http(unit), "rpc": await capture_rpc(unit)}


def write_capture(document: dict[str, Any], path: Path) -> None:
    """Write the capture as indented JSON (a new file, or one the user named to replace)."""
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
