"""Header assembly + SHA-256d through asic_reservoir.drivers.stratum.work vs a bare hashlib loop."""

from __future__ import annotations

import os
import time

from asic_reservoir.drivers.stratum.work import Job
from benchmarks import Figure, hashlib_dsha_rate, quick


def run() -> list[Figure]:
    seconds = 0.3 if quick() else 2.0
    reference = hashlib_dsha_rate(seconds)
    job = Job("1", os.urandom(32), os.urandom(40), os.urandom(40), (os.urandom(32),) * 4)
    en1, en2 = b"\x00" * 4, b"\x00" * 4
    root = job.merkle_root(en1, en2)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for nonce in range(n, n + 1000):
            job.pow(job.header(en1, en2, 0, nonce, root=root))
        n += 1000
    with_header = n / (time.perf_counter() - start)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for nonce in range(n, n + 200):
            job.pow(job.header(en1, en2, 0, nonce))
        n += 200
    full = n / (time.perf_counter() - start)
    return [
        Figure("header+dsha (merkle root reused)", with_header, "hash/s", "hashlib dsha", reference),
        Figure("header+dsha (merkle root per nonce)", full, "hash/s", "hashlib dsha", reference),
    ]
