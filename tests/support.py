"""Helpers shared by the test modules: waiting on a condition, free ports, virtual time with
a wall-clock watchdog."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from asic_reservoir.analysis.readout import Split
from asic_reservoir.drivers.clock import VirtualTimeLoop
from asic_reservoir.experiment.runs import RunFileError, RunReader

T = TypeVar("T")

# the readout tests' split of the shared ``series`` fixture (tests/conftest.py)
READOUT_SPLIT = Split(washout=50, train=1000, validation=500, test=800)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; ``timeout`` in loop seconds (simulated seconds on a
    virtual-time loop), then fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout:g} s")
        await asyncio.sleep(interval)


def free_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recorded_steps(path: Path) -> int:
    """Steps a run (possibly still running, possibly in another process) has committed.

    Run files appear whole (built under a draft name and renamed), so a missing file means
    0; a file read while its writer checkpoints can look truncated for a moment, which
    counts as nothing new rather than an error."""
    if not path.exists():
        return 0
    try:
        with RunReader(path, check=False) as reader:
            return reader.count("steps")
    except RunFileError:
        return 0


def run_virtual_within(main: Callable[[], Coroutine[Any, Any, T]], wall_s: float = 60.0) -> T:
    """Run ``main()`` on a fresh :class:`VirtualTimeLoop` in a thread and fail, rather than
    hang, when it has not finished after ``wall_s`` real seconds: a livelock or a wait the
    virtual clock cannot see keeps loop time still, so no loop-time timeout would ever fire."""
    loop = VirtualTimeLoop()
    task = loop.create_task(main())
    runner = threading.Thread(target=loop.run_until_complete, args=(task,), daemon=True)
    runner.start()
    runner.join(wall_s)
    stuck = runner.is_alive()
    if stuck:
        loop.call_soon_threadsafe(task.cancel)
        runner.join(10)
    if not runner.is_alive():
        loop.close()
    if stuck:
        pytest.fail(f"not finished after {wall_s:g} wall seconds; the virtual clock read "
                    f"{loop.time():.9f} s")
    return task.result()
