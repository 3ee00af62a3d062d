"""Helpers shared by the test modules: waiting on a condition, the command line in a
subprocess or in this process, free ports, virtual time with a wall-clock watchdog."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from asic_reservoir.analysis.readout import Split
from asic_reservoir.cli.main import main
from asic_reservoir.drivers.clock import VirtualTimeLoop
from asic_reservoir.experiment.runs import RunFileError, RunReader

T = TypeVar("T")

# the readout tests' split of the shared ``series`` fixture (tests/conftest.py)
READOUT_SPLIT = Split(washout=50, train=1000, validation=500, test=800)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     interval: float = 0.05, *, task: asyncio.Task | None = None,
                     proc: asyncio.subprocess.Process | None = None) -> None:
    """Poll ``predicate`` until it holds; ``timeout`` in loop seconds (simulated seconds on a
    virtual-time loop), then fail. Fail at once, with its error, if ``task`` (or the process
    ``proc``) that should bring the condition about ends first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if task is not None and task.done():
            task.result()
            raise AssertionError("the task ended before the condition")
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"process exited {proc.returncode}: "
                                 f"{(await proc.stderr.read()).decode()}")
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached in {timeout:g} s")
        await asyncio.sleep(interval)


def _take_ctrl_c() -> None:
    """In the child before exec: SIGINT back to its default, so that Python turns it into
    KeyboardInterrupt. A suite started with ``&`` from a non-interactive shell runs with
    SIGINT ignored, the child inherits that, and a Ctrl-C test's signal would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    """``python -m asic_reservoir ARGS`` in a subprocess, stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asic_reservoir", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_take_ctrl_c)


async def finish(proc: asyncio.subprocess.Process, timeout: float = 180) -> tuple[str, str]:
    """Wait (``timeout`` wall seconds at most) for a started command: its stdout, stderr."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return out.decode(), err.decode()


async def run_cli(*args: str, timeout: float = 180) -> tuple[int, str, str]:
    """Run ``python -m asic_reservoir ARGS`` to the end: exit code, stdout, stderr."""
    proc = await start_cli(*args)
    out, err = await finish(proc, timeout)
    return proc.returncode, out, err


def main_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``asic-reservoir ARGS`` through the command line's own ``main`` in this process (for
    commands that need no second process, e.g. on ``sim:`` units in virtual time: it spares
    an interpreter's start-up): exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
