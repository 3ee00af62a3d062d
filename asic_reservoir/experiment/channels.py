"""Input channels: how an input sample u(t) is written into a mining unit.

A channel turns a value ``v`` in the task's input range ``[lo, hi]`` into commands:

- ``difficulty`` — the published encoding: pool difficulty ``D = D0 / (u + eps)``. It only
  changes how often the pool hears about shares, not what the chips do, so the share
  rate is a noisy, memoryless copy of the input. ``difficulty-log`` maps ``u`` log-linearly
  onto ``[D_lo, D_hi]`` instead.
- ``frequency`` — chip clock (changes hashrate at once and power, hence temperature, slowly).
- ``fan`` — manual fan duty (changes the thermal path, hence temperatures).
- ``duty`` — fraction of each slot the unit is paused (LV06 pause/resume on current AxeOS,
  the LB-Box's sleep plan): power and hashrate follow the input with the unit's thermal inertia.
- ``work`` — the input written into the coinbase of the job the pool pushes (the hash
  function ignores meaning, so this is expected to add nothing; kept for the record).

``a+b`` combines channels (each gets the same slot value). Options follow a colon:
``frequency:lo=450:hi=575``, ``difficulty:eps=0.05:rate=4``.

Time multiplexing (Appeltant et al. 2011): each step is split into ``slots`` virtual-node
slots; slot ``k`` receives the input transformed by a fixed random mask value ``m_k`` in
[-1, 1] (``levels`` evenly spaced values; two levels, the default, give +1 or -1): with
``x = (u - lo) / (hi - lo)``, ``v_k = lo + (hi - lo) (1/2 + m_k (x - 1/2))``, so every slot
value stays in the input range and the unit's inertia couples neighbouring slots. The mask
comes from a seed and is recorded in the run file.

Closed loop (:class:`DelayLoop`, Appeltant et al. 2011; Paquot et al. 2012): the slot value
also carries the unit's own measured response from ``slots + 1`` slots earlier: for loop
slot ``g``, ``a = clip(bias + gain r_{g-N-1} + scale m_k (x - 1/2), 0, 1)``,
``v_k = lo + (hi - lo) a``, where ``r_{g-N-1}`` is the response polled in the middle of slot
``g - N - 1``. The delay line is ``N + 1`` slots, so the reading is ``(N + 1/2) theta`` old
when slot ``g``'s command is sent: the extra slot shifts each virtual node onto its
neighbour of the previous step, which couples the nodes without relying on the unit's
inertia.
Clipping to [0, 1] keeps every command inside the channel's range, which lies inside the
unit's safety envelope. With ``gain = 0`` (and the default bias and scale) it is the
open-loop slot value above.

Each channel declares which unit capabilities it needs (``asic_reservoir.drivers.units`` Capabilities)
and its latency; :func:`check_support` refuses impossible choices with a clear message.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


class ChannelError(ValueError):
    """A channel specification is malformed or a unit cannot carry the channel."""


@dataclass(frozen=True)
class Command:
    """One thing to do to one unit in one slot.

    ``target`` is ``pool`` (difficulty, job) or ``unit`` (driver settings, pause duty).
    ``name`` is a pool action (``difficulty``, ``work``) or a driver settings key
    (``frequency_mhz``, ``fan_pct``) or ``duty`` (pause fraction of the slot).
    Pool difficulties are in real-hardware units; the experiment multiplies them by the
    unit's difficulty scale.
    """

    target: str
    name: str
    value: float


@dataclass(frozen=True)
class UnitInfo:
    """What a channel needs to know about a unit to bind to it."""

    model: str
    hashrate_ghs: float = 0.0                   # nominal hashrate (real-hardware scale)
    frequency_range: tuple[float, float] | None = None   # safe range from the driver
    frequency_steps: tuple[float, ...] = ()             # discrete settings (power plans)
    fan_range: tuple[float, float] | None = None
    difficulty_factor: float = 1.0              # 256 for LBRY pools (easier targets)
    capabilities: Any = None

    @property
    def chip_floor(self) -> float:
        """Smallest difficulty the unit's chips report (ticket mask), real-hardware units."""
        return CHIP_FLOOR_DIFFICULTY.get(self.model, 0.0)


# Chips only return nonces above a ticket-mask difficulty; a pool difficulty below it
# cannot raise the share rate. LV06: ESP-Miner BM1366_ASIC_DIFFICULTY 256; S9: bmminer
# ticket mask ~64 (unconfirmed, protocols.md); LB-Box: not published (none assumed).
CHIP_FLOOR_DIFFICULTY = {"lv06": 256.0, "s9": 64.0}


def _cap(caps: Any, *names: str) -> Any:
    """Read a capability flag from a Capabilities object or a mapping (first name found)."""
    for name in names:
        if isinstance(caps, Mapping) and name in caps:
            return caps[name]
        if hasattr(caps, name):
            return getattr(caps, name)
    return None


class Channel:
    """Base class: maps a slot value in [lo, hi] to commands for one unit."""

    name = "?"
    latency_s = 0.0          # typical delay from command to physical effect (experiment s)
    needs: tuple[str, ...] = ()

    def __init__(self, lo: float = 0.0, hi: float = 0.5, invert: float = 0.0,
                 **options: float) -> None:
        if not hi > lo:
            raise ChannelError(f"{self.name}: input range needs hi > lo, got [{lo}, {hi}]")
        self.lo, self.hi = float(lo), float(hi)
        self.invert = bool(invert)
        self.options = dict(options, **({"invert": 1} if self.invert else {}))

    def x(self, v: float) -> float:
        """The value as a fraction of the input range, clipped to [0, 1] (1 - that when
        ``invert``: e.g. ``frequency+fan:invert=1`` cools least when it heats most)."""
        x = min(1.0, max(0.0, (v - self.lo) / (self.hi - self.lo)))
        return 1.0 - x if self.invert else x

    def check(self, unit: UnitInfo) -> None:
        """Raise :class:`ChannelError` when ``unit`` cannot carry this channel."""

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "lo": self.lo, "hi": self.hi, **self.options}


class DifficultyChannel(Channel):
    """Published encoding D = D0 / (u + eps), or a log-linear map (``mode='log'``).

    ``D0`` is chosen per unit from its nominal hashrate so that the share rate at the top
    of the input range is ``rate`` shares per experiment second (unless ``d0`` is given).
    """

    name = "difficulty"
    latency_s = 0.0  # takes effect with the next job the pool sends

    def __init__(self, lo: float = 0.0, hi: float = 0.5, mode: str = "published",
                 eps: float = 0.01, rate: float = 4.0, d0: float | None = None,
                 span: float = 10.0) -> None:
        if mode not in ("published", "log"):
            raise ChannelError(f"difficulty mode must be 'published' or 'log', got {mode!r}")
        if not eps > 0 or not rate > 0 or not span > 1:
            raise ChannelError("difficulty: need eps > 0, rate > 0 and span > 1")
        if mode == "published" and lo + eps <= 0:
            raise ChannelError(f"difficulty: u + eps must stay > 0 (lo={lo}, eps={eps})")
        opts: dict[str, Any] = {"mode": mode, "eps": eps, "rate": rate, "span": span}
        if d0 is not None:
            opts["d0"] = d0
        super().__init__(lo, hi, **opts)
        self.name = "difficulty" if mode == "published" else "difficulty-log"
        self.mode, self.eps, self.rate, self.span, self.d0 = mode, eps, rate, span, d0

    def check(self, unit: UnitInfo) -> None:
        if self.d0 is None and not unit.hashrate_ghs > 0:
            raise ChannelError(f"difficulty: unit {unit.model} reports no nominal hashrate; "
                               f"give d0=... explicitly")

    def base(self, unit: UnitInfo) -> float:
        """D0 (published) or the lowest difficulty (log), real-hardware units.

        Chosen for ``rate`` shares/s at the top of the input range, but never so low that
        the top difficulty falls under the chip's ticket-mask floor (the rate is then lower).
        """
        if self.d0 is not None:
            return float(self.d0)
        top = self.hi + self.eps if self.mode == "published" else 1.0
        # rate at u = hi: H f / (2^32 D0 / top) = rate  =>  D0 = H f top / (2^32 rate)
        d0 = unit.hashrate_ghs * 1e9 * unit.difficulty_factor * top / (2.0 ** 32 * self.rate)
        return max(d0, unit.chip_floor * top)

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        d0 = self.base(unit)
        if self.mode == "published":
            d = d0 / (min(max(v, self.lo), self.hi) + self.eps)
        else:  # high input -> low difficulty -> more shares, like the published map
            d = d0 * self.span ** (1.0 - self.x(v))
        return [Command("pool", "difficulty", d)]


class FrequencyChannel(Channel):
    """Chip frequency, linear in the input over the unit's safe range (or lo_mhz..hi_mhz)."""

    name = "frequency"
    latency_s = 0.5  # HTTP/RPC round trip plus the firmware's PLL re-tune

    def __init__(self, lo: float = 0.0, hi: float = 0.5, lo_mhz: float | None = None,
                 hi_mhz: float | None = None, invert: float = 0.0) -> None:
        opts = {k: v for k, v in (("lo_mhz", lo_mhz), ("hi_mhz", hi_mhz)) if v is not None}
        super().__init__(lo, hi, invert, **opts)
        self.lo_mhz, self.hi_mhz = lo_mhz, hi_mhz

    def check(self, unit: UnitInfo) -> None:
        caps = unit.capabilities
        if not _cap(caps, "frequency"):
            raise ChannelError(f"frequency: {unit.model} has no frequency control")
        if _cap(caps, "frequency_needs_restart", "frequency_restart"):
            raise ChannelError(
                f"frequency: {unit.model} applies a frequency change only after a restart "
                f"(stock firmware, minutes of downtime), so it cannot carry an input signal; "
                f"use fan, difficulty or another unit")
        lo, hi = self.range(unit)
        if not hi > lo:
            raise ChannelError(f"frequency: empty range [{lo}, {hi}] MHz for {unit.model}")

    def range(self, unit: UnitInfo) -> tuple[float, float]:
        safe = unit.frequency_range or (self.lo_mhz or 0.0, self.hi_mhz or 0.0)
        lo = self.lo_mhz if self.lo_mhz is not None else safe[0]
        hi = self.hi_mhz if self.hi_mhz is not None else safe[1]
        if unit.frequency_range and (lo < safe[0] or hi > safe[1]):
            raise ChannelError(f"frequency: [{lo}, {hi}] MHz leaves {unit.model}'s safe range "
                               f"[{safe[0]}, {safe[1]}] MHz")
        return float(lo), float(hi)

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        lo, hi = self.range(unit)
        f = lo + self.x(v) * (hi - lo)
        if unit.frequency_steps:   # discrete settings (e.g. LB-Box power plans): nearest
            f = min(unit.frequency_steps, key=lambda s: abs(s - f))
        return [Command("unit", "frequency_mhz", round(f, 3))]


DEFAULT_FAN_FLOOR_PCT = 30.0


class FanChannel(Channel):
    """Manual fan duty in percent, linear in the input."""

    name = "fan"
    latency_s = 2.0  # fan spin-up/down

    def __init__(self, lo: float = 0.0, hi: float = 0.5, lo_pct: float | None = None,
                 hi_pct: float | None = None, invert: float = 0.0) -> None:
        opts = {k: v for k, v in (("lo_pct", lo_pct), ("hi_pct", hi_pct)) if v is not None}
        super().__init__(lo, hi, invert, **opts)
        self.lo_pct, self.hi_pct = lo_pct, hi_pct

    def range(self, unit: UnitInfo) -> tuple[float, float]:
        safe = unit.fan_range or (0.0, 100.0)
        # Default floor 30 %: ESP-Miner's own automatic minimum is 25 %; lower manual duty
        # risks a thermal stop and adds nothing to the signal.
        lo = self.lo_pct if self.lo_pct is not None else max(safe[0], DEFAULT_FAN_FLOOR_PCT)
        hi = self.hi_pct if self.hi_pct is not None else safe[1]
        if lo < safe[0] or hi > safe[1] or not hi > lo:
            raise ChannelError(f"fan: [{lo}, {hi}] % outside {unit.model}'s safe range "
                               f"[{safe[0]}, {safe[1]}] %")
        return float(lo), float(hi)

    def check(self, unit: UnitInfo) -> None:
        if not _cap(unit.capabilities, "fan"):
            raise ChannelError(f"fan: {unit.model} has no manual fan control")
        # Stock S9 firmware writes every setting through set_miner_conf, which restarts
        # bmminer: a fan change costs minutes of downtime, like a frequency change.
        if _cap(unit.capabilities, "fan_needs_restart"):
            raise ChannelError(f"fan: {unit.model} applies a fan change only by restarting the "
                               f"miner (stock firmware), so it cannot carry an input signal; "
                               f"use difficulty or another unit")
        self.range(unit)

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        lo, hi = self.range(unit)
        return [Command("unit", "fan_pct", round(lo + self.x(v) * (hi - lo), 2))]


class DutyChannel(Channel):
    """Pause the unit for a fraction of each slot (high input = more hashing)."""

    name = "duty"
    latency_s = 0.05  # one HTTP request

    def check(self, unit: UnitInfo) -> None:
        if not _cap(unit.capabilities, "pause"):
            raise ChannelError(f"duty: {unit.model} cannot pause and resume hashing "
                               f"(current AxeOS on the LV06 and the LB-Box's sleep plan can)")

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        return [Command("unit", "duty", round(self.x(v), 4))]


class WorkChannel(Channel):
    """Write the input into the coinbase of a freshly pushed job."""

    name = "work"
    latency_s = 0.0

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        return [Command("pool", "work", float(v))]


CHANNELS: dict[str, type[Channel]] = {
    "difficulty": DifficultyChannel, "frequency": FrequencyChannel, "fan": FanChannel,
    "duty": DutyChannel, "work": WorkChannel,
}


@dataclass(frozen=True)
class DelayLoop:
    """Feed the unit's measured ``response`` back into the channel (see the module notes).

    The response is normalised to ``r = (reading - r_lo) / (r_hi - r_lo) - 1/2`` (about
    [-1/2, 1/2]); ``r_lo`` and ``r_hi`` are calibrated per unit from the warm-up (mid-slot
    readings, feedback off) when not given. ``gain`` is the feedback strength, ``scale``
    the input scaling, ``bias`` the operating point as a fraction of the channel's range.
    """

    gain: float
    bias: float = 0.5
    scale: float = 1.0
    response: str = "chip_temp_c"
    r_lo: float | None = None
    r_hi: float | None = None

    def __post_init__(self) -> None:
        for key in ("gain", "bias", "scale"):
            if not math.isfinite(getattr(self, key)):
                raise ChannelError(f"delay loop: {key} must be finite")
        if not 0.0 <= self.bias <= 1.0:
            raise ChannelError(f"delay loop: bias is a fraction of the channel range, "
                               f"got {self.bias}")
        if (self.r_lo is None) != (self.r_hi is None):
            raise ChannelError("delay loop: give both r_lo and r_hi, or neither (calibrated "
                               "from the warm-up)")
        if self.r_lo is not None and not self.r_hi > self.r_lo:
            raise ChannelError(f"delay loop: need r_hi > r_lo, got [{self.r_lo}, {self.r_hi}]")

    def delay_slots(self, slots: int) -> int:
        """The delay line in slots, N + 1 (the reading is taken mid-slot, so it is
        (N + 1/2) theta old when fed back)."""
        return slots + 1

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


OPEN_LOOP = DelayLoop(gain=0.0)
LOOP_MASK_LEVELS = 4   # a closed loop's default mask: {-1, -1/3, 1/3, 1}


@dataclass
class ChannelSet:
    """The channels of one experiment (a ``+`` combination), the virtual-node mask and,
    for a closed-loop reservoir, the :class:`DelayLoop`."""

    channels: list[Channel]
    mask: np.ndarray = field(default_factory=lambda: np.ones(1))
    spec: str = ""
    loop: DelayLoop | None = None

    @property
    def slots(self) -> int:
        return len(self.mask)

    @property
    def latency_s(self) -> float:
        return max(c.latency_s for c in self.channels)

    def drive(self, u: float, k: int, feedback: float = 0.0) -> float:
        """Slot ``k``'s drive as a fraction of the channel's range *before* clipping: the
        masked input plus, in a closed loop, ``gain`` times the normalised response
        ``feedback`` (outside [0, 1] the command saturates at the range's end)."""
        c = self.channels[0]
        loop = self.loop or OPEN_LOOP
        x = (u - c.lo) / (c.hi - c.lo)
        return loop.bias + loop.gain * feedback + loop.scale * float(self.mask[k]) * (x - 0.5)

    def slot_value(self, u: float, k: int, feedback: float = 0.0) -> float:
        """Slot ``k``'s value inside [lo, hi]: :meth:`drive` clipped to the range."""
        c = self.channels[0]
        return c.lo + (c.hi - c.lo) * min(1.0, max(0.0, self.drive(u, k, feedback)))

    def slot_values(self, u: float) -> list[float]:
        """The masked input of each slot without feedback, all inside [lo, hi]."""
        return [self.slot_value(u, k) for k in range(self.slots)]

    def check(self, unit: UnitInfo) -> None:
        for c in self.channels:
            c.check(unit)

    def commands(self, v: float, unit: UnitInfo) -> list[Command]:
        return [cmd for c in self.channels for cmd in c.commands(v, unit)]

    def describe(self) -> dict[str, Any]:
        out = {"spec": self.spec, "channels": [c.describe() for c in self.channels],
               "slots": self.slots}
        if self.loop is not None:
            out["delay_loop"] = self.loop.describe()
        return out


def make_mask(slots: int, seed: int, levels: int = 2) -> np.ndarray:
    """Fixed random virtual-node mask on ``levels`` values evenly spaced in [-1, 1], as in
    Appeltant et al. (2011).

    Two levels (+1/-1) give every slot the full input swing, but only u or its mirror;
    more levels give the slots different input weights (a richer projection), at the cost
    of a smaller swing on the inner levels. With two or more slots both signs occur (and,
    with three or more levels and slots, at least three distinct values). One slot: the
    identity.
    """
    if slots < 1:
        raise ChannelError(f"slots must be >= 1, got {slots}")
    if levels < 2:
        raise ChannelError(f"mask levels must be >= 2, got {levels}")
    if slots == 1:
        return np.ones(1)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6D61736B]))
    values = np.linspace(-1.0, 1.0, int(levels))
    distinct = min(3 if levels > 2 else 2, slots)
    while True:
        mask = rng.choice(values, size=slots)
        if np.any(mask > 0) and np.any(mask < 0) and len(np.unique(mask)) >= distinct:
            return mask


TEXT_OPTIONS = frozenset({"mode"})   # every other channel option is a number


def _number(text: str, where: str, key: str = "") -> float | str:
    try:
        value = float(text)
    except ValueError:
        if key in TEXT_OPTIONS:
            return text
        raise ChannelError(f"{where}: value must be a number, got {text!r} (options are "
                           f"separated by ':', e.g. fan:lo_pct=40:hi_pct=90)") from None
    if not math.isfinite(value):
        raise ChannelError(f"{where}: value must be finite, got {text!r}")
    return value


def parse_channels(spec: str, slots: int = 1, seed: int = 0, lo: float = 0.0,
                   hi: float = 0.5, mask: Sequence[float] | None = None, levels: int = 2,
                   loop: DelayLoop | None = None) -> ChannelSet:
    """Parse ``difficulty``, ``difficulty-log``, ``frequency:lo_mhz=450+fan`` etc.

    ``levels`` sets the mask's number of values (unless ``mask`` is given); ``loop`` closes
    the loop (:class:`DelayLoop`)."""
    if not spec or not spec.strip():
        raise ChannelError("empty channel specification")
    channels: list[Channel] = []
    for part in spec.split("+"):
        name, *opts = part.strip().split(":")
        kwargs: dict[str, Any] = {}
        if name == "difficulty-log":
            name, kwargs["mode"] = "difficulty", "log"
        if name not in CHANNELS:
            raise ChannelError(f"unknown channel {name!r}; choose from "
                               f"{', '.join(sorted(CHANNELS) + ['difficulty-log'])}")
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or not key:
                raise ChannelError(f"{name}: option {opt!r} is not key=value")
            kwargs[key] = _number(value, f"{name}:{key}", key)
        try:
            channels.append(CHANNELS[name](lo=lo, hi=hi, **kwargs))
        except TypeError as exc:
            raise ChannelError(f"{name}: bad option ({exc})") from exc
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        raise ChannelError(f"channel listed twice in {spec!r}")
    if "difficulty" in names and "difficulty-log" in names:
        raise ChannelError("choose one difficulty encoding")
    m = np.asarray(mask, dtype=float) if mask is not None else make_mask(slots, seed, levels)
    if mask is not None and len(m) != slots:
        raise ChannelError(f"mask has {len(m)} values for {slots} slots")
    if loop is not None and any(c.name in ("difficulty", "difficulty-log", "work")
                                for c in channels):
        raise ChannelError("delay loop: the actuator must be a unit setting (frequency, fan, "
                           "duty); the pool difficulty and the job do not change what the "
                           "unit does")
    return ChannelSet(channels, m, spec, loop)
