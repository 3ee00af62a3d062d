"""Fingerprint units (PUF): a fixed challenge, enrollment, identification, verification.

The **challenge** is a versioned stimulus program run through the ordinary experiment
loop (so its run file records everything): phases of constant input on the live actuators
the unit has (LV06: frequency and fan; LB-Box: power plan; stock S9: pool difficulty only,
since its frequency and fans change only through a restart). The **response** is built
from that run file by :mod:`asic_reservoir.puf.response` from differences and ratios that
cancel ambient temperature and pool latency.

Identification ranks enrolled units by scaled distance; verification accepts when the
distance is below the threshold that gives the chosen false-accept rate on the enrolled
population's impostor distances. Fleet evaluation and reads of simulated units live in
:mod:`asic_reservoir.puf.fleet`, the ``puf`` command in :mod:`asic_reservoir.cli.puf`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asic_reservoir.drivers.clock import Clock
from asic_reservoir.experiment.channels import parse_channels
from asic_reservoir.experiment.loop import Experiment, ExperimentConfig, connect_unit
from asic_reservoir.experiment.runs import RunMeta, RunReader, RunWriter
from asic_reservoir.puf.metrics import (FingerprintSpace, reference_impostor_distances,
                                        threshold_at_far)
from asic_reservoir.puf.response import Response, StepTrace, response_from_traces
from asic_reservoir.puf.store import EnrollmentStore

log = logging.getLogger(__name__)


class PufError(RuntimeError):
    """A fingerprint operation cannot be carried out (no enrollments, bad challenge...)."""


@dataclass(frozen=True)
class Challenge:
    """A fixed stimulus program: phases of (input value in [0, 0.5], steps).

    The first phase is a warm-up whose readings are not part of the response.
    """

    version: str = "2"    # 2: the first phase is a warm-up, not part of the response
    phases: tuple[tuple[float, int], ...] = ((0.25, 12), (0.5, 12), (0.0, 12), (0.5, 12))
    step_seconds: float = 10.0
    slots: int = 4        # telemetry polls per step (the input is constant within a step)
    min_fan_pct: float = 60.0

    def __post_init__(self) -> None:
        if len(self.phases) < 2:
            raise PufError("a challenge needs a warm-up phase and at least one measured phase")
        if any(n < 2 or not 0 <= u <= 0.5 for u, n in self.phases):
            raise PufError("challenge phases need u in [0, 0.5] and at least 2 steps each")
        if not self.step_seconds > 0:
            raise PufError("challenge step_seconds must be > 0")

    @property
    def steps(self) -> int:
        return sum(n for _, n in self.phases)

    def inputs(self) -> np.ndarray:
        return np.concatenate([np.full(n, u) for u, n in self.phases])

    def phase_of_step(self) -> np.ndarray:
        return np.concatenate([np.full(n, i) for i, (_, n) in enumerate(self.phases)])

    def shortened(self, steps_per_phase: int) -> "Challenge":
        return Challenge(f"{self.version}-p{steps_per_phase}",
                         tuple((u, steps_per_phase) for u, _ in self.phases), self.step_seconds,
                         self.slots, self.min_fan_pct)

    def channel_spec(self, capabilities: Any) -> str:
        """Live actuators of the unit, in order of preference; difficulty always works."""
        parts = []
        if capabilities.frequency and not capabilities.frequency_needs_restart:
            parts.append("frequency")
        if capabilities.fan and not capabilities.fan_needs_restart:
            # Never below 60 %: a slow fan at low clock already nears the LV06's chip limit.
            parts.append(f"fan:lo_pct={self.min_fan_pct:g}")
        return "+".join(parts) or "difficulty"

    def key(self, model: str, spec: str) -> str:
        """What enrollment and reading must share: challenge version and channel."""
        return f"{self.version}/{model}/{spec}"


# ----------------------------------------------------------------------------- reading

def response_from_run(path: str | Path, unit: str, challenge: Challenge, key: str) -> Response:
    """Group a challenge run's telemetry and shares by phase and build the response."""
    phase = challenge.phase_of_step()
    traces = [StepTrace() for _ in challenge.phases]
    with RunReader(path) as reader:
        model = reader.meta.unit(unit).model
        marked = {step for step, *_ in reader.marks(0)}
        for step, _slot, ns, data in reader.telemetry(0, unit):
            if step in marked or step >= len(phase):
                continue
            sample = {k: float(v) for k, v in data.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v)}
            traces[phase[step]].add(ns * 1e-9, sample)
        for step, _slot, _ns, _nonce, chip, *_rest, accepted in reader.shares(0, unit):
            if accepted and chip is not None and step < len(phase) and step not in marked:
                traces[phase[step]].share_chips.append(int(chip))
    if sum(len(t.samples) for t in traces) == 0:
        raise PufError(f"{path}: no telemetry recorded for {unit}; cannot build a response")
    # The first phase is a warm-up: it brings the unit from whatever it did before (idle,
    # another experiment) to a known state, so the response does not depend on history.
    response = response_from_traces(model, key, traces[1:])
    response.conditions["unit"] = unit
    return response


async def read_response(url: str, challenge: Challenge, pool: Any, clock: Clock,
                        run_path: str | Path, *, name: str = "unit", worker: str | None = None,
                        difficulty_scale: float = 1.0, simulated: dict | None = None,
                        progress: bool = False) -> Response:
    """Run the challenge on the unit at ``url`` (pointed at ``pool``) and read its response."""
    worker = worker or f"puf.{name}"
    async with contextlib.AsyncExitStack() as stack:
        link = await connect_unit(url, pool, name=name, worker=worker,
                                  difficulty_scale=difficulty_scale, simulated=simulated,
                                  stack=stack)
        spec = challenge.channel_spec(link.info.capabilities)
        mask = [1.0] * challenge.slots
        channels = parse_channels(spec, slots=challenge.slots, mask=mask)
        meta = RunMeta(task=f"puf-challenge-{challenge.version}", seed=0, steps=challenge.steps,
                       runs=1, slots=challenge.slots, units=[link.meta],
                       channel=channels.describe(), mask=mask, clock_speed=clock.speed,
                       step_seconds=challenge.step_seconds,
                       difficulty_scale=difficulty_scale)
        with RunWriter.create(run_path, meta, overwrite=True) as writer:
            experiment = Experiment(pool, [link], channels, writer, clock,
                                    lambda _run: challenge.inputs(),
                                    ExperimentConfig(step_seconds=challenge.step_seconds,
                                                     progress=progress))
            await experiment.run()
        model = link.info.model
    return response_from_run(run_path, name, challenge, challenge.key(model, spec))


# ----------------------------------------------------------------------------- decisions

@dataclass(frozen=True)
class Candidate:
    name: str
    distance: float
    confidence: float    # 1 - estimated false-accept rate at this distance


def _references(store: EnrollmentStore, response: Response
                ) -> tuple[list[str], np.ndarray, FingerprintSpace, np.ndarray]:
    """Enrolled units (names, mean references), the space fitted on them, and the read."""
    enrolled = store.enrollments(response.model, response.challenge_version)
    if not enrolled:
        raise PufError(f"no {response.model} units enrolled under challenge "
                       f"{response.challenge_version}; run 'puf enroll' first")
    # A read may lack a feature an enrollment has (a step too small for a time constant is
    # nan): compare on the features both have, as enroll() does for its own reads.
    common = {n for n, v in zip(response.feature_names, response.values) if math.isfinite(v)}
    for e in enrolled:
        common &= set(e.feature_names)
    names = tuple(n for n in response.feature_names if n in common)
    if not names:
        raise PufError("the response shares no features with the enrollments")
    grouped: dict[str, list[np.ndarray]] = {}
    for e in enrolled:
        index = {n: i for i, n in enumerate(e.feature_names)}
        grouped.setdefault(e.name, []).append(e.features[[index[n] for n in names]])
    units = sorted(grouped)
    refs = np.array([np.mean(grouped[u], axis=0) for u in units])
    space = FingerprintSpace.fit([np.array(grouped[u]) for u in units])
    index = {n: i for i, n in enumerate(response.feature_names)}
    return units, refs, space, response.values[[index[n] for n in names]]


def identify(store: EnrollmentStore, response: Response) -> list[Candidate]:
    """Enrolled units ranked by distance to ``response`` (nearest first)."""
    units, refs, space, read = _references(store, response)
    dist = space.distances(read[None, :], refs)[0]
    impostor = reference_impostor_distances(refs, space)
    ranked = []
    for i in np.argsort(dist):
        far = float(np.mean(impostor <= dist[i])) if len(impostor) else float("nan")
        ranked.append(Candidate(units[i], float(dist[i]), 1.0 - far))
    return ranked


@dataclass(frozen=True)
class Verdict:
    name: str
    accepted: bool
    distance: float
    threshold: float
    far_target: float


def verify(store: EnrollmentStore, response: Response, name: str, far: float = 0.01) -> Verdict:
    """Accept ``response`` as ``name`` when closer than the threshold for FAR ``far``."""
    units, refs, space, read = _references(store, response)
    if name not in units:
        raise PufError(f"{name!r} is not enrolled for {response.model} under challenge "
                       f"{response.challenge_version}")
    if len(units) < 2:
        raise PufError("verification needs at least two enrolled units of this model to set "
                       "a threshold from impostor distances")
    distance = float(space.distances(read[None, :], refs[[units.index(name)]])[0, 0])
    threshold = threshold_at_far(reference_impostor_distances(refs, space), far)
    return Verdict(name, distance <= threshold, distance, threshold, far)


def enroll(store: EnrollmentStore, name: str, url: str, response: Response) -> None:
    """Store ``response`` as one enrollment read of unit ``name`` (missing features dropped).

    Enroll two or more reads per unit: the metric learns each feature's own noise from them.
    """
    keep = np.isfinite(response.values)
    store.enroll(name, response.model, url, response.challenge_version,
                 tuple(n for n, k in zip(response.feature_names, keep) if k),
                 response.values[keep], response.conditions)
