"""asic-reservoir: mining ASICs as physical reservoir computers, measured honestly.

The few names a script needs, importable from the top::

    import asic_reservoir as ar

    async def record():
        clock = ar.Clock.virtual()                 # simulated time, as fast as the CPU allows
        async with ar.Pool(ar.PoolConfig(port=0), clock=clock) as pool:      # the toolkit is the pool
            config = ar.UnitConfig("lv06", seed=7, pool_url=pool.url, rpc_port=None, http_port=0)
            async with ar.start_units([config], clock=clock) as (lv06,):
                await ar.run_experiment([lv06.url], "frequency+fan", "run.db", steps=300,
                                        pool=pool, clock=clock,
                                        difficulty_scales=[lv06.difficulty_scale])

    ar.run_virtual(record())                       # at the bench: ar.Clock() and asyncio.run
    print(ar.analyze_files(["run.db"]).table())    # hardware, controls, baselines

Layers, each importing only the ones below it: :mod:`asic_reservoir.drivers` (pool and unit
drivers) <- :mod:`asic_reservoir.simulator` (software units) <- the science
(:mod:`~asic_reservoir.experiment`, :mod:`~asic_reservoir.analysis`, :mod:`~asic_reservoir.tpf`,
:mod:`~asic_reservoir.puf`) <- :mod:`asic_reservoir.cli`. See ``examples/`` for whole scripts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it. Resolved on first use, so that importing a low layer
# (say asic_reservoir.drivers.stratum in a pool-only script) does not load the analysis stack.
_EXPORTS: dict[str, str] = {
    # hardware and Stratum
    "open_unit": "asic_reservoir.drivers.units",
    "Pool": "asic_reservoir.drivers.stratum",
    "PoolConfig": "asic_reservoir.drivers.stratum",
    "JobTemplate": "asic_reservoir.drivers.stratum",
    "Clock": "asic_reservoir.drivers.clock",
    "run_virtual": "asic_reservoir.drivers.clock",
    # simulated units
    "UnitConfig": "asic_reservoir.simulator",
    "start_units": "asic_reservoir.simulator",
    # experiments and run files
    "run_experiment": "asic_reservoir.experiment.record",
    "RunReader": "asic_reservoir.experiment.runs",
    # scoring
    "analyze_files": "asic_reservoir.analysis.runfiles",
    "AnalysisOptions": "asic_reservoir.analysis.runfiles",
    # fingerprinting
    "Challenge": "asic_reservoir.puf.identify",
    "read_response": "asic_reservoir.puf.identify",
    "EnrollmentStore": "asic_reservoir.puf.store",
    "enroll": "asic_reservoir.puf.identify",
    "identify": "asic_reservoir.puf.identify",
    "verify": "asic_reservoir.puf.identify",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from asic_reservoir.analysis.runfiles import AnalysisOptions, analyze_files
    from asic_reservoir.experiment.record import run_experiment
    from asic_reservoir.drivers.clock import Clock, run_virtual
    from asic_reservoir.drivers.stratum import JobTemplate, Pool, PoolConfig
    from asic_reservoir.drivers.units import open_unit
    from asic_reservoir.experiment.runs import RunReader
    from asic_reservoir.puf.identify import Challenge, enroll, identify, read_response, verify
    from asic_reservoir.puf.store import EnrollmentStore
    from asic_reservoir.simulator import UnitConfig, start_units


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'asic_reservoir' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
