"""Management APIs of the simulated units, reproducing the real firmware's replies and quirks.

Each server reads only ``unit.reading()`` / ``unit.settings()`` and acts through
``unit.apply()``, ``unit.restart()``, ``unit.pause()``/``resume()`` and the unit's
log listeners.  Network servers expose ``async start(host, port) -> bound_port``
and ``async stop()``; the serial console exposes ``start()``/``stop()`` and ``path``.
"""
from simulator.firmware.antminer_web import AntminerWebServer
from simulator.firmware.axeos import AxeOSServer
from simulator.firmware.cgminer_rpc import CgminerRpcServer
from simulator.firmware.goldshell_web import GoldshellWebServer
from simulator.firmware.serial_console import SerialConsole

__all__ = ["AntminerWebServer", "AxeOSServer", "CgminerRpcServer", "GoldshellWebServer",
           "SerialConsole"]
