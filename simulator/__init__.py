"""Software Antminer S9, Lucky Miner LV06 and Goldshell LB-Box for CI and development."""

from simulator.physics import ChainReading, SettingsError, UnitPhysics, UnitReading
from simulator.profiles import MODELS, PROFILES, Profile, profile

__all__ = ["ChainReading", "SettingsError", "UnitPhysics", "UnitReading", "MODELS", "PROFILES",
           "Profile", "profile"]
