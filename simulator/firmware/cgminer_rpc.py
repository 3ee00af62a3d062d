"""cgminer-family RPC on TCP 4028: the S9's bmminer and the LB-Box's cgminer-style API.

Behaviour follows bmminer's ``api.c`` (Bitmain's cgminer 4.x fork, S9 firmware
16.8.1.3) and its S9 driver ``driver-btm-c5.c``:

* one request per connection, answered once, then the server closes; the reply
  ends with a NUL byte;
* JSON requests ``{"command": "summary", "parameter": ...}`` or text requests
  ``summary|param``; ``+`` joins report commands (``summary+devs``);
* ``STATUS`` header with ``STATUS/When/Code/Msg/Description``; codes 7 pools,
  9 devs, 11 summary, 14 invalid command, 22 version, 23 invalid JSON,
  24 missing ``command``, 33 config, 45 access denied, 70 stats;
* ``stats`` prints its two objects without a comma (``}{``), a quirk every
  robust client repairs; ``"GHS 5s"`` and ``chain_rateN`` are strings, the
  latter empty for absent chains; active S9 chains sit in slots 6/7/8 and fans
  in slots 5/6 as on the real controller;
* while the unit boots (restart), the miner process is down: connections are
  closed without a reply (the real port refuses them);
* access control by ``api-groups``/``api-allow``.  Stock S9 firmware ships
  ``A:stats:pools:devs:summary:version`` with ``A:0/0,W:*`` (``W:*`` is not a
  valid address, so nobody is privileged): every other command answers 45.
  The simulated S9 additionally grants ``config``, ``addpool`` and
  ``switchpool`` to group A so the toolkit can change pools over RPC (the
  issue asks for it); pass ``api_groups=STOCK_S9_API_GROUPS`` for the exact
  stock behaviour.  ``switchpool`` hands the pool to ``unit.apply``: the
  simulated S9 keeps pool changes for its next restart (its config path),
  where real bmminer would switch at once -- a known difference.

The LB-Box speaks the same wire protocol; Goldshell's Box firmware banner is
``intminer 5.4.2`` (a bfgminer 5.4.2 fork, observed on a sibling Box unit) with
``devs`` carrying ``MHS 20s``/``tstemp-N`` and a ``}{`` in ``stats``; a captured SC-BOX
``devs`` names its board ``"INCS"`` and gives hash rates in MH/s
(goldshell-box-tools-productguy ``tests/fixtures/api4028_devs.json``).  Its field set beyond
those keys is an estimate (see firmware_notes/).
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asic_reservoir.simulator.firmware.apiformat import (
    Fixed,
    Items,
    bitmain_rate_string,
    render_items,
    suffix_string,
)
from asic_reservoir.simulator.physics import SettingsError
from asic_reservoir.simulator.profiles import profile

log = logging.getLogger(__name__)

STOCK_S9_API_GROUPS = "A:stats:pools:devs:summary:version"
SIM_S9_API_GROUPS = STOCK_S9_API_GROUPS + ":config:addpool:switchpool"
STOCK_API_ALLOW = "A:0/0,W:*"
LBBOX_API_ALLOW = "R:0/0"          # every read-only command, nothing privileged

RECV_LIMIT = 8191                  # bmminer reads one recv() into an 8 KiB buffer
S9_CHAIN_SLOTS = (6, 7, 8)         # chain_exist[] indices 5..7 on the S9 controller
S9_FAN_SLOTS = (5, 6)              # fan_speed_value[] indices 4..5
MAX_CHAIN_NUM = 16
MAX_FAN_NUM = 8
S9_MINER_VERSION = "16.8.1.3"
S9_COMPILE_TIME = "Fri Nov 17 17:37:49 CST 2017"

# Message codes and texts from bmminer's api.c codes[] table.
MSG_POOL, MSG_NOPOOL, MSG_DEVS, MSG_SUMM, MSG_INVCMD = 7, 8, 9, 11, 14
MSG_VERSION, MSG_INVJSON, MSG_MISCMD, MSG_MISPID, MSG_INVPID, MSG_SWITCHP = 22, 23, 24, 25, 26, 27
MSG_MINECONFIG, MSG_ACCDENY, MSG_MISPDP, MSG_INVPDP, MSG_ADDPOOL = 33, 45, 52, 53, 55
MSG_DEVDETAILS, MSG_MINESTATS = 69, 70


@dataclass(frozen=True)
class _Command:
    name: str
    writemode: bool
    joinable: bool


# The command table of bmminer's api.c (name, iswritemode, joinable).
_COMMANDS = {c.name: c for c in (
    _Command("version", False, True), _Command("config", False, True),
    _Command("devs", False, True), _Command("edevs", False, True),
    _Command("pools", False, True), _Command("summary", False, True),
    _Command("noncenum", False, True), _Command("pgacount", False, True),
    _Command("switchpool", True, False), _Command("addpool", True, False),
    _Command("poolpriority", True, False), _Command("poolquota", True, False),
    _Command("enablepool", True, False), _Command("disablepool", True, False),
    _Command("removepool", True, False), _Command("save", True, False),
    _Command("quit", True, False), _Command("privileged", True, False),
    _Command("notify", False, True), _Command("devdetails", False, True),
    _Command("restart", True, False), _Command("stats", False, True),
    _Command("estats", False, True), _Command("check", False, False),
    _Command("failover-only", True, False), _Command("coin", False, True),
    _Command("debug", True, False), _Command("setconfig", True, False),
    _Command("usbstats", False, True), _Command("zero", True, False),
    _Command("hotplug", True, False), _Command("asc", False, False),
    _Command("ascenable", True, False), _Command("ascdisable", True, False),
    _Command("ascidentify", True, False), _Command("ascset", True, False),
    _Command("asccount", False, True), _Command("lcd", False, True),
    _Command("lockstats", True, True),
)}


@dataclass(frozen=True)
class _Access:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    group: str


def parse_api_allow(spec: str) -> list[_Access]:
    """cgminer's ``--api-allow``: ``[G:]IP[/prefix],...``; unparsable entries are skipped.

    ``0/0`` means every address; ``W:*`` (stock S9) is not an address and is
    dropped, exactly as cgminer's setup_ipaccess drops it.
    """
    out: list[_Access] = []
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        group = "R"
        if len(entry) > 1 and entry[1] == ":" and entry[0].isalpha():
            group, entry = entry[0].upper(), entry[2:]
        if entry == "0/0":
            out.append(_Access(ipaddress.ip_network("0.0.0.0/0"), group))
            continue
        try:
            out.append(_Access(ipaddress.ip_network(entry, strict=False), group))
        except ValueError:
            continue
    return out


def parse_api_groups(spec: str) -> dict[str, set[str]]:
    """``--api-groups G:cmd:cmd,...`` -> {group: commands}; ``*`` adds every read command."""
    groups: dict[str, set[str]] = {}
    for part in spec.split(","):
        part = part.strip()
        if len(part) < 2 or part[1] != ":":
            raise ValueError(f"API invalid group name {part!r}")
        group = part[0].upper()
        if group in ("W", "R"):
            raise ValueError(f"API group name can't be {group!r}")
        cmds: set[str] = set()
        for name in part[2:].split(":"):
            if name == "*":
                cmds |= {c.name for c in _COMMANDS.values() if not c.writemode}
            elif name.lower() in _COMMANDS:
                cmds.add(name.lower())
            elif name:
                raise ValueError(f"API unknown command {name!r} in group {group!r}")
        groups[group] = cmds
    groups["R"] = {c.name for c in _COMMANDS.values() if not c.writemode}
    return groups


@dataclass
class _Pool:
    url: str
    user: str
    password: str


class _Reply:
    """Accumulates a reply the way api.c's io_data does (JSON or text mode)."""

    def __init__(self, isjson: bool, description: str) -> None:
        self.isjson = isjson
        self.description = description
        self.parts: list[str] = []

    def message(self, code: int, msg: str, severity: str = "S") -> None:
        items: Items = [("STATUS", severity), ("When", int(time.time())), ("Code", code),
                        ("Msg", msg), ("Description", self.description)]
        if self.isjson:
            self.parts.append('{"STATUS":[' + render_items(items) + "]")
        else:
            self.parts.append(render_items(items, False))

    def section(self, name: str, objects: list[Items], *, text_header: bool = False,
                missing_comma: bool = False) -> None:
        if self.isjson:
            sep = "" if missing_comma else ","
            self.parts.append(f',"{name}":[' + sep.join(render_items(o) for o in objects) + "]")
        else:
            head = f"{name}," if text_header else ""
            self.parts.append(head + "".join(render_items(o, False) for o in objects))

    def text(self) -> str:
        return "".join(self.parts)


class CgminerRpcServer:
    """bmminer (S9) or Goldshell cgminer-style (LB-Box) RPC for one simulated unit."""

    def __init__(self, unit: Any, *, api_groups: str | None = None,
                 api_allow: str | None = None, recv_timeout: float = 10.0) -> None:
        self.unit = unit
        model = unit.reading().model
        if model not in ("s9", "lbbox"):
            raise ValueError(f"no cgminer RPC on model {model!r}")
        self.model = model
        self.profile = profile(model)
        if model == "s9":
            groups, allow = SIM_S9_API_GROUPS, STOCK_API_ALLOW
            self.description = "bmminer 1.0.0"
        else:
            groups, allow = "A:version", LBBOX_API_ALLOW
            self.description = "intminer 5.4.2"
        self.groups = parse_api_groups(api_groups if api_groups is not None else groups)
        self.access = parse_api_allow(api_allow if api_allow is not None else allow)
        self.recv_timeout = recv_timeout
        self._server: asyncio.base_events.Server | None = None
        self._added: list[_Pool] = []
        self.port: int | None = None

    # ------------------------------------------------------------------ server
    async def start(self, host: str = "127.0.0.1", port: int = 4028) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("%s RPC listening on %s:%d", self.model, host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = writer.get_extra_info("peername")
            group = self._group_for(peer[0] if peer else "")
            if group is None:       # cgminer ignores the connection: close without a reply
                return
            if self.unit.booting:   # the miner process is down while the unit boots
                return
            try:
                raw = await asyncio.wait_for(reader.read(RECV_LIMIT), self.recv_timeout)
            except asyncio.TimeoutError:
                return
            reply = self.handle_request(raw, group)
            writer.write(reply)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("rpc connection dropped: %s", exc)
        except Exception:           # a bug must not take the listener down
            log.exception("rpc request failed")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _group_for(self, ip: str) -> str | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        for acc in self.access:
            if addr.version == acc.network.version and addr in acc.network:
                return acc.group
        return None

    # --------------------------------------------------------------- protocol
    def handle_request(self, raw: bytes, group: str = "A") -> bytes:
        """One request -> the full reply bytes (NUL-terminated), as api.c builds it."""
        if not raw.startswith(b"{"):
            raw = raw.split(b"\x00", 1)[0]      # text requests are C strings: NUL ends them
        text = raw.decode("utf-8", errors="replace")
        param: str | None = None
        if not text.startswith("{"):
            isjson = False
            cmd, sep, rest = text.partition("|")
            param = rest if sep else None
        else:
            isjson = True
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                return self._single_message(MSG_INVJSON, "Invalid JSON", isjson, "E")
            if "command" not in obj:
                return self._single_message(MSG_MISCMD, "Missing JSON 'command'", isjson, "E")
            if not isinstance(obj["command"], str):
                return self._single_message(MSG_INVCMD, "Invalid command", isjson, "E")
            cmd = obj["command"]
            p = obj.get("parameter")
            if isinstance(p, str):
                param = p
            elif isinstance(p, bool):
                param = None
            elif isinstance(p, int):
                param = "%d" % p
            elif isinstance(p, float):
                param = "%f" % p

        if "+" in cmd:
            return self._joined(cmd, isjson, group)
        reply = _Reply(isjson, self.description)
        self._dispatch(reply, cmd, param, group)
        return self._finish(reply.text(), isjson)

    def _finish(self, body: str, isjson: bool) -> bytes:
        if isjson:
            body += ',"id":1}'
        return body.encode("utf-8") + b"\x00"

    def _single_message(self, code: int, msg: str, isjson: bool, severity: str) -> bytes:
        reply = _Reply(isjson, self.description)
        reply.message(code, msg, severity)
        return self._finish(reply.text(), isjson)

    def _joined(self, cmds: str, isjson: bool, group: str) -> bytes:
        out: list[str] = ["{"] if isjson else []
        seen: set[str] = set()
        first = True
        for name in cmds.split("+"):
            if not name or name in seen:
                continue
            command = _COMMANDS.get(name)
            if command is not None:
                seen.add(name)
            if isjson:
                out.append(("" if first else ",") + json.dumps(name) + ":[")
            else:
                out.append(f"CMD={name}|")
            first = False
            reply = _Reply(isjson, self.description)
            if command is not None and not command.joinable:
                reply.message(MSG_ACCDENY, f"Access denied to '{name}' command", "E")
            else:
                self._dispatch(reply, name, None, group)
            out.append(reply.text())
            if isjson:
                out.append(',"id":1}]')
        return self._finish("".join(out), isjson)

    def _dispatch(self, reply: _Reply, name: str, param: str | None, group: str) -> None:
        if name not in _COMMANDS:
            reply.message(MSG_INVCMD, "Invalid command", "E")
            return
        if group != "W" and name not in self.groups.get(group, set()):
            reply.message(MSG_ACCDENY, f"Access denied to '{name}' command", "E")
            return
        handler: Callable[[_Reply, str | None], None] | None = getattr(
            self, "_cmd_" + name.replace("-", "_"), None)
        if handler is None:     # allowed but not emulated: answer as a firmware without it
            reply.message(MSG_INVCMD, "Invalid command", "E")
            return
        handler(reply, param)

    # --------------------------------------------------------------- commands
    def _cmd_version(self, reply: _Reply, param: str | None) -> None:
        if self.model == "s9":
            reply.message(MSG_VERSION, "BMMiner versions")
            items: Items = [("BMMiner", "2.0.0"), ("API", "3.1"), ("Miner", S9_MINER_VERSION),
                            ("CompileTime", S9_COMPILE_TIME), ("Type", self.profile.name)]
        else:
            reply.message(MSG_VERSION, "intminer versions")
            items = [("intminer", "5.4.2"), ("API", "3.1")]
        reply.section("VERSION", [items], text_header=True)

    def _cmd_summary(self, reply: _Reply, param: str | None) -> None:
        r = self.unit.reading()
        reply.message(MSG_SUMM, "Summary")
        elapsed = max(float(r.uptime_s), 0.0)
        total_mh = r.hashrate_avg_ghs * 1000.0 * elapsed
        diff1 = float(r.difficulty_accepted)
        hwp = r.hw_errors / (r.hw_errors + diff1) if (r.hw_errors + diff1) else 0.0
        if self.model == "s9":
            rates: Items = [("GHS 5s", bitmain_rate_string(r.hashrate_ghs * 1e9, 7)),
                            ("GHS av", Fixed(r.hashrate_avg_ghs))]
        else:
            rates = [("MHS av", Fixed(r.hashrate_avg_ghs * 1000.0)),
                     ("MHS 20s", Fixed(r.hashrate_ghs * 1000.0))]
        minutes = elapsed / 60.0 if elapsed else 1.0
        bfg = self.model != "s9"        # intminer is bfgminer-derived: a few bfgminer fields
        items: Items = [
            ("Elapsed", int(elapsed)), *rates,
            ("Found Blocks", 0), ("Getworks", 0), ("Accepted", int(r.accepted)),
            ("Rejected", int(r.rejected)), ("Hardware Errors", int(r.hw_errors)),
            ("Utility", Fixed(r.accepted / minutes)), ("Discarded", 0), ("Stale", int(r.stale)),
            ("Get Failures", 0), ("Local Work", 0), ("Remote Failures", 0), ("Network Blocks", 0),
            ("Total MH", Fixed(total_mh, "%.4f")),
            *([("Diff1 Work", Fixed(diff1, "%.8f"))] if bfg else []),
            ("Work Utility", Fixed(diff1 / minutes)),
            ("Difficulty Accepted", Fixed(diff1, "%.8f")),
            ("Difficulty Rejected", Fixed(0.0, "%.8f")), ("Difficulty Stale", Fixed(0.0, "%.8f")),
            ("Best Share", Fixed(float(r.best_share), "%.8f") if bfg else int(r.best_share)),
            ("Device Hardware%", Fixed(hwp * 100, "%.4f")),
            ("Device Rejected%", Fixed(0.0, "%.4f")), ("Pool Rejected%", Fixed(0.0, "%.4f")),
            ("Pool Stale%", Fixed(0.0, "%.4f")), ("Last getwork", int(time.time())),
        ]
        reply.section("SUMMARY", [items], text_header=True)

    def _cmd_devs(self, reply: _Reply, param: str | None) -> None:
        r = self.unit.reading()
        elapsed = int(max(r.uptime_s, 0))
        diff1 = float(r.difficulty_accepted)
        hwp = r.hw_errors / (r.hw_errors + diff1) if (r.hw_errors + diff1) else 0.0
        if self.model == "s9":
            reply.message(MSG_DEVS, "1 ASC(s)")
            dev: Items = [
                ("ASC", 0), ("Name", "BC5"), ("ID", 0), ("Enabled", "Y"), ("Status", "Alive"),
                ("Temperature", Fixed(float(r.chip_temp_c))),
                ("MHS av", Fixed(r.hashrate_avg_ghs * 1000.0)), ("MHS 5s", Fixed(r.hashrate_ghs * 1000.0)),
                ("Accepted", int(r.accepted)), ("Rejected", int(r.rejected)),
                ("Hardware Errors", int(r.hw_errors)),
                ("Utility", Fixed(r.accepted / (elapsed / 60.0) if elapsed else 0.0)),
                ("Last Share Pool", 0 if r.accepted else -1), ("Last Share Time", 0),
                ("Total MH", Fixed(r.hashrate_avg_ghs * 1000.0 * elapsed, "%.4f")),
                ("Diff1 Work", int(diff1)), ("Difficulty Accepted", Fixed(diff1, "%.8f")),
                ("Difficulty Rejected", Fixed(0.0, "%.8f")),
                ("Last Share Difficulty", Fixed(float(r.pool_difficulty), "%.8f")),
                # no "No Device": it is printed only under USE_USBUTILS, which a bitmain-c5
                # build does not define (configure.ac: no USB driver enabled)
                ("Last Valid Work", int(time.time())),
                ("Device Hardware%", Fixed(hwp * 100, "%.4f")),
                ("Device Rejected%", Fixed(0.0, "%.4f")), ("Device Elapsed", elapsed),
            ]
            reply.section("DEVS", [dev])
            return
        chains = list(r.chains)
        reply.message(MSG_DEVS, f"{len(chains)} PGA(s)")
        devs: list[Items] = []
        fans = list(r.fans)
        for i, c in enumerate(chains):
            share = c.rate_ghs / r.hashrate_ghs if r.hashrate_ghs else 1.0 / max(len(chains), 1)
            mhs_av = r.hashrate_avg_ghs * 1000.0 * share
            fan_items: Items = [(f"fan{j}", int(rpm)) for j, (rpm, _pwm) in enumerate(fans)]
            devs.append([
                # bfgminer devstatus_an fields ...
                ("PGA", i), ("Name", "INCS"), ("ID", i), ("Enabled", "Y"), ("Status", "Alive"),
                ("Temperature", Fixed(float(c.chip_temp_c))), ("Device Elapsed", elapsed),
                ("MHS av", Fixed(mhs_av)), ("MHS 20s", Fixed(c.rate_ghs * 1000.0)),
                ("MHS rolling", Fixed(c.rate_ghs * 1000.0)),
                ("Accepted", int(r.accepted * share)), ("Rejected", int(r.rejected * share)),
                ("Hardware Errors", int(c.hw_errors)),
                ("Utility", Fixed(r.accepted * share / (elapsed / 60.0) if elapsed else 0.0)),
                ("Stale", 0), ("Total MH", Fixed(mhs_av * elapsed, "%.4f")),
                ("Diff1 Work", Fixed(diff1 * share, "%.8f")),
                ("Difficulty Accepted", Fixed(diff1 * share, "%.8f")),
                ("Difficulty Rejected", Fixed(0.0, "%.8f")), ("Difficulty Stale", Fixed(0.0, "%.8f")),
                ("Device Hardware%", Fixed(hwp * 100, "%.4f")), ("Device Rejected%", Fixed(0.0, "%.4f")),
                # ... then the Goldshell driver's extras (keys seen on Box-series firmware)
                ("Nonced", int(r.accepted * share)), ("clock", int(round(c.freq_mhz))), *fan_items,
                ("tstemp-0", Fixed(float(c.chip_temp_c), "%.1f")),
                ("tstemp-1", Fixed(float(c.chip_temp_c), "%.1f")),
                ("tstemp-2", Fixed(float(c.board_temp_c), "%.1f")),
                ("overheat", 0), ("rebootcnt", 0), ("hwerr-ration", Fixed(hwp * 100, "%.4f")),
                ("voltage", Fixed(r.core_voltage_actual_mv / 1000.0)),
            ])
        reply.section("DEVS", devs)

    def _cmd_devdetails(self, reply: _Reply, param: str | None) -> None:
        """bfgminer lists device details under ``DEVS`` (not ``DEVDETAILS``), one per board."""
        r = self.unit.reading()
        reply.message(MSG_DEVDETAILS, "Device Details")
        details = [[("DEVDETAILS", i), ("Name", "INCS"), ("ID", i), ("Processors", 1),
                    ("Driver", "intchains"), ("Model", self.profile.name),
                    ("Device Path", f"/dev/ttyS{i + 1}"), ("Target Temperature", 0),
                    ("Cutoff Temperature", 0), ("chips-nr", int(c.chips))] for i, c in enumerate(r.chains)]
        reply.section("DEVS", details)

    def _cmd_stats(self, reply: _Reply, param: str | None) -> None:
        r = self.unit.reading()
        if self.model == "s9":
            reply.message(MSG_MINESTATS, "BMMiner stats")
            head: Items = [("BMMiner", "2.0.0"), ("Miner", S9_MINER_VERSION),
                           ("CompileTime", S9_COMPILE_TIME), ("Type", self.profile.name)]
            body = self._s9_stats(r)
        else:
            reply.message(MSG_MINESTATS, "intminer stats")
            head = [("intminer", "5.4.2"), ("Type", self.profile.name)]
            body = self._lbbox_stats(r)
        reply.section("STATS", [head, body], missing_comma=True)

    def _stats_prefix(self, r: Any, sid: str) -> Items:
        return [("STATS", 0), ("ID", sid), ("Elapsed", int(max(r.uptime_s, 0))), ("Calls", 0),
                ("Wait", Fixed(0.0, "%.6f")), ("Max", Fixed(0.0, "%.6f")),
                ("Min", Fixed(99999999.0, "%.6f"))]

    def _s9_stats(self, r: Any) -> Items:
        chains = {S9_CHAIN_SLOTS[i]: c for i, c in enumerate(r.chains) if i < len(S9_CHAIN_SLOTS)}
        fans = {S9_FAN_SLOTS[i]: rpm for i, (rpm, _pwm) in enumerate(r.fans) if i < len(S9_FAN_SLOTS)}
        slots = range(1, MAX_CHAIN_NUM + 1)
        items: list = self._stats_prefix(r, "BC50")
        items += [("GHS 5s", bitmain_rate_string(r.hashrate_ghs * 1e9, 7)),
                  ("GHS av", Fixed(r.hashrate_avg_ghs)), ("miner_count", len(chains)),
                  ("frequency", "%d" % round(r.frequency_mhz)), ("fan_num", len(fans))]
        items += [(f"fan{n}", int(fans.get(n, 0))) for n in range(1, MAX_FAN_NUM + 1)]
        items += [("temp_num", len(chains))]
        items += [(f"temp{n}", int(round(chains[n].board_temp_c)) if n in chains else 0) for n in slots]
        items += [(f"temp2_{n}", int(round(chains[n].chip_temp_c)) if n in chains else 0) for n in slots]
        items += [(f"temp3_{n}", 0) for n in slots]
        items += [(f"freq_avg{n}", Fixed(chains[n].freq_mhz if n in chains else 0.0)) for n in slots]
        total_chips = sum(int(c.chips) for c in chains.values())
        avg_freq = (sum(c.freq_mhz * c.chips for c in chains.values()) / total_chips) if total_chips else 0.0
        items += [("total_rateideal", Fixed(r.hashrate_ideal_ghs)), ("total_freqavg", Fixed(avg_freq)),
                  ("total_acn", total_chips),
                  ("total_rate", Fixed(sum(c.rate_ghs for c in chains.values())))]
        items += [(f"chain_rateideal{n}", Fixed(chains[n].rate_ideal_ghs if n in chains else 0.0))
                  for n in slots]
        diff1 = float(r.difficulty_accepted)
        hwp = r.hw_errors / (r.hw_errors + diff1) if (r.hw_errors + diff1) else 0.0
        items += [("temp_max", int(round(r.chip_temp_c))), ("Device Hardware%", Fixed(hwp * 100, "%.4f")),
                  ("no_matching_work", int(r.hw_errors))]
        items += [(f"chain_acn{n}", int(chains[n].chips) if n in chains else 0) for n in slots]
        items += [(f"chain_acs{n}", _grouped_status(chains[n].status) if n in chains else "") for n in slots]
        items += [(f"chain_hw{n}", int(chains[n].hw_errors) if n in chains else 0) for n in slots]
        items += [(f"chain_rate{n}", bitmain_rate_string(chains[n].rate_ghs * 1e9, 6) if n in chains else "")
                  for n in slots]
        items += [(f"chain_xtime{n}", _xtime(chains[n].status)) for n in sorted(chains)]
        items += [(f"chain_offside_{n}", "0") for n in sorted(chains)]
        # isChainAllCoresOpened (clement-bitmain.c): "1" once every core of the chain opened
        items += [(f"chain_opencore_{n}", "1" if set(chains[n].status) <= {"o"} else "0")
                  for n in sorted(chains)]
        items += [("miner_version", S9_MINER_VERSION)]
        return items

    def _lbbox_stats(self, r: Any) -> Items:
        items: list = self._stats_prefix(r, "CPB0")
        items += [("fan_num", len(r.fans))]
        items += [(f"fan{j}", int(rpm)) for j, (rpm, _pwm) in enumerate(r.fans)]
        items += [("temp_num", len(r.chains))]
        items += [(f"temp{j}", int(round(c.board_temp_c))) for j, c in enumerate(r.chains)]
        items += [("temp_max", 0),                      # reads 0 on Box firmware
                  ("total_rateideal", Fixed(r.hashrate_ideal_ghs * 1000.0)), ("rate_unit", "MH")]
        return items

    def _pool_list(self) -> list[_Pool]:
        """Pool 0 is the one bmminer is running on; added pools follow in order.

        The live pool comes from the unit, so a change held for the next restart
        (S9 config) shows up here only once the unit has restarted, as in bmminer.
        """
        r = self.unit.reading()
        live = _Pool(r.pool_url, r.pool_user, "")
        for p in self._added:
            if (p.url, p.user) == (live.url, live.user):
                live.password = p.password
        others = [p for p in self._added if (p.url, p.user) != (live.url, live.user)]
        return [live, *others]

    def _cmd_pools(self, reply: _Reply, param: str | None) -> None:
        r = self.unit.reading()
        pools = self._pool_list()
        reply.message(MSG_POOL, f"{len(pools)} Pool(s)")
        objs: list[Items] = []
        for i, p in enumerate(pools):
            active = i == 0
            objs.append([
                ("POOL", i), ("URL", p.url),
                ("Status", "Alive" if not active or r.pool_connected else "Dead"),
                ("Priority", i), ("Quota", 1), ("Long Poll", "N"), ("Getworks", 0),
                ("Accepted", int(r.accepted) if active else 0),
                ("Rejected", int(r.rejected) if active else 0), ("Discarded", 0),
                ("Stale", int(r.stale) if active else 0),
                ("Get Failures", 0), ("Remote Failures", 0), ("User", p.user),
                ("Last Share Time", _since(r.last_share_time, r.time_s) if active else "0"),
                ("Diff", suffix_string(r.pool_difficulty) if active else ""),
                ("Diff1 Shares", int(r.difficulty_accepted) if active else 0),
                ("Proxy Type", ""), ("Proxy", ""),
                ("Difficulty Accepted", Fixed(float(r.difficulty_accepted) if active else 0.0, "%.8f")),
                ("Difficulty Rejected", Fixed(0.0, "%.8f")), ("Difficulty Stale", Fixed(0.0, "%.8f")),
                ("Last Share Difficulty", Fixed(float(r.pool_difficulty) if active else 0.0, "%.8f")),
                ("Has Stratum", True), ("Stratum Active", active and bool(r.pool_connected)),
                ("Stratum URL", _host_of(p.url) if active else ""), ("Has GBT", False),
                ("Best Share", int(r.best_share) if active else 0),
                ("Pool Rejected%", Fixed(0.0, "%.4f")), ("Pool Stale%", Fixed(0.0, "%.4f")),
            ])
        reply.section("POOLS", objs)

    def _cmd_config(self, reply: _Reply, param: str | None) -> None:
        pools = self._pool_list()
        reply.message(MSG_MINECONFIG, "BMMiner config" if self.model == "s9" else "intminer config")
        items: Items = [("ASC Count", 1 if self.model == "s9" else 0),
                        ("PGA Count", 0 if self.model == "s9" else len(self.unit.reading().chains)),
                        ("Pool Count", len(pools)), ("Strategy", "Failover"), ("Log Interval", 5),
                        ("Device Code", "BC5 " if self.model == "s9" else "CPB "),
                        ("OS", "Linux"), ("Failover-Only", False), ("ScanTime", 60), ("Queue", 1),
                        ("Expiry", 120), ("Hotplug", "None")]
        reply.section("CONFIG", [items], text_header=True)

    def _cmd_addpool(self, reply: _Reply, param: str | None) -> None:
        if not param:
            reply.message(MSG_MISPDP, "Missing addpool details", "E")
            return
        fields = _split_escaped(param)
        if len(fields) != 3 or not fields[0]:
            reply.message(MSG_INVPDP, f"Invalid addpool details '{param}'", "E")
            return
        self._added.append(_Pool(*fields))
        reply.message(MSG_ADDPOOL, f"Added pool {len(self._pool_list()) - 1}: '{fields[0]}'")

    def _cmd_switchpool(self, reply: _Reply, param: str | None) -> None:
        """Point the unit at pool N.  The unit decides when it takes effect: the
        simulated S9 keeps pool changes for its next restart (see module notes)."""
        pools = self._pool_list()
        if param is None or param == "":
            reply.message(MSG_MISPID, "Missing pool id parameter", "E")
            return
        try:
            idx = int(param)
        except ValueError:
            idx = -1
        if not 0 <= idx < len(pools):
            reply.message(MSG_INVPID, f"Invalid pool id {idx} - range is 0 - {len(pools) - 1}", "E")
            return
        target = pools[idx]
        if idx != 0:
            try:
                self.unit.apply(pool_url=target.url, pool_user=target.user,
                                pool_password=target.password)
            except SettingsError as exc:      # the unit refuses the pool
                reply.message(MSG_INVPDP, f"Invalid addpool details '{exc}'", "E")
                return
            live = pools[0]
            if all((p.url, p.user) != (live.url, live.user) for p in self._added):
                self._added.insert(0, live)   # keep the old pool listed as a backup
        reply.message(MSG_SWITCHP, f"Switching to pool {idx}:'{target.url}'")


def _grouped_status(status: str) -> str:
    """bmminer prints chip status in groups of eight, each group led by a space."""
    return "".join((" " if j % 8 == 0 else "") + ch for j, ch in enumerate(status))


def _xtime(status: str) -> str:
    return "{" + ",".join(f"X{j}=1" for j, ch in enumerate(status) if ch == "x") + "}"


def _since(last: float | None, now: float) -> str:
    """cgminer's "Last Share Time" as ``H:MM:SS`` ago ("0" before the first share)."""
    if last is None:
        return "0"
    ago = int(max(now - last, 0))
    return f"{ago // 3600}:{(ago % 3600) // 60:02d}:{ago % 60:02d}"


def _host_of(url: str) -> str:
    """cgminer's extract_sockaddr (util.c): the address without scheme, port or [] (the
    port goes to ``stratum_port``), which ``pools`` prints as "Stratum URL"."""
    rest = url.split("//", 1)[-1]
    if rest.startswith("[") and "]" in rest:
        return rest[1:rest.index("]")]
    return rest.split(":", 1)[0]


def _split_escaped(param: str) -> list[str]:
    """cgminer splits ``URL,USR,PASS`` on commas; ``\\,`` is a literal comma."""
    fields, cur, esc = [], [], False
    for ch in param:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields
