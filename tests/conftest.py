"""Shared test settings. Tests talk only to loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

import asyncio
import os

# One BLAS thread: on two shared cores a threaded SVD is ~40x slower under load.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from asic_reservoir.analysis.baselines import EchoStateNetwork  # noqa: E402
from asic_reservoir.analysis.tasks import narma  # noqa: E402
from asic_reservoir.drivers.clock import VirtualTimeLoop  # noqa: E402
from tests.support import READOUT_SPLIT  # noqa: E402

threadpool_limits(1)

# Two shared cores in CI: no wall-clock deadlines on property tests.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "virtual_time: run the test on a VirtualTimeLoop "
                            "(use Clock.virtual() for pool, units and experiment)")


def pytest_asyncio_loop_factories(config, item):
    """Tests marked ``virtual_time`` get a loop whose clock jumps to the next event."""
    if item.get_closest_marker("virtual_time") is None:
        return {"asyncio": asyncio.new_event_loop}
    return {"virtual": VirtualTimeLoop}


@pytest.fixture
def one_blas_thread():
    """Re-pin one BLAS thread around a test: a library loaded after start-up (scikit-learn's
    OpenMP runtime) starts with one thread per core. Modules doing linear algebra use it
    through ``pytestmark = pytest.mark.usefixtures("one_blas_thread")``."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def series():
    """A NARMA-10 series as long as :data:`tests.support.READOUT_SPLIT` needs."""
    s = READOUT_SPLIT
    return narma(s.washout + s.train + s.validation + s.test, seed=21)


@pytest.fixture(scope="session")
def esn_features(series):
    """Features of a 30-node echo state network driven by :func:`series`'s input."""
    with threadpool_limits(1):
        return EchoStateNetwork(30, seed=2).features(series.u)
