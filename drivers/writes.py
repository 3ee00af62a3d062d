"""What a settings write did on the unit: per setting, applied, pending a restart, or not applied.

A firmware that answers "ok" has only received the request. A write counts as
``applied`` when the unit reads the setting back *and*, where the firmware reports the
running value (bmminer's ``frequency``, AxeOS ``expectedHashrate``, the Goldshell
``clock``), the running value shows it. A setting stored but not yet running is
``pending_restart``; a setting that does not read back is ``not_applied``. Every outcome
carries its evidence, so a run file or the ``set`` command can say *why*.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

APPLIED = "applied"
PENDING_RESTART = "pending_restart"
NOT_APPLIED = "not_applied"
STATUSES = (APPLIED, PENDING_RESTART, NOT_APPLIED)

# How close a read-back must be to count as the commanded value (firmware rounds).
TOLERANCE = {"frequency_mhz": 1.0, "core_voltage_mv": 1.0, "fan_pct": 1.0, "temp_target_c": 0.5}


def same_value(key: str, a: Any, b: Any) -> bool:
    """Commanded and read-back value agree, up to the firmware's rounding and URL spelling."""
    if a is None or b is None:
        return False
    if key in TOLERANCE:
        try:
            return abs(float(a) - float(b)) <= TOLERANCE[key]
        except (TypeError, ValueError):
            return False
    if key == "fan_auto":
        return bool(a) == bool(b)
    if key == "pool_url":
        def norm(u: Any) -> str:
            return str(u).split("://", 1)[-1].rstrip("/").lower()
        return norm(a) == norm(b)
    return str(a) == str(b)


@dataclass(frozen=True)
class SettingOutcome:
    """One setting after a write: commanded, read back, running, and the verdict."""

    key: str
    commanded: Any
    setting: Any = None          # what the unit's configuration reads back
    effective: Any = None        # the running value, where the firmware reports one
    status: str = NOT_APPLIED
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(key: str, commanded: Any, setting: Any, effective: Any, *, observable: bool,
          needs_restart: bool, setting_source: str, effect_source: str) -> SettingOutcome:
    """The verdict for one setting from its read-backs.

    ``observable``: the firmware reports the running value (``effective``).
    ``needs_restart``: what the unit is known to do with this setting when the running
    value cannot be seen (learned capability).
    """
    if not same_value(key, commanded, setting):
        return SettingOutcome(key, commanded, setting, effective, NOT_APPLIED,
                              f"{setting_source} reads {setting!r}")
    if observable:
        if same_value(key, commanded, effective):
            return SettingOutcome(key, commanded, setting, effective, APPLIED,
                                  f"{setting_source} and {effect_source} read {effective!r}")
        return SettingOutcome(key, commanded, setting, effective, PENDING_RESTART,
                              f"{setting_source} stored; {effect_source} still reads {effective!r}")
    if needs_restart:
        return SettingOutcome(key, commanded, setting, None, PENDING_RESTART,
                              f"{setting_source} stored; this firmware loads it at restart")
    return SettingOutcome(key, commanded, setting, None, APPLIED,
                          f"{setting_source} reads it back; running value not reported")


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of one write: a verdict per setting, and whether the write restarted the miner."""

    outcomes: tuple[SettingOutcome, ...] = ()
    restarting: bool = False     # the write itself restarts the miner (S9 set_miner_conf)
    elapsed_s: float = 0.0       # from the request to the last read-back

    def keys(self, status: str) -> tuple[str, ...]:
        return tuple(sorted(o.key for o in self.outcomes if o.status == status))

    @property
    def live(self) -> tuple[str, ...]:
        """Settings verified running."""
        return self.keys(APPLIED)

    @property
    def pending_restart(self) -> tuple[str, ...]:
        return self.keys(PENDING_RESTART)

    @property
    def not_applied(self) -> tuple[str, ...]:
        return self.keys(NOT_APPLIED)

    @property
    def status(self) -> str:
        """The worst verdict over all settings (``applied`` when there were none)."""
        seen = {o.status for o in self.outcomes}
        for status in (NOT_APPLIED, PENDING_RESTART):
            if status in seen:
                return status
        return APPLIED

    def outcome(self, key: str) -> SettingOutcome | None:
        return next((o for o in self.outcomes if o.key == key), None)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "restarting": self.restarting,
                "elapsed_s": round(self.elapsed_s, 3),
                "outcomes": [o.to_dict() for o in self.outcomes]}
