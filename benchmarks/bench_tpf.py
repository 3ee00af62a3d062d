"""Probability filter: numpy round-state throughput and the default ``tpf`` run's wall time."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

import numpy as np

from asic_reservoir.tpf.rounds import trace_headers
from asic_reservoir.cli.tpf import tpf_arguments, tpf_main
from asic_reservoir.tpf.sweep import SweepConfig
from benchmarks import Figure, hashlib_dsha_rate, quick


def _rate(rounds: list[int], finish: bool, seconds: float) -> float:
    """Nonces/s through the numpy kernel, 16 headers x 4096 nonces per call (as the sweep)."""
    prefixes = [os.urandom(76) for _ in range(16)]
    nonces = np.arange(4096, dtype=np.uint32)
    n, start = 0, time.perf_counter()
    while True:
        trace_headers(prefixes, nonces + np.uint32(n), rounds, finish=finish)
        n += 16 * 4096
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def _paired(name: str, rounds: list[int], finish: bool, seconds: float, note: str) -> Figure:
    """Kernel rate beside a hashlib rate measured right before it (load on shared cores
    drifts; pairing keeps the ratio honest)."""
    reference = hashlib_dsha_rate(seconds)
    return Figure(name, _rate(rounds, finish, seconds), "nonce/s", "hashlib dsha", reference, note)


def run() -> list[Figure]:
    seconds = 0.5 if quick() else 3.0
    figures = [
        _paired("numpy round states to round 5", [5], False, seconds,
                "midstate reused; stops after round 5"),
        _paired("numpy round states to round 64", [64], False, seconds,
                "first hash's second block complete"),
        _paired("numpy SHA-256d with states 5/16/64/125", [5, 16, 64, 125], True, seconds,
                "what the tpf sweep computes per nonce"),
    ]
    reference = figures[-1].reference_value
    argv = ["--quiet"]
    note = "default run (2 workers budget: 120 s)"
    if quick():
        argv += ["--hashes", str(1 << 15), "--predictors", "base-rate", "logistic"]
        note = "BENCH_QUICK: 2^15 hashes, 2 predictors -- not the default run"
    parser = argparse.ArgumentParser()
    tpf_arguments(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = tpf_main(args)
    wall = time.perf_counter() - start
    if code:
        raise RuntimeError(f"tpf run failed with exit code {code}")
    hashes = SweepConfig().hashes if not quick() else 1 << 15
    figures.append(Figure("tpf run wall time", wall, "s", "hashlib dsha of as many hashes",
                          hashes / reference, note))
    return figures
