"""The nonce sweep behind the probability-filter study: fresh work, round states, labels.

Each chunk draws random jobs (as a pool would hand out) from its own seed, hashes a
nonce range per header with the numpy kernel (:mod:`asic_reservoir.tpf.rounds`), keeps the
state after each requested round and labels every nonce by its full double hash. Chunks
run in process, on a process pool or on a Dask cluster with identical results, and
whole headers go to either the training or the test side.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from asic_reservoir.tpf.rounds import ROUNDS_PER_NONCE, meets_bits, trace_headers
from asic_reservoir.drivers.stratum.work import BIP320_MASK, Job

DEFAULT_ROUNDS = (5, 16, 64, 125)
"""5: the paper's abort point; 16: last round fed raw header words; 64: first hash
complete; 125: positive control -- after round 61 of the second hash the last digest
word is ``e + IV[7]``, so the label is a function of the state and must be detected."""


class TpfError(ValueError):
    """Bad parameters for a probability-filter study."""


# --------------------------------------------------------------------------- sweep

@dataclass(frozen=True)
class SweepConfig:
    """What to hash. Chunk ``i`` draws its headers from ``SeedSequence([seed, i])``, so a
    sweep gives identical data however many workers run it."""

    rounds: tuple[int, ...] = DEFAULT_ROUNDS
    difficulty_bits: int = 8
    hashes: int = 1 << 18
    nonces_per_header: int = 4096
    headers_per_chunk: int = 16
    test_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounds", tuple(sorted(set(int(k) for k in self.rounds))))
        if not self.rounds or any(not 1 <= k <= ROUNDS_PER_NONCE for k in self.rounds):
            raise TpfError(f"rounds must lie in 1..{ROUNDS_PER_NONCE}, got {self.rounds}")
        if not 1 <= self.difficulty_bits <= 64:
            raise TpfError(f"difficulty bits must lie in 1..64, got {self.difficulty_bits}")
        if self.hashes < 1 or self.nonces_per_header < 1 or self.headers_per_chunk < 1:
            raise TpfError("hashes, nonces per header and headers per chunk must be >= 1")
        if not 0 < self.test_fraction < 1:
            raise TpfError(f"test fraction must lie in (0, 1), got {self.test_fraction}")

    @property
    def n_headers(self) -> int:
        return -(-self.hashes // self.nonces_per_header)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_headers // self.headers_per_chunk)


@dataclass
class Dataset:
    """Round states (uint32 ``(n, 8)`` per round), labels and the header split."""

    states: dict[int, np.ndarray]
    labels: np.ndarray
    header: np.ndarray
    test: np.ndarray

    @property
    def n(self) -> int:
        return len(self.labels)

    def equals(self, other: "Dataset") -> bool:
        return (self.states.keys() == other.states.keys()
                and all(np.array_equal(self.states[k], other.states[k]) for k in self.states)
                and np.array_equal(self.labels, other.labels)
                and np.array_equal(self.header, other.header)
                and np.array_equal(self.test, other.test))


def random_job(rng: np.random.Generator, job_id: str) -> tuple[Job, bytes, bytes, int]:
    """A fresh random job with extranonces and ntime, as a pool would hand out."""
    job = Job(job_id=job_id, prevhash=rng.bytes(32), coinb1=rng.bytes(42), coinb2=rng.bytes(38),
              branches=tuple(rng.bytes(32) for _ in range(int(rng.integers(0, 12)))),
              version=0x20000000 | (int(rng.integers(0, 1 << 32)) & BIP320_MASK),
              nbits=0x1703A30C, ntime=int(rng.integers(1_600_000_000, 1_900_000_000)))
    return job, rng.bytes(4), rng.bytes(4), job.ntime


def sweep_chunk(config: SweepConfig, index: int) -> Dataset:
    """Hash chunk ``index``: its headers x nonces, round states, labels, test flags."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    first = index * config.headers_per_chunk
    count = min(config.headers_per_chunk, config.n_headers - first)
    if count < 1:
        raise TpfError(f"chunk {index} is past the end of the sweep")
    prefixes = []
    for h in range(count):
        job, en1, en2, ntime = random_job(rng, f"{first + h:x}")
        prefixes.append(job.header_prefix(en1, en2, ntime))
    m = config.nonces_per_header
    starts = rng.integers(0, 1 << 32, size=(count, 1), dtype=np.uint64)
    nonces = ((starts + np.arange(m, dtype=np.uint64)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    is_test = np.zeros(count, dtype=bool)  # an exact share of each chunk's headers
    is_test[rng.permutation(count)[:round(count * config.test_fraction)]] = True
    trace = trace_headers(prefixes, nonces, config.rounds)
    return Dataset(states={k: rs.state for k, rs in trace.states.items()},
                   labels=meets_bits(trace.digest, config.difficulty_bits),
                   header=np.repeat(np.arange(first, first + count), m),
                   test=np.repeat(is_test, m))


def _concat(parts: Sequence[Dataset]) -> Dataset:
    return Dataset(states={k: np.concatenate([p.states[k] for p in parts]) for k in parts[0].states},
                   labels=np.concatenate([p.labels for p in parts]),
                   header=np.concatenate([p.header for p in parts]),
                   test=np.concatenate([p.test for p in parts]))


def sweep(config: SweepConfig, workers: int = 0, scheduler: str | None = None,
          on_chunk: Callable[[], None] | None = None) -> Dataset:
    """Run every chunk in process (``workers`` <= 1), on a process pool, or on Dask.

    Chunks are gathered in index order, so the result does not depend on where they ran.
    """
    indices = range(config.n_chunks)
    if scheduler:
        results = _dask_map(config, indices, scheduler, on_chunk)
    elif workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tick(pool.map(sweep_chunk, [config] * len(indices), indices), on_chunk))
    else:
        results = list(tick((sweep_chunk(config, i) for i in indices), on_chunk))
    return _concat(results)


def tick(items: Iterator, on_item: Callable[[], None] | None) -> Iterator:
    """Pass items through, calling ``on_item`` for each (progress bars)."""
    for item in items:
        if on_item:
            on_item()
        yield item


def _dask_map(config: SweepConfig, indices: range, scheduler: str,
              on_chunk: Callable[[], None] | None) -> list[Dataset]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise TpfError("--scheduler needs dask.distributed: pip install 'asic-reservoir[dask]'") from None
    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise TpfError(f"cannot use Dask scheduler {scheduler!r}: {exc}") from None
    with client:
        futures = client.map(sweep_chunk, [config] * len(indices), list(indices), pure=False)
        for _ in as_completed(futures):
            if on_chunk:
                on_chunk()
        return client.gather(futures)


# --------------------------------------------------------------------------- features

def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.float32)
    bits = np.unpackbits(x.astype(">u4").view(np.uint8).reshape(x.shape + (4,)), axis=-1)
    return bits.sum(axis=-1).astype(np.float32)


def features(states: np.ndarray) -> np.ndarray:
    """Feature rows from state words ``(n, 8)``.

    * 256 state bits (a..h, most significant bit first);
    * 8 per-word Hamming weights;
    * a compact "signature" standing in for the paper's low-dimensional one (this
      definition is ours): total Hamming weight and the leading-zero count of every word.
    """
    words = np.ascontiguousarray(states, dtype=np.uint32)
    n = len(words)
    bits = np.unpackbits(words.astype(">u4").view(np.uint8).reshape(n, 32), axis=1)
    weights = _popcount(words)
    lz = np.where(words == 0, 32, 31 - np.floor(np.log2(np.maximum(words, 1)))).astype(np.float32)
    return np.hstack([bits.astype(np.float32), weights, weights.sum(axis=1, keepdims=True), lz])


N_FEATURES = 256 + 8 + 1 + 8
