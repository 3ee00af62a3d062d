"""Pool settings, validated on construction (shared by the pool and its sessions)."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from asic_reservoir.drivers.stratum.work import BIP320_MASK, LBRY_DIFFICULTY_FACTOR

VERSION_FORMS = ("auto", "or", "xor")


@dataclass
class PoolConfig:
    """Pool settings. Ports: 0 = ephemeral, None = listener disabled."""

    host: str = "127.0.0.1"
    port: int | None = 0
    lbry_port: int | None = None
    difficulty: float = 1.0
    lbry_difficulty: float | None = None          # None: same number as ``difficulty``
    extranonce1_size: int = 4
    extranonce2_size: int = 4
    lbry_difficulty_factor: float = LBRY_DIFFICULTY_FACTOR
    branches: int = 0                             # random merkle branches in default jobs
    refresh_s: float | None = 30.0                # default-job refresh period; None: never
    version_mask: int = BIP320_MASK               # bits the pool lets miners roll
    version_form: str = "auto"                    # how in-mask version bits are read
    ntime_past_s: int = 0                         # share ntime window around the job's ntime
    ntime_future_s: int = 7200
    workers: Collection[str] | None = None        # allowlist; None: any worker name
    password: str | None = None                   # required password; None: any
    honor_suggested_difficulty: bool = False      # apply suggest_difficulty/minimum-difficulty
    max_line_bytes: int = 16384
    max_messages_per_s: float = 2000.0            # per-session token bucket
    message_burst: int = 20000
    max_protocol_errors: int = 50                 # malformed lines before closing
    idle_timeout_s: float | None = 3600.0         # nothing received for this long: close
                                                  # (None: never; dead peers are also found by
                                                  # TCP keepalive)
    handshake_timeout_s: float = 60.0             # not subscribed+authorized by then: close
    write_buffer_limit: int = 1 << 20             # unsent bytes before a peer counts as dead
    max_jobs_per_session: int = 16
    max_sessions: int = 10000
    event_queue_size: int = 100_000
    seed: int | None = None                       # default-job generator seed

    def __post_init__(self) -> None:
        for name in ("difficulty", "lbry_difficulty", "lbry_difficulty_factor"):
            value = getattr(self, name)
            if value is None and name == "lbry_difficulty":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"PoolConfig.{name} must be a finite number > 0, got {value!r}")
        for name in ("port", "lbry_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ValueError(f"PoolConfig.{name} must be 0..65535 or None, got {value!r}")
        if self.port is None and self.lbry_port is None:
            raise ValueError("PoolConfig needs at least one of port / lbry_port")
        if not 1 <= self.extranonce1_size <= 16 or not 1 <= self.extranonce2_size <= 16:
            raise ValueError("extranonce sizes must be 1..16 bytes")
        if self.branches < 0 or self.branches > 32:
            raise ValueError("branches must be 0..32")
        if self.refresh_s is not None and not self.refresh_s > 0:
            raise ValueError("refresh_s must be > 0 or None")
        if not 0 <= self.version_mask <= 0xFFFFFFFF:
            raise ValueError("version_mask must be a uint32")
        if self.version_form not in VERSION_FORMS:
            raise ValueError(f"version_form must be one of {VERSION_FORMS}")
        if self.ntime_past_s < 0 or self.ntime_future_s < 0:
            raise ValueError("ntime window bounds must be >= 0")
        if self.idle_timeout_s is not None and not self.idle_timeout_s > 0:
            raise ValueError("idle_timeout_s must be > 0 or None")
        for name in ("max_line_bytes", "max_messages_per_s", "message_burst",
                     "handshake_timeout_s", "write_buffer_limit", "max_jobs_per_session",
                     "max_sessions", "event_queue_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PoolConfig.{name} must be > 0")
        if self.workers is not None:
            self.workers = frozenset(self.workers)
