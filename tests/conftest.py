"""Shared test settings. Tests talk only to loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Two shared cores in CI: no wall-clock deadlines on property tests.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
