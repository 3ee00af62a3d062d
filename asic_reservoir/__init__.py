"""asic-reservoir: mining ASICs as physical reservoir computers, measured honestly.

The few names a script needs, importable from the top::

    import asyncio
    import asic_reservoir as ar

    async def main():
        async with ar.Pool(ar.PoolConfig(port=0, lbry_port=0)) as pool:       # the toolkit is the pool
            units = await ar.start_units([ar.UnitConfig("lv06", seed=1, pool_url=pool.url)])
            try:
                summary = await ar.run_experiment([units[0].url], "frequency", "run.db",
                                                  steps=200, pool=pool)
            finally:
                for unit in units:
                    await unit.stop()
        report = ar.analyze_files(["run.db"])                               # scores + baselines
        print(report.table())

    asyncio.run(main())

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
    # simulated units
    "UnitConfig": "asic_reservoir.simulator",
    "start_units": "asic_reservoir.simulator",
    # experiments and run files
    "run_experiment": "asic_reservoir.cli.experiment",
    "RunReader": "asic_reservoir.experiment.runs",
    # scoring
    "analyze_files": "asic_reservoir.cli.experiment",
    "AnalysisOptions": "asic_reservoir.cli.experiment",
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
    from asic_reservoir.cli.experiment import AnalysisOptions, analyze_files, run_experiment
    from asic_reservoir.drivers.clock import Clock
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
