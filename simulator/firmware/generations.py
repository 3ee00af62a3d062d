"""Firmware generations the simulated units can run: one record per release a real unit ships.

A generation decides what the simulated unit does with a write (apply it live or store it
for the next restart), whether it can pause, and which version string it reports. Each
firmware module composes its release-specific API behaviour from small classes keyed by
the generation's name (``axeos.RELEASES``); nothing branches on version strings.
Behaviour and sources: firmware_notes/*.md ("What applies live, at restart, or not at all").
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

_POOL = frozenset({"pool_url", "pool_user", "pool_password"})
_ALL = frozenset({"frequency_mhz", "core_voltage_mv", "fan_auto", "fan_pct", "temp_target_c"}) | _POOL


@dataclass(frozen=True)
class Generation:
    """One firmware release of one model."""

    name: str
    model: str
    version: str                         # what the unit reports as its firmware version
    restart_keys: frozenset[str]         # settings stored now and loaded at the next restart
    pause: bool                          # the firmware can stop hashing without a restart
    summary: str
    # Pool settings the stratum task reads from storage each time it (re)connects, so a
    # stored write takes effect at the next reconnect (ESP-Miner v2.15.0: all of them;
    # v2.1.8: user and password, URL and port only at init).
    read_at_connect: frozenset[str] = frozenset()
    # How often the firmware reads its sensors (ESP-Miner's power_management_task POLL_RATE);
    # its API serves the last values read. 0: read when asked (no slower than a physics tick).
    sensor_poll_s: float = 0.0

    def applies_live(self, key: str) -> bool:
        return key not in self.restart_keys


GENERATIONS: Mapping[str, Generation] = MappingProxyType({g.name: g for g in (
    Generation("bmminer", "s9", "16.8.1.3", _ALL, False,
               "stock S9 bmminer (2017 web UI): every setting through set_miner_conf.cgi, "
               "which restarts bmminer"),
    Generation("lucky-2.1.8", "lv06", "v2.1.8", _POOL | {"frequency_mhz", "core_voltage_mv", "fan_auto"},
               False,
               "Lucky's ESP-Miner fork as shipped (estimate: upstream v2.1.8 behaviour): PATCH "
               "stores to NVS, clock/voltage/fan mode at restart, manual fan duty live; "
               "no asic/statistics/pause endpoints",
               read_at_connect=frozenset({"pool_user", "pool_password"}), sensor_poll_s=2.0),
    Generation("axeos-2.15", "lv06", "v2.15.0", _POOL, True,
               "current AxeOS: clock, voltage and fan live, pools as a list with ids, "
               "pause/resume, asic and statistics endpoints", read_at_connect=_POOL),
    Generation("goldshell-box", "lbbox", "2.2.5", frozenset(), True,
               "Goldshell Box-series web UI: stock plan (level 0), sleep (level 3, the "
               "firmware's pause), manual clocks and pools apply live"),
)})

DEFAULT_GENERATION: Mapping[str, str] = MappingProxyType(
    {"s9": "bmminer", "lv06": "lucky-2.1.8", "lbbox": "goldshell-box"})


# What the demo and the simulated fleet studies run: a current release wherever one applies
# settings live (a stock LV06 loads its clock at restart, so it could not carry an input).
DEMO_FIRMWARE: Mapping[str, str] = MappingProxyType({"lv06": "axeos-2.15"})


def generations_of(model: str) -> list[str]:
    return [g.name for g in GENERATIONS.values() if g.model == model]


def generation(model: str, name: str | None = None) -> Generation:
    """The named generation of ``model`` (its stock firmware when ``name`` is None)."""
    name = DEFAULT_GENERATION[model] if name is None else name
    found = GENERATIONS.get(name)
    if found is None or found.model != model:
        raise ValueError(f"unknown {model} firmware {name!r}; choose one of "
                         f"{', '.join(generations_of(model))}")
    return found
