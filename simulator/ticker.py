"""One timer for every simulated unit on an event loop, and ticks run ahead in virtual time.

A unit ticks every 0.1 simulated second; a loop wake-up per tick and per unit costs more
than a 1-chip unit's physics. The :class:`Ticker` of a loop keeps the units' next tick
times in a heap behind a single timer. When that timer fires, every unit due runs its
ticks exactly as its own timer would have (:meth:`Tickable.on_timer`). On a
:class:`~asic_reservoir.drivers.clock.VirtualTimeLoop` it then keeps going: as long as the
loop would have jumped straight to the next tick with nothing else to run first
(:meth:`~asic_reservoir.drivers.clock.VirtualTimeLoop.advance_alone`), it moves the clock
there and runs that tick in the same callback. The ticks, their clock readings and their
order among the loop's other events are those of one timer per tick; only the idle loop
iterations between them are gone. A tick that hands the loop work (a share to submit, a
task to start) ends the run-ahead, and the loop handles the work at that tick's time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from typing import Protocol

from asic_reservoir.drivers.clock import VirtualTimeLoop

__all__ = ["Tickable", "Ticker", "MAX_RUN_AHEAD_TICKS"]

MAX_RUN_AHEAD_TICKS = 2000   # ticks per callback before the loop polls its sockets again


class Tickable(Protocol):
    def on_timer(self) -> float | None:
        """Run the ticks due now; return the loop time of the next one (None: stopped)."""


class Ticker:
    """The tick timer of one event loop (see module doc); :meth:`of` gives the loop's."""

    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Ticker]" = \
        weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "Ticker":
        ticker = cls._by_loop.get(loop)
        if ticker is None:
            ticker = cls._by_loop[loop] = cls(loop)
        return ticker

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # No reference to the loop: it keys the registry weakly (methods run on the loop).
        self._heap: list[tuple[float, int, Tickable]] = []     # (loop time, order, unit)
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._run_ahead = isinstance(loop, VirtualTimeLoop) and loop.run_ahead
        self._resolution = getattr(loop, "_clock_resolution", 1e-9)   # asyncio's due margin

    def add(self, unit: Tickable, when: float) -> None:
        """Tick ``unit`` from loop time ``when`` on."""
        self._push(unit, when)
        self._schedule()

    def remove(self, unit: Tickable) -> None:
        self._heap = [entry for entry in self._heap if entry[2] is not unit]
        heapq.heapify(self._heap)
        self._schedule()

    def _push(self, unit: Tickable, when: float | None) -> None:
        if when is not None:
            heapq.heappush(self._heap, (when, next(self._order), unit))

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._heap:
            self._handle = asyncio.get_running_loop().call_at(self._heap[0][0], self._fire)

    def _run_due(self) -> None:
        """Every unit due at the loop's present time, in time order (ties: first queued first)."""
        end = asyncio.get_running_loop().time() + self._resolution
        due = []
        while self._heap and self._heap[0][0] < end:
            due.append(heapq.heappop(self._heap)[2])
        for unit in due:
            self._push(unit, unit.on_timer())

    def _fire(self) -> None:
        self._handle = None
        self._run_due()
        if self._run_ahead:
            loop = asyncio.get_running_loop()
            for _ in range(MAX_RUN_AHEAD_TICKS):
                if not self._heap or not loop.advance_alone(self._heap[0][0]):
                    break
                self._run_due()
        self._schedule()

