"""Speed and quality benchmarks. Run ``python -m benchmarks [NAME ...]``.

Each ``benchmarks/bench_<name>.py`` defines ``run() -> list[Figure]``; every figure is
printed beside a reference measured in the same run, so numbers from different machines
compare as ratios.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass


@dataclass
class Figure:
    """One measured number beside its same-run reference."""

    name: str
    value: float
    unit: str
    reference_name: str = ""
    reference_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.reference_value in (None, 0):
            return None
        return self.value / self.reference_value

    def line(self) -> str:
        ref = ""
        if self.reference_value is not None:
            ref = f"  vs {self.reference_name} {self.reference_value:,.4g} {self.unit}"
            if self.ratio is not None:
                ref += f"  (ratio {self.ratio:.3f})"
        note = f"  [{self.note}]" if self.note else ""
        return f"  {self.name:<44} {self.value:>14,.4g} {self.unit}{ref}{note}"


def hashlib_dsha_rate(seconds: float = 1.0, payload: bytes = bytes(80)) -> float:
    """Reference: bare ``hashlib`` double-SHA-256 loop over 80-byte headers, hashes/s."""
    sha256 = hashlib.sha256
    prefix = payload[:76]
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for nonce in range(n, n + 2000):
            sha256(sha256(prefix + nonce.to_bytes(4, "little")).digest()).digest()
        n += 2000
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def quick() -> bool:
    """True when ``BENCH_QUICK=1``: shorter runs for smoke-testing the benchmarks."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")
