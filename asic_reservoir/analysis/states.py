"""Run file -> state matrix: what the hardware did in each step (and each virtual-node slot).

Per unit and slot the features are:

- shares: accepted count and rate (per second: slots may stretch on a busy host),
  rejected count, work rate (sum of pool difficulties per second —
  a hashrate estimate that does not depend on the difficulty the pool asked for),
  inter-arrival statistics (mean and spread of the gaps, delay to the first share, age of
  the last share at the slot end), mean log share-difficulty excess and nonce popcount
  (both expected to be pure noise: kept so a readout can show that), per-chip-group counts
  for multi-chip units (the pool derives the chip from the nonce slice);
- telemetry: the last reading of every numeric field in the slot and its change since the
  previous slot. A reading that arrived after its slot ended is not used: it may already
  reflect the next input.

A step's state concatenates its slots (the virtual nodes). States are *raw*: the readout
standardises them with statistics of the training part only. Missing readings (a NaN from
a driver, a slot without a poll) are carried forward from the last good reading and counted
in :attr:`StateMatrix.notes`; rows before a field's first reading have no earlier value to
carry, are never filled from a later one, and are marked. Marked steps stay in the matrix
with ``valid == False`` so the time axis is intact, and the readout drops them.
``feature_time_ns`` (latest datum a row used) and ``input_time_ns`` (when the row's input
was applied) let the readout's leakage check verify that no row saw the next input.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from asic_reservoir.experiment.runs import RunReader

log = logging.getLogger(__name__)

SHARE_FEATURES = ("count", "rate", "rejected", "work_rate", "gap_mean", "gap_std", "first_delay",
                  "age_end", "excess_log2", "nonce_popcount")


# Telemetry that echoes a command back (the unit reporting the frequency, fan duty or pool
# difficulty it was told to use) is the input, not a reservoir state: left out, so that a
# "hardware only" readout cannot read the input off the unit's own report.
ECHO_FIELDS = ("frequency_mhz", "fan_pct", "pool_difficulty")
# Cumulative counters: only their change per slot is a state (the level is a clock).
COUNTER_FIELDS = ("accepted", "rejected", "hw_errors", "uptime_s", "best_share")


class StatesError(ValueError):
    """The run file holds nothing a state matrix can be built from."""


@dataclass
class StateMatrix:
    """Rows are steps (or, with ``per='slot'``, (step, slot) pairs) of one run."""

    X: np.ndarray
    names: list[str]
    u: np.ndarray
    steps: np.ndarray
    valid: np.ndarray
    run: int
    units: list[str]
    slots: int
    notes: list[str] = field(default_factory=list)
    feature_time_ns: np.ndarray | None = None
    input_time_ns: np.ndarray | None = None

    @property
    def n_marked(self) -> int:
        return int((~self.valid).sum())

    def select(self, prefixes: Sequence[str]) -> "StateMatrix":
        """Keep the features whose name (after the slot/unit qualifiers) starts with a prefix."""
        keep = [i for i, n in enumerate(self.names)
                if any(n.split("/", 2)[-1].startswith(p) for p in prefixes)]
        return StateMatrix(self.X[:, keep], [self.names[i] for i in keep], self.u, self.steps,
                           self.valid, self.run, self.units, self.slots, list(self.notes),
                           self.feature_time_ns, self.input_time_ns)


def _numeric_fields(data: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in data.items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            out[k] = float(v)
        elif v is None:
            out[k] = math.nan
    return out


def _chip_groups(n_chips: int, max_groups: int) -> int:
    return max(1, min(n_chips, max_groups))


def _share_block(reader: RunReader, run: int, unit: str, n_steps: int, slots: int,
                 slot_bounds: np.ndarray, n_chips: int, chip_groups: int, seen_ns: np.ndarray
                 ) -> tuple[np.ndarray, list[str]]:
    """Share features per (step, slot); ``seen_ns`` gets the latest share time used."""
    rows = reader.shares(run, unit)
    groups = _chip_groups(n_chips, chip_groups) if n_chips > 1 else 0
    names = list(SHARE_FEATURES) + [f"chip{g}" for g in range(groups)]
    F = np.zeros((n_steps, slots, len(names)))
    durations = (slot_bounds[..., 1] - slot_bounds[..., 0]) * 1e-9
    durations = np.where(durations > 0, durations, np.nan)
    by_slot: dict[tuple[int, int], list[tuple]] = {}
    for r in rows:
        if r[0] < n_steps:
            by_slot.setdefault((int(r[0]), int(r[1])), []).append(r)
    last_ns: int | None = None
    for t in range(n_steps):
        for k in range(slots):
            start, end = slot_bounds[t, k]
            dur = durations[t, k]
            f = F[t, k]
            shares = by_slot.get((t, k), [])
            ok = [s for s in shares if s[7]]
            f[0] = len(ok)
            f[1] = len(ok) / dur if dur == dur else 0.0
            f[2] = len(shares) - len(ok)
            f[3] = sum(s[6] or 0.0 for s in ok) / dur if dur == dur else 0.0
            times = [s[2] for s in ok]
            prev = [last_ns] if last_ns is not None else []
            gaps = np.diff(np.array(prev + times, dtype=float)) * 1e-9
            age_prev = (start - last_ns) * 1e-9 if last_ns is not None else dur
            f[4] = gaps.mean() if len(gaps) else age_prev + dur
            f[5] = gaps.std() if len(gaps) > 1 else 0.0
            f[6] = (times[0] - start) * 1e-9 if times else dur
            if times:
                last_ns = times[-1]
            if shares:              # rejected shares count too (the "rejected" feature)
                seen_ns[t, k] = max(seen_ns[t, k], max(s[2] for s in shares))
            f[7] = (end - last_ns) * 1e-9 if last_ns is not None else age_prev + dur
            excess = [math.log2(s[5] / s[6]) for s in ok if s[5] and s[6]]
            f[8] = float(np.mean(excess)) if excess else 0.0
            f[9] = float(np.mean([bin(int(s[3])).count("1") for s in ok])) if ok else 16.0
            for s in ok:
                if groups and s[4] is not None:
                    f[len(SHARE_FEATURES) + int(s[4]) * groups // n_chips] += 1
    return F, names


def _telemetry_block(reader: RunReader, run: int, unit: str, n_steps: int, slots: int,
                     slot_bounds: np.ndarray, notes: list[str], seen_ns: np.ndarray
                     ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Telemetry features per (step, slot), and which (step, slot) rows precede a field's
    first reading (no value exists for them yet). ``seen_ns`` gets the reading times used."""
    last: dict[tuple[int, int], dict[str, float]] = {}
    fields: dict[str, None] = {}
    late = 0
    for step, slot, ns, data in reader.telemetry(run, unit):
        if step >= n_steps:
            continue
        if ns >= slot_bounds[step, slot, 1] > 0:
            # Answered once the next slot's command was going out: it may already show
            # the next input, so it is not this slot's state (no look-ahead).
            late += 1
            continue
        values = _numeric_fields(data)
        if any(v == v for v in values.values()):
            seen_ns[step, slot] = max(seen_ns[step, slot], ns)
        cell = last.setdefault((step, slot), {})
        for k, v in values.items():
            fields.setdefault(k)
            if v == v or k not in cell:   # a later NaN does not erase a good reading
                cell[k] = v
    names = [k for k in fields if not k.endswith(ECHO_FIELDS)]
    V = np.full((n_steps * slots, len(names)), np.nan)
    for (step, slot), cell in last.items():
        row = step * slots + slot
        for j, k in enumerate(names):
            V[row, j] = cell.get(k, math.nan)
    if late:
        notes.append(f"{unit}: {late} telemetry readings arrived after their slot ended; "
                     f"not used")
    reported = ~np.all(np.isnan(V), axis=0)
    n_nan = int(np.isnan(V[:, reported]).sum())
    if n_nan:
        notes.append(f"{unit}: {n_nan} telemetry values were NaN or missing; "
                     f"carried forward from the last good reading")
    # Forward fill in time; rows before a field's first reading stay empty (marked): a
    # later reading would tell them about inputs they had not seen yet.
    keep = []
    head = np.zeros(len(V), dtype=bool)
    for j, name in enumerate(names):
        col = V[:, j]
        good = ~np.isnan(col)
        if not good.any():      # a field this model does not report
            log.debug("%s: telemetry field %r never had a value; dropped", unit, name)
            continue
        first = int(np.argmax(good))
        idx = np.where(good, np.arange(len(col)), first)
        np.maximum.accumulate(idx, out=idx)
        filled = col[idx]
        filled[:first] = np.nan
        head[:first] = True
        V[:, j] = filled
        keep.append(j)
    V = V[:, keep]
    names = [names[j] for j in keep]
    D = np.diff(V, axis=0, prepend=V[:1])
    D[np.isnan(D)] = 0.0        # no earlier reading: no change known
    V = np.nan_to_num(V, nan=0.0)   # marked rows only; the readout never reads them
    levels = [j for j, n in enumerate(names) if not n.endswith(COUNTER_FIELDS)]
    block = np.concatenate([V[:, levels], D], axis=1).reshape(
        n_steps, slots, len(levels) + len(names))
    return (block, [f"tel.{names[j]}" for j in levels] + [f"tel.{n}.d" for n in names],
            head.reshape(n_steps, slots))


def states(reader: RunReader, run: int = 0, units: Sequence[str] | None = None,
           per: str = "step", chip_groups: int = 8, drop_constant: bool = True) -> StateMatrix:
    """Build the state matrix of one run for the given units (default: all units).

    Feature names are ``[unit/]s{slot}/{feature}`` (per step) or ``[unit/]{feature}``
    (per slot); the unit qualifier appears when several units are combined.
    """
    if per not in ("step", "slot"):
        raise StatesError(f"per must be 'step' or 'slot', got {per!r}")
    meta = reader.meta
    names_all = [u.name for u in meta.units]
    units = list(units) if units is not None else names_all
    for name in units:
        if name not in names_all:
            raise StatesError(f"{reader.path}: no unit {name!r} in this run (has {names_all})")
    step_rows = reader.steps(run)
    if not step_rows:
        raise StatesError(f"{reader.path}: run {run} has no finished steps")
    # Only the contiguous prefix of finished steps forms a time series.
    n_steps = 0
    for i, row in enumerate(step_rows):
        if row[0] != i:
            break
        n_steps = i + 1
    slots = meta.slots
    bounds = np.zeros((n_steps, slots, 2), dtype=np.int64)
    for step, slot, _v, t0, t1 in reader.slots(run):
        if step < n_steps and slot < slots:
            bounds[step, slot] = (t0, t1)
    marked_by_unit: dict[str, set[int]] = {}
    for step, unit, _reason in reader.marks(run):
        marked_by_unit.setdefault(unit, set()).add(int(step))
    valid = np.ones(n_steps, dtype=bool)
    no_reading_yet = np.zeros((n_steps, slots), dtype=bool)
    seen_ns = np.zeros((n_steps, slots), dtype=np.int64)
    notes: list[str] = []
    blocks, names = [], []
    for name in units:
        n_chips = meta.unit(name).chips
        sh, sh_names = _share_block(reader, run, name, n_steps, slots, bounds, n_chips,
                                    chip_groups, seen_ns)
        te, te_names, head = _telemetry_block(reader, run, name, n_steps, slots, bounds, notes,
                                              seen_ns)
        no_reading_yet |= head
        block = np.concatenate([sh, te], axis=2)
        qual = f"{name}/" if len(units) > 1 else ""
        blocks.append(block)
        names.append([qual + n for n in sh_names + te_names])
        for s in marked_by_unit.get(name, set()) | marked_by_unit.get("", set()):
            if s < n_steps:
                valid[s] = False
    n_head = int(no_reading_yet.any(axis=1).sum())
    if n_head:
        valid &= ~no_reading_yet.any(axis=1)
        notes.append(f"{n_head} steps precede a telemetry field's first reading: marked "
                     f"(no later reading fills them)")
    # A row's state holds everything read up to it (gaps, carried readings): its latest
    # datum is the running maximum. Each row's input was applied at its slot's start.
    seen = np.maximum.accumulate(seen_ns.ravel()).reshape(n_steps, slots)
    if per == "step":
        feature_time = seen[:, -1]
        input_time = bounds[:, 0, 0]
        X = np.concatenate([b.reshape(n_steps, -1) for b in blocks], axis=1)
        out_names = [f"{n.rsplit('/', 1)[0] + '/' if '/' in n else ''}s{k}/{n.rsplit('/', 1)[-1]}"
                     for b_names in names for k in range(slots) for n in b_names]
        u = np.array([r[1] for r in step_rows[:n_steps]])
        steps_idx = np.arange(n_steps)
    else:
        feature_time = seen.ravel()
        input_time = bounds[:, :, 0].ravel()
        X = np.concatenate([b.reshape(n_steps * slots, -1) for b in blocks], axis=1)
        out_names = [n for b_names in names for n in b_names]
        u = np.repeat(np.array([r[1] for r in step_rows[:n_steps]]), slots)
        steps_idx = np.repeat(np.arange(n_steps), slots)
        valid = np.repeat(valid, slots)
    if drop_constant and valid.any():
        varying = np.ptp(X[valid], axis=0) > 0
        X, out_names = X[:, varying], [n for n, v in zip(out_names, varying) if v]
    if not np.all(np.isfinite(X)):
        bad = sorted({out_names[j] for j in np.where(~np.isfinite(X).all(axis=0))[0]})
        raise StatesError(f"{reader.path}: non-finite state features {bad[:5]}")
    n_marked = int((~valid).sum()) // (slots if per == "slot" else 1)
    if n_marked:
        notes.append(f"{n_marked} of {n_steps} steps marked (unit unusable); "
                     f"the readout skips them")
    return StateMatrix(X, out_names, u, steps_idx, valid, run, units, slots, notes,
                       feature_time.astype(np.int64), input_time.astype(np.int64))
