"""One time base for pool, simulator, drivers and experiments.

Three modes (ARCHITECTURE.md, Time):

- **real** (``Clock()``): wall time, for real units.
- **scaled** (``Clock(speed)``): ``speed`` simulated seconds per wall second, for a simulator
  serving outside clients (``asic-reservoir sim --speed``).
- **virtual** (``Clock.virtual()``): the event loop's own clock, which a
  :class:`VirtualTimeLoop` moves straight to the next scheduled event whenever nothing is
  runnable and no I/O is in flight. Pool, simulated units, drivers and the experiment then run
  in one process as fast as the CPU allows, through their real loopback sockets.

Everything that measures or waits in *experiment time* goes through a :class:`Clock` so that
a share timestamp, a physics tick and an experiment slot agree; asynchronous code that needs
a deadline reads ``loop.time()`` (never ``time.monotonic()``) so it also holds in virtual time.

Why a loop of our own rather than ``looptime`` or ``aiotools``' virtual clock: both patch an
existing loop for tests and jump as soon as the selector is empty, without knowing about work
in flight in an executor; here the jump also waits for executor jobs, the clock starts at 0
(run files repeat bit for bit), and the project's :class:`Clock` reads the same time base.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import selectors
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, Iterator, TypeVar

log = logging.getLogger(__name__)

__all__ = ["Clock", "real_clock", "VirtualTimeLoop", "run_virtual", "REAL_CLOCK_SPEED"]

T = TypeVar("T")

IDLE_POLLS = 2               # zero-timeout polls that must all come back empty before a jump
IN_FLIGHT_WAIT_S = 0.05      # real seconds to block while executor work is outstanding
VIRTUAL_EPOCH_S = 1_700_000_000.0   # calendar time of virtual t = 0 (2023-11-14)


@dataclass(frozen=True)
class Clock:
    """Experiment time: real, ``speed`` times wall time, or the virtual loop's time.

    ``speed == 1`` is the real clock. Scaled time starts at the wall-clock instant the
    clock was created, so several components created from the same :class:`Clock` share
    one origin. A virtual clock starts at 0 with its :class:`VirtualTimeLoop`.
    """

    speed: float = 1.0
    origin_ns: int = 0
    is_virtual: bool = False

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"clock speed must be > 0, got {self.speed!r}")
        if self.is_virtual and self.speed != 1.0:
            raise ValueError("a virtual clock has no speed factor (it runs as fast as the CPU allows)")
        if self.origin_ns == 0 and not self.is_virtual:
            object.__setattr__(self, "origin_ns", time.monotonic_ns())

    @classmethod
    def virtual(cls) -> "Clock":
        """The clock of the running (or next) :class:`VirtualTimeLoop`."""
        return cls(1.0, 0, True)

    @classmethod
    def for_running_loop(cls, speed: float = 1.0) -> "Clock":
        """Virtual on a :class:`VirtualTimeLoop`, otherwise ``speed`` times wall time."""
        try:
            virtual = isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
        except RuntimeError:                    # no running loop
            virtual = False
        return cls.virtual() if virtual else cls(speed)

    def base_ns(self) -> int:
        """The time base the clock counts from: ``time.monotonic_ns()`` or virtual loop time."""
        if not self.is_virtual:
            return time.monotonic_ns()
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeLoop):
            raise RuntimeError("a virtual clock needs a VirtualTimeLoop: start the run with "
                               "run_virtual() (or the virtual_loop test fixture)")
        return loop.time_ns()

    def now(self) -> float:
        """Experiment time in seconds since the clock's origin."""
        return (self.base_ns() - self.origin_ns) * 1e-9 * self.speed

    def now_ns(self) -> int:
        """Experiment time in nanoseconds since the clock's origin."""
        return int((self.base_ns() - self.origin_ns) * self.speed)

    def to_experiment_ns(self, base_ns: int) -> int:
        """Convert a :meth:`base_ns` reading into experiment nanoseconds."""
        return int((base_ns - self.origin_ns) * self.speed)

    def unix_time(self) -> float:
        """Calendar time for protocol fields (job ntime): wall time, or a fixed epoch in virtual
        time so that a virtual run does not depend on the day it ran."""
        return VIRTUAL_EPOCH_S + self.now() if self.is_virtual else time.time()

    def wall_seconds(self, experiment_seconds: float) -> float:
        """Event-loop seconds of an experiment-time interval (for ``asyncio`` timeouts)."""
        return experiment_seconds / self.speed

    async def sleep(self, experiment_seconds: float) -> None:
        await asyncio.sleep(max(0.0, experiment_seconds) / self.speed)

    async def sleep_until(self, experiment_time: float) -> None:
        await self.sleep(experiment_time - self.now())


REAL_CLOCK_SPEED = 1.0


def real_clock() -> Clock:
    return Clock(REAL_CLOCK_SPEED)


class _JumpingSelector:
    """Selector wrapper: a wait with nothing ready becomes a jump of the loop's clock.

    The loop asks for ``select(timeout)`` with ``timeout`` = time to its next timer. The
    wrapper polls with timeout 0 up to :data:`IDLE_POLLS` times; only when every poll is
    empty and no executor job is outstanding does it advance the loop's clock to the timer.
    Data written to a loopback TCP socket is in the peer's receive queue when ``send``
    returns, so a reply is always seen before time moves on. (Yielding the CPU between polls
    was measured: on a shared host it only gives the time slice away.)
    """

    def __init__(self, inner: selectors.BaseSelector, loop: "VirtualTimeLoop") -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        for _ in range(IDLE_POLLS - 1):
            events = self._inner.select(0)
            if events:
                return events
        if self._loop.in_flight:
            wait = IN_FLIGHT_WAIT_S if timeout is None else min(IN_FLIGHT_WAIT_S, timeout)
            return self._inner.select(wait)
        if timeout is None:                     # nothing scheduled: only outside events remain
            return self._inner.select(None)
        self._loop.jump()
        return []

    def poll(self) -> list:
        """Ready events now, without waiting or jumping (level-triggered: none is lost)."""
        return self._inner.select(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock starts at 0 and jumps to the next timer when idle.

    Real sockets, servers and executors work as usual; time stands still while anything is
    runnable, readable or in an executor. ``jumps`` and ``jumped_s`` count the fast-forwards.
    ``run_ahead``: callbacks may make the loop's next jump themselves (:meth:`advance_alone`);
    False makes every timer a loop iteration of its own (the reference the benchmark and
    the equivalence test compare with).
    """

    def __init__(self, run_ahead: bool = True) -> None:
        super().__init__(selectors.DefaultSelector())
        self.run_ahead = run_ahead
        self._now_ns = 0
        self._executor_jobs = 0
        self.jumps = 0
        self.jumped_s = 0.0
        self._selector = _JumpingSelector(self._selector, self)

    def time(self) -> float:
        return self._now_ns * 1e-9

    def time_ns(self) -> int:
        return self._now_ns

    @property
    def in_flight(self) -> int:
        """Executor jobs not finished yet (their results must land before time moves)."""
        return self._executor_jobs

    def jump(self) -> None:
        """Advance the clock to the earliest live timer."""
        scheduled = [h for h in self._scheduled[:1] if not h.cancelled()]
        if not scheduled:
            return
        # at least 1 ns: a timer less than half a nanosecond ahead must still come due
        target = max(self._now_ns + 1, round(scheduled[0].when() * 1e9))
        self.jumped_s += (target - self._now_ns) * 1e-9
        self.jumps += 1
        self._now_ns = target

    def advance_alone(self, when: float) -> bool:
        """From inside a callback: move the clock to loop time ``when`` if the loop would
        jump there next with nothing else to run first, and say whether it did.

        The caller then does at once what its timer at ``when`` would have done, saving a
        loop iteration per timer (the simulated units' physics ticks). It is the jump the
        loop makes when idle, made early: no ready callback, no executor job, no readable
        socket (:data:`IDLE_POLLS` empty polls), and no other timer due by then (a tie
        refuses, so the loop's own order decides it).
        """
        if self._ready or self._executor_jobs or self._stopping:
            return False
        if when < self.time() + self._clock_resolution:
            target = self._now_ns                       # due now: no jump
        else:
            target = max(self._now_ns + 1, round(when * 1e9))
        if self._scheduled and self._scheduled[0].when() < target * 1e-9 + self._clock_resolution:
            return False
        for _ in range(IDLE_POLLS):
            if self._selector.poll():
                return False
        if target != self._now_ns:
            self.jumped_s += (target - self._now_ns) * 1e-9
            self.jumps += 1
            self._now_ns = target
        return True

    def run_in_executor(self, executor, func: Callable[..., T], *args: Any) -> asyncio.Future:
        future = super().run_in_executor(executor, func, *args)
        self._executor_jobs += 1
        future.add_done_callback(self._executor_done)
        return future

    def _executor_done(self, _future: asyncio.Future) -> None:
        self._executor_jobs -= 1


def run_virtual(main: Coroutine[Any, Any, T] | Awaitable[T], run_ahead: bool = True) -> T:
    """``asyncio.run`` on a fresh :class:`VirtualTimeLoop` (use with :meth:`Clock.virtual`).

    Ctrl-C as in ``asyncio.run``: the first SIGINT cancels ``main`` (its ``finally`` blocks
    and context managers run, e.g. units' settings are restored) and then raises
    ``KeyboardInterrupt``; a second one raises at once."""
    loop = VirtualTimeLoop(run_ahead)
    try:
        asyncio.set_event_loop(loop)
        task = asyncio.ensure_future(main, loop=loop)
        with _sigint_cancels(task, loop) as interrupted:
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                if interrupted:
                    raise KeyboardInterrupt() from None
                raise
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


@contextlib.contextmanager
def _sigint_cancels(task: asyncio.Future, loop: asyncio.AbstractEventLoop) -> Iterator[list[int]]:
    """While the block runs, SIGINT cancels ``task`` (the list it yields gets an entry per
    signal); only in the main thread and only where SIGINT still raises KeyboardInterrupt."""
    interrupted: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupted
        return

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        if len(interrupted) > 1 or task.done():
            raise KeyboardInterrupt()
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)     # wake the loop if it waits

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
