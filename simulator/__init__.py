"""Software Antminer S9, Lucky Miner LV06 and Goldshell LB-Box for CI and development."""

from asic_reservoir.simulator.physics import ChainReading, SettingsError, UnitPhysics, UnitReading
from asic_reservoir.simulator.profiles import MODELS, PROFILES, Profile, profile
from asic_reservoir.simulator.unit import SimulatedUnit, UnitConfig, auto_hash_scale, start_units

__all__ = ["ChainReading", "SettingsError", "UnitPhysics", "UnitReading", "MODELS", "PROFILES",
           "Profile", "profile", "SimulatedUnit", "UnitConfig", "auto_hash_scale", "start_units"]
