"""Management APIs of the simulated units, reproducing the real firmware's replies and quirks.

Each server reads only ``unit.reading()`` / ``unit.settings()`` (and ``unit.booting``, its
cheap check for a unit that is down) and acts through
``unit.apply()``, ``unit.restart()``, ``unit.pause()``/``resume()`` and the unit's
log listeners.  Network servers expose ``async start(host, port) -> bound_port``
and ``async stop()``; the serial console exposes ``start()``/``stop()`` and ``path``.
"""
from asic_reservoir.simulator.firmware.antminer_web import AntminerWebServer
from asic_reservoir.simulator.firmware.axeos import AxeOSServer
from asic_reservoir.simulator.firmware.cgminer_rpc import CgminerRpcServer
from asic_reservoir.simulator.firmware.goldshell_web import GoldshellWebServer
from asic_reservoir.simulator.firmware.serial_console import SerialConsole

__all__ = ["AntminerWebServer", "AxeOSServer", "CgminerRpcServer", "GoldshellWebServer",
           "SerialConsole"]
