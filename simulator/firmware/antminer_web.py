"""Antminer S9 web UI on port 80 (lighttpd + CGI shell scripts on the real unit).

What clients observe on a stock S9 (firmware 16.8.1.3, 2017):

* every path sits behind lighttpd's HTTP *digest* authentication, realm
  ``antMiner Configuration``, user ``root``/``root`` by default; without valid
  credentials the answer is ``401`` with
  ``WWW-Authenticate: Digest realm="antMiner Configuration", ...`` -- the header
  miner-management tools use to recognise an Antminer;
* ``/cgi-bin/get_system_info.cgi`` (``minertype`` = ``"Antminer S9"``),
  ``/cgi-bin/get_miner_conf.cgi`` (the bmminer.conf file, printed verbatim with
  its ``" : "`` spacing; the fan keys appear only while a custom fan is set);
* ``/cgi-bin/set_miner_conf.cgi``: a shell script that assigns the posted fields
  **by position**, whatever their names (pool 1-3 url/user/pw, ``_ant_nobeeper``,
  ``_ant_notempoverctrl``, ``_ant_fan_customize_switch``, ``_ant_fan_customize_value``,
  ``_ant_freq``); a field posted out of place lands in another variable with its
  ``name=`` still attached. It rewrites the config, restarts bmminer, sleeps and
  only then prints ``ok`` (``SET_CONF_REPLY_S`` simulated seconds). bmminer reads the
  config at start: a frequency it cannot parse leaves it at its default clock, while
  the config file keeps the text that was posted;
* ``/cgi-bin/minerStatus.cgi`` (HTML status page), ``/cgi-bin/reboot.cgi``: the
  script prints ``Reboot`` with no HTTP headers and reboots the controller, so
  the client sees a malformed reply; the web UI drops connections until the unit is
  back (set_miner_conf.cgi only restarts bmminer and the web UI stays up).

Sources: firmware_notes/antminer-s9.md (the S9 CGI scripts as published in public
firmware trees).
"""
from __future__ import annotations

import hashlib
import html
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from asic_reservoir.simulator.firmware.webserver import FirmwareWebServer

from asic_reservoir.simulator.firmware.cgminer_rpc import STOCK_API_ALLOW, STOCK_S9_API_GROUPS
from asic_reservoir.simulator.physics import SettingsError
from asic_reservoir.simulator.profiles import profile

log = logging.getLogger(__name__)

REALM = "antMiner Configuration"
# set_miner_conf.cgi's positional variables (case 0-13 of the stock S9 script)
SET_CONF_FIELDS = ("_ant_pool1url", "_ant_pool1user", "_ant_pool1pw",
                   "_ant_pool2url", "_ant_pool2user", "_ant_pool2pw",
                   "_ant_pool3url", "_ant_pool3user", "_ant_pool3pw",
                   "_ant_nobeeper", "_ant_notempoverctrl",
                   "_ant_fan_customize_switch", "_ant_fan_customize_value", "_ant_freq")
# Simulated seconds between the POST and the script's "ok": the published scripts sleep
# 1 + 5 s or 30 + 1 s after restarting bmminer; 25 s sits inside that 6-31 s range.
SET_CONF_REPLY_S = 25.0
NONCE_LIFETIME_S = 600.0
_UNAUTHORIZED_BODY = ('<?xml version="1.0" encoding="iso-8859-1"?>\n'
                      "<!DOCTYPE html>\n<html><head><title>401 - Unauthorized</title></head>"
                      "<body><h1>401 - Unauthorized</h1></body></html>\n")
_NOT_FOUND_BODY = ('<?xml version="1.0" encoding="iso-8859-1"?>\n'
                   "<!DOCTYPE html>\n<html><head><title>404 - Not Found</title></head>"
                   "<body><h1>404 - Not Found</h1></body></html>\n")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def parse_digest_header(value: str) -> dict[str, str]:
    """``Digest k="v", k2=v2`` -> dict (quoted commas survive)."""
    if not value.lower().startswith("digest "):
        return {}
    out: dict[str, str] = {}
    rest = value[7:]
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            if end < 0:
                return {}
            out[key] = rest[i + 1:end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            out[key] = rest[i:end].strip()
            i = end
    return out


class AntminerWebServer(FirmwareWebServer):
    """The S9's digest-protected CGI web interface, backed by a simulated unit."""

    def __init__(self, unit: Any, *, username: str = "root", password: str = "root") -> None:
        super().__init__()
        self.unit = unit
        self.profile = profile(unit.reading().model)
        self.username = username
        self.password = password
        self._nonces: dict[str, float] = {}
        self._extra_pools = [("", "", ""), ("", "", "")]   # pools 2 and 3 of bmminer.conf
        self._nobeeper = False
        self._notempoverctrl = False
        self._fan_ctrl = False
        self._fan_pwm = ""
        self._freq_text = f"{unit.settings()['frequency_mhz']:g}"
        self._rebooting = False
        self._reboot_seen = False
        self.app = web.Application(middlewares=[self._auth_middleware])
        self.app.router.add_route("*", "/", self._index)
        self.app.router.add_route("*", "/index.html", self._index)
        self.app.router.add_route("*", "/cgi-bin/get_system_info.cgi", self._get_system_info)
        self.app.router.add_route("*", "/cgi-bin/get_miner_conf.cgi", self._get_miner_conf)
        self.app.router.add_route("*", "/cgi-bin/set_miner_conf.cgi", self._set_miner_conf)
        self.app.router.add_route("*", "/cgi-bin/minerStatus.cgi", self._miner_status)
        self.app.router.add_route("*", "/cgi-bin/reboot.cgi", self._reboot)

    # ------------------------------------------------------------------ auth
    def _challenge(self) -> web.Response:
        now = time.monotonic()
        self._nonces = {n: t for n, t in self._nonces.items() if now - t < NONCE_LIFETIME_S}
        nonce = f"{int(time.time()):08x}:{secrets.token_hex(16)}"
        self._nonces[nonce] = now
        header = f'Digest realm="{REALM}", charset="UTF-8", algorithm=MD5, nonce="{nonce}", qop="auth"'
        return web.Response(status=401, text=_UNAUTHORIZED_BODY, content_type="text/html",
                            headers={"WWW-Authenticate": header})

    def _authorized(self, request: web.Request) -> bool:
        fields = parse_digest_header(request.headers.get("Authorization", ""))
        needed = ("username", "realm", "nonce", "uri", "response")
        if not fields or any(k not in fields for k in needed):
            return False
        if fields["username"] != self.username or fields["realm"] != REALM:
            return False
        if fields["nonce"] not in self._nonces or fields["uri"] != request.path_qs:
            return False
        if fields.get("algorithm", "MD5").upper() != "MD5":
            return False
        ha1 = _md5(f"{self.username}:{REALM}:{self.password}")
        ha2 = _md5(f"{request.method}:{fields['uri']}")
        qop = fields.get("qop")
        if qop:
            if qop != "auth" or "nc" not in fields or "cnonce" not in fields:
                return False
            expected = _md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:{qop}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
        return secrets.compare_digest(expected, fields["response"].lower())

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._rebooting:
            booting = self.unit.booting
            self._reboot_seen |= booting
            if booting or not self._reboot_seen:
                if request.transport is not None:
                    request.transport.close()  # the whole controller reboots: lighttpd is down
                raise web.HTTPServiceUnavailable()
            self._rebooting = self._reboot_seen = False
        if not self._authorized(request):
            return self._challenge()
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(status=404, text=_NOT_FOUND_BODY, content_type="text/html")

    # -------------------------------------------------------------- handlers
    async def _index(self, request: web.Request) -> web.Response:
        body = ("<!DOCTYPE html><html><head><title>antMiner Configuration</title></head>"
                '<body><h1>antMiner</h1><p><a href="/cgi-bin/minerStatus.cgi">Miner Status</a> | '
                '<a href="/cgi-bin/minerConfiguration.cgi">Miner Configuration</a></p></body></html>')
        return web.Response(text=body, content_type="text/html")

    async def _get_system_info(self, request: web.Request) -> web.Response:
        r = self.unit.reading()
        host = request.host.split(":")[0]
        info = {
            "minertype": self.profile.name, "nettype": "DHCP", "netdevice": "eth0",
            "macaddr": r.mac, "hostname": "antMiner", "ipaddress": host,
            "netmask": "255.255.255.0", "gateway": "", "dnsservers": "",
            "curtime": time.strftime("%H:%M:%S"), "uptime": _uptime_text(r.uptime_s),
            "loadaverage": "0.50, 0.45, 0.40", "mem_total": "248264", "mem_used": "71436",
            "mem_free": "176828", "mem_buffers": "0", "mem_cached": "0",
            "system_mode": "GNU/Linux",
            "ant_hwv": "16.8.1.3",
            "system_kernel_version": "Linux 3.14.0-xilinx-ge8a2f71-dirty #82 SMP PREEMPT Tue May 16 19:49:53 CST 2017",
            "system_filesystem_version": "Fri Nov 17 17:57:49 CST 2017",
            "cgminer_version": "2.0.0",
        }
        body = "{\n" + ",\n".join(f'"{k}":{json.dumps(v)}' for k, v in info.items()) + "\n}\n"
        return web.Response(text=body, content_type="text/plain")

    def _conf_pools(self) -> list[tuple[str, str, str]]:
        s = self.unit.settings()
        first = (str(s.get("pool_url", "")), str(s.get("pool_user", "")), str(s.get("pool_password", "")))
        return [first, *self._extra_pools]

    async def _get_miner_conf(self, request: web.Request) -> web.Response:
        pools = ",\n".join('{\n"url" : %s,\n"user" : %s,\n"pass" : %s\n}'
                           % (json.dumps(u), json.dumps(w), json.dumps(p)) for u, w, p in self._conf_pools())
        lines = ['"api-listen" : true', '"api-network" : true',
                 f'"api-groups" : "{STOCK_S9_API_GROUPS}"', f'"api-allow" : "{STOCK_API_ALLOW}"']
        if self._nobeeper:
            lines.append('"bitmain-nobeeper" : true')
        if self._notempoverctrl:
            lines.append('"bitmain-notempoverctrl" : true')
        if self._fan_ctrl:               # the script writes the fan keys only for a custom fan
            lines += ['"bitmain-fan-ctrl" : true', f'"bitmain-fan-pwm" : {json.dumps(self._fan_pwm)}']
        lines += ['"bitmain-use-vil" : true', f'"bitmain-freq" : {json.dumps(self._freq_text)}',
                  '"bitmain-voltage" : "0706"']
        conf = "{\n\"pools\" : [\n" + pools + "\n]\n,\n" + ",\n".join(lines) + "\n}\n"
        return web.Response(text=conf, content_type="text/plain")

    async def _set_miner_conf(self, request: web.Request) -> web.Response:
        fields = positional_fields((await request.read()).decode("utf-8", errors="replace"))
        url, user, pw = (fields[f"_ant_pool1{k}"] for k in ("url", "user", "pw"))
        if url:
            self._try_apply(pool_url=url, pool_user=user, pool_password=pw)
        self._extra_pools = [tuple(fields[f"_ant_pool{n}{k}"] for k in ("url", "user", "pw"))
                             for n in (2, 3)]
        self._nobeeper = fields["_ant_nobeeper"] == "true"
        self._notempoverctrl = fields["_ant_notempoverctrl"] == "true"
        self._fan_ctrl = fields["_ant_fan_customize_switch"] == "true"
        self._fan_pwm = fields["_ant_fan_customize_value"]
        if self._fan_ctrl:
            pwm = _number(self._fan_pwm)
            self._try_apply(fan_auto=False, **({} if pwm is None else {"fan_pct": pwm}))
        else:
            self._try_apply(fan_auto=True)
        self._freq_text = fields["_ant_freq"]
        freq = _number(self._freq_text)
        if freq is None or not self._try_apply(frequency_mhz=freq):
            log.info("S9 bitmain-freq %r is not a frequency: bmminer runs its default clock",
                     self._freq_text)
            self.unit.apply(frequency_mhz=self.profile.freq_default_mhz)
        self._spawn(self.unit.restart())          # /etc/init.d/bmminer.sh restart
        await self.unit.clock.sleep(SET_CONF_REPLY_S)
        return web.Response(text="ok", content_type="text/html")

    def _try_apply(self, **changes: Any) -> bool:
        """Store what bmminer will load; a value it would reject leaves the unit's own."""
        try:
            self.unit.apply(**changes)
        except SettingsError as exc:
            log.info("S9 config value refused at bmminer start: %s", exc)
            return False
        return True

    async def _miner_status(self, request: web.Request) -> web.Response:
        r = self.unit.reading()
        rows = "".join(
            f"<tr><td>{i + 1}</td><td>{c.chips}</td><td>{c.freq_mhz:.0f}</td>"
            f"<td>{c.rate_ghs:.2f}</td><td>{c.hw_errors}</td><td>{c.board_temp_c:.0f}</td>"
            f"<td>{c.chip_temp_c:.0f}</td><td>{html.escape(c.status)}</td></tr>" for i, c in enumerate(r.chains))
        fans = "".join(f"<td>{rpm:.0f}</td>" for rpm, _ in r.fans)
        body = (f"<!DOCTYPE html><html><head><title>Miner Status</title></head><body>"
                f"<h2>Summary</h2><table><tr><td>Elapsed</td><td>{_uptime_text(r.uptime_s)}</td></tr>"
                f"<tr><td>GH/S(RT)</td><td>{r.hashrate_ghs:.2f}</td></tr>"
                f"<tr><td>GH/S(avg)</td><td>{r.hashrate_avg_ghs:.2f}</td></tr>"
                f"<tr><td>Accepted</td><td>{r.accepted}</td></tr><tr><td>Rejected</td><td>{r.rejected}</td></tr>"
                f"<tr><td>HW</td><td>{r.hw_errors}</td></tr></table>"
                f"<h2>Pools</h2><table><tr><td>{html.escape(r.pool_url)}</td><td>{html.escape(r.pool_user)}</td>"
                f"<td>{'Alive' if r.pool_connected else 'Dead'}</td></tr></table>"
                f"<h2>AntMiner</h2><table><tr><th>Chain#</th><th>ASIC#</th><th>Frequency</th><th>GH/S(RT)</th>"
                f"<th>HW</th><th>Temp(PCB)</th><th>Temp(Chip)</th><th>ASIC status</th></tr>{rows}</table>"
                f"<h2>Fan</h2><table><tr>{fans}</tr></table></body></html>")
        return web.Response(text=body, content_type="text/html")

    async def _reboot(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:  # echo "Reboot": no status line, no headers
            request.transport.write(b"Reboot\n")
            request.transport.close()
        self._rebooting = True            # unlike set_miner_conf (bmminer only), lighttpd goes too
        self._spawn(self.unit.restart())
        raise web.HTTPServiceUnavailable()  # never reaches the client: the connection is gone



def positional_fields(body: str) -> dict[str, str]:
    """The script's reading of a form body: the i-th ``&``-field fills the i-th variable.

    The script strips the expected ``name=`` prefix; a field of another name keeps its
    whole ``name=value`` text. Fields beyond the last variable are ignored.
    """
    values = {name: "" for name in SET_CONF_FIELDS}
    for name, raw in zip(SET_CONF_FIELDS, body.split("&") if body else []):
        text = unquote_plus(raw)
        values[name] = text[len(name) + 1:] if text.startswith(name + "=") else text
    return values


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _uptime_text(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 86400}d{(s % 86400) // 3600}h{(s % 3600) // 60}m{s % 60}s"
