"""The library limits BLAS threads where it does linear algebra, as the tests do.

The suite pins one thread (conftest.py); a user's process starts with one per core. Each test
here raises the limit the way a user's default would and checks the thread count *inside*
the library's own calls.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from asic_reservoir.analysis import baselines
from asic_reservoir.analysis.readout import RidgeReadout
from asic_reservoir.analysis.tasks import narma
from asic_reservoir.blas import blas_threads, single_blas_thread

USER_DEFAULT = 2     # as many BLAS threads as this machine has cores


def _blas_threads_now() -> int:
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


@pytest.fixture
def user_default_threads():
    with threadpool_limits(limits=USER_DEFAULT):
        if _blas_threads_now() < 2:
            pytest.skip("the BLAS here runs one thread only: nothing to limit")
        yield


def test_helpers_limit_and_restore(user_default_threads):
    with blas_threads():
        assert _blas_threads_now() == 1
    assert _blas_threads_now() == USER_DEFAULT
    assert single_blas_thread(_blas_threads_now)() == 1
    assert _blas_threads_now() == USER_DEFAULT


def test_ridge_fit_decomposes_on_one_thread(user_default_threads, monkeypatch):
    seen: list[int] = []
    real_qr = np.linalg.qr

    def qr(*args, **kwargs):
        seen.append(_blas_threads_now())
        return real_qr(*args, **kwargs)

    monkeypatch.setattr(np.linalg, "qr", qr)
    s = narma(600, seed=1)
    RidgeReadout().fit(np.column_stack([s.u, np.r_[0, s.u[:-1]]]), s.y)
    assert seen and set(seen) == {1}


def test_esn_runs_on_one_thread(user_default_threads, monkeypatch):
    seen: list[int] = []
    real_tanh = np.tanh

    def tanh(*args, **kwargs):
        seen.append(_blas_threads_now())
        return real_tanh(*args, **kwargs)

    monkeypatch.setattr(baselines.np, "tanh", tanh)
    baselines.EchoStateNetwork(20, seed=1).features(np.linspace(0, 0.5, 50))
    assert seen and set(seen) == {1}
