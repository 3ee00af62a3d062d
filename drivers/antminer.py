"""Client for the stock Antminer S9 web UI (lighttpd CGI scripts, digest auth).

``set_miner_conf.cgi`` is a shell script that assigns the posted fields **by position**,
not by name (see firmware_notes/antminer-s9.md): :func:`config_form` builds the form in
the script's order from the current ``bmminer.conf`` plus the changes, so a field can
never land in another variable. The script restarts bmminer and sleeps before it
answers ``ok`` (6-30 s); :meth:`AntminerWeb.set_miner_conf` waits for that under its own
deadline. ``reboot.cgi`` prints ``Reboot`` with no HTTP headers and reboots: a
malformed reply or a dropped connection is its success.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from asic_reservoir.drivers.errors import ConnectionRefused, MalformedReply
from asic_reservoir.drivers.http import HttpClient
from asic_reservoir.drivers.telemetry import as_float

log = logging.getLogger(__name__)

# The script's positional variables: case 0-13 on the stock S9; builds with a voltage
# setting read position 14 as well (the 0-13 script ignores the extra field).
FORM_ORDER = ("_ant_pool1url", "_ant_pool1user", "_ant_pool1pw",
              "_ant_pool2url", "_ant_pool2user", "_ant_pool2pw",
              "_ant_pool3url", "_ant_pool3user", "_ant_pool3pw",
              "_ant_nobeeper", "_ant_notempoverctrl",
              "_ant_fan_customize_switch", "_ant_fan_customize_value", "_ant_freq", "_ant_voltage")
# The CGI restarts bmminer and sleeps before it answers: 6 s in one build, 31 s in another.
SET_CONF_TIMEOUT_S = 60.0


def _flag(conf: Mapping[str, Any], key: str) -> str:
    value = conf.get(key, False)
    return "true" if value is True or str(value).lower() == "true" else "false"


def conf_settings(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical settings from ``bmminer.conf`` (no fan keys means the automatic fan)."""
    out: dict[str, Any] = {}
    pools = conf.get("pools") or []
    if pools:
        out["pool_url"] = pools[0].get("url", "")
        out["pool_user"] = pools[0].get("user", "")
        out["pool_password"] = pools[0].get("pass", "")
    freq = as_float(conf.get("bitmain-freq"))
    out["frequency_mhz"] = freq if freq is not None else conf.get("bitmain-freq")
    custom = _flag(conf, "bitmain-fan-ctrl") == "true"
    out["fan_auto"] = not custom
    pwm = as_float(conf.get("bitmain-fan-pwm"))
    if custom and pwm is not None:
        out["fan_pct"] = pwm
    return out


def config_form(conf: Mapping[str, Any], changes: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The set_miner_conf form, in the script's order: current config overlaid with changes."""
    pools = list(conf.get("pools") or [])
    pools += [{}] * (3 - len(pools))
    first = dict(pools[0])
    for key, field in (("pool_url", "url"), ("pool_user", "user"), ("pool_password", "pass")):
        if key in changes:
            first[field] = changes[key]
    pools[0] = first
    current = conf_settings(conf)
    fan_auto = bool(changes.get("fan_auto", current["fan_auto"]))
    pwm = changes.get("fan_pct", current.get("fan_pct"))
    freq = changes.get("frequency_mhz", current.get("frequency_mhz"))
    values: dict[str, str] = {}
    for i, pool in enumerate(pools[:3], start=1):
        values[f"_ant_pool{i}url"] = str(pool.get("url", ""))
        values[f"_ant_pool{i}user"] = str(pool.get("user", ""))
        values[f"_ant_pool{i}pw"] = str(pool.get("pass", ""))
    values["_ant_nobeeper"] = _flag(conf, "bitmain-nobeeper")
    values["_ant_notempoverctrl"] = _flag(conf, "bitmain-notempoverctrl")
    values["_ant_fan_customize_switch"] = "false" if fan_auto else "true"
    values["_ant_fan_customize_value"] = "" if pwm is None else f"{int(round(float(pwm)))}"
    values["_ant_freq"] = "" if freq is None else (f"{float(freq):g}" if as_float(freq) is not None
                                                    else str(freq))
    values["_ant_voltage"] = str(conf.get("bitmain-voltage", ""))
    return [(name, values[name]) for name in FORM_ORDER]


class AntminerWeb(HttpClient):
    """The S9's CGI web interface (pass a digest-auth middleware)."""

    async def miner_conf(self) -> dict[str, Any]:
        """``bmminer.conf`` as JSON (a read: retried)."""
        conf = await self.get_json("/cgi-bin/get_miner_conf.cgi", command="get_miner_conf")
        if not isinstance(conf, dict):
            raise MalformedReply("get_miner_conf is not an object", unit=self.unit,
                                 command="get_miner_conf")
        return conf

    async def set_miner_conf(self, form: list[tuple[str, str]],
                             timeout: float = SET_CONF_TIMEOUT_S) -> str:
        """Post the form; the reply (``ok``) comes after bmminer restarted. A write: never retried."""
        status, body, _ = await self.send("POST", "/cgi-bin/set_miner_conf.cgi",
                                          command="set_miner_conf", form=form, timeout=timeout)
        self.check(status, body, "set_miner_conf")
        return body.strip()

    async def reboot(self) -> None:
        """Reboot the controller. The script answers without headers: that is success."""
        try:
            status, body, _ = await self.send("POST", "/cgi-bin/reboot.cgi", command="reboot")
        except (MalformedReply, ConnectionRefused) as exc:
            if isinstance(exc, ConnectionRefused) and not exc.detail.startswith("connection dropped"):
                raise                         # nothing listens: not a reboot
            log.debug("%s: reboot.cgi answered like a rebooting unit: %s", self.unit, exc.detail)
            return
        self.check(status, body, "reboot")
