"""``asic-reservoir set``: change a unit's settings, verified, and print how to undo it.

``set URL frequency=600 fan=auto`` checks every value against the unit's safety envelope
and actuators (nothing is sent when one is refused), writes, and reads back: per setting,
the commanded value, what the unit's configuration and (where reported) its running value
show, and the verdict ``applied`` / ``pending_restart`` / ``not_applied``. The output
carries the settings found before the write; ``set URL --from FILE`` writes those back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from asic_reservoir.cli import CommandError
from asic_reservoir.drivers.errors import UnitError
from asic_reservoir.drivers.telemetry import SETTINGS_KEYS
from asic_reservoir.drivers.units import open_unit
from asic_reservoir.drivers.writes import NOT_APPLIED, PENDING_RESTART

# command-line names -> canonical settings keys (canonical keys are accepted as well)
ALIASES = {"frequency": "frequency_mhz", "freq": "frequency_mhz", "voltage": "core_voltage_mv",
           "temp-target": "temp_target_c", "temp_target": "temp_target_c", "pool": "pool_url",
           "user": "pool_user", "worker": "pool_user", "password": "pool_password"}
EXIT_PENDING = 3        # every setting stored, some wait for a restart
EXIT_NOT_APPLIED = 4    # at least one setting did not take


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``key=value`` words -> canonical settings; ``fan=auto`` or ``fan=<percent>``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().lower()
        if not sep or not key or not text.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        text = text.strip()
        if key == "fan":
            if text.lower() == "auto":
                out["fan_auto"] = True
            else:
                out["fan_auto"] = False
                out["fan_pct"] = _number(key, text)
            continue
        canonical = ALIASES.get(key, key)
        if canonical not in SETTINGS_KEYS:
            raise ValueError(f"unknown setting {key!r}; use frequency, voltage, fan (pwm % or "
                             f"auto), temp-target, pool, user, password")
        if canonical == "fan_auto":
            out[canonical] = text.lower() in ("1", "true", "yes", "auto")
        elif canonical.startswith("pool_"):
            out[canonical] = text
        else:
            out[canonical] = _number(key, text)
    return out


def _number(key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{key} needs a number, got {text!r}") from None


def settings_from_file(path: str) -> dict[str, Any]:
    """The settings to restore: a ``set --json`` output (its ``previous``) or a flat object."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("previous"), dict):
        data = data["previous"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of settings")
    unknown = sorted(set(data) - set(SETTINGS_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}")
    if not data:
        raise ValueError(f"{path}: no settings to write")
    return data


def set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="unit URL (s9://HOST, lv06://HOST, lbbox://HOST, auto://HOST)")
    parser.add_argument("assignments", nargs="*", metavar="key=value",
                        help="frequency=MHz voltage=mV fan=PCT|auto temp-target=C pool=URL "
                             "user=WORKER password=PW")
    parser.add_argument("--from", dest="from_file", metavar="FILE",
                        help="write the settings in FILE (the JSON a previous set printed)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check against the envelope and the unit's actuators; send nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds to wait for a write to show (default: per firmware)")


async def _set(args: argparse.Namespace, changes: dict[str, Any]) -> dict[str, Any]:
    unit = await open_unit(args.url, timeout=args.timeout)
    try:
        previous = await unit.settings()
        out: dict[str, Any] = {"unit": unit.name, "model": unit.model, "commanded": changes,
                               "previous": {k: previous[k] for k in changes if k in previous}}
        unit.envelope.check_settings(changes, unit=unit.name)
        await unit.check_support(changes)
        if args.dry_run:
            out["dry_run"] = True
            return out
        result = await unit.apply(changes, deadline_s=args.deadline)
        out["result"] = result.to_dict()
        out["effective"] = {o.key: o.effective if o.effective is not None else o.setting
                            for o in result.outcomes if o.status != NOT_APPLIED}
        return out
    finally:
        await unit.close()


def _print(out: dict[str, Any]) -> None:
    print(out["unit"])
    if out.get("dry_run"):
        for key, value in out["commanded"].items():
            print(f"  {key:<15} {out['previous'].get(key, '-')!s:>24} -> {value!s:<24} (dry run)")
        return
    for o in out["result"]["outcomes"]:
        shown = o["effective"] if o["effective"] is not None else o["setting"]
        print(f"  {o['key']:<15} {out['previous'].get(o['key'], '-')!s:>24} -> {o['commanded']!s:<12} "
              f"now {shown!s:<12} {o['status']:<16} {o['evidence']}")
    print(f"  restore with: asic-reservoir set {out['unit']} --from FILE  "
          f"(FILE: this command's --json output)")


def set_main(args: argparse.Namespace) -> int:
    try:
        if args.from_file and args.assignments:
            raise ValueError("give key=value settings or --from FILE, not both")
        changes = (settings_from_file(args.from_file) if args.from_file
                   else parse_assignments(args.assignments))
        if not changes:
            raise ValueError("nothing to set: give key=value settings or --from FILE")
        out = asyncio.run(_set(args, changes))
    except (UnitError, ValueError) as exc:
        raise CommandError(str(exc), status=2) from exc
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        _print(out)
    status = out.get("result", {}).get("status")
    return {NOT_APPLIED: EXIT_NOT_APPLIED, PENDING_RESTART: EXIT_PENDING}.get(status, 0)
