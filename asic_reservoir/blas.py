"""One BLAS/OpenMP thread around the library's linear algebra.

The readouts, echo state networks, fingerprint metrics and probability-filter fits work on
small matrices; a threaded BLAS gains nothing there and, on shared cores (two cores, several
processes), oversubscribed threads make a ridge fit tens of times slower. The test suite pins
one thread in ``tests/conftest.py``; wrapping the entry points here makes the command line and
the API behave the same without the user setting ``OPENBLAS_NUM_THREADS``.
"""

from __future__ import annotations

import functools
from typing import Callable, ContextManager, TypeVar

from threadpoolctl import threadpool_limits

BLAS_THREADS = 1

F = TypeVar("F", bound=Callable)


def blas_threads(limit: int = BLAS_THREADS) -> ContextManager:
    """Context manager: BLAS and OpenMP pools limited to ``limit`` threads inside.

    Each use scans the loaded libraries afresh (~0.5 ms), so a pool loaded late (scikit-learn's
    OpenMP) is limited too; use it around fits, not inside per-sample loops.
    """
    return threadpool_limits(limits=limit)


def single_blas_thread(fn: F) -> F:
    """Decorator: run ``fn`` with one BLAS/OpenMP thread (see the module docstring)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with blas_threads():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
