"""Firmware replies (recorded shapes in tests/fixtures) -> typed Telemetry, and the number parsing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from asic_reservoir.drivers import axeos
from asic_reservoir.drivers.cgminer import decode_reply
from asic_reservoir.drivers.envelope import ENVELOPES
from asic_reservoir.drivers.errors import EnvelopeError, OverTemperature
from asic_reservoir.drivers.telemetry import as_float, as_int
from asic_reservoir.drivers.units import parse_axeos, parse_lbbox, parse_s9

FIX = Path(__file__).parent / "fixtures"


def raw(path: str) -> dict:
    return decode_reply((FIX / path).read_bytes())


@pytest.mark.parametrize("value,expected", [
    (12, 12.0), ("13862.71", 13862.71), ("4.29G", 4.29e9), ("8.19K", 8190.0), ("163M", 163e6),
    (" 7 ", 7.0), ("", None), ("n/a", None), (None, None), (True, None), (float("nan"), None),
    (float("inf"), None), ("1e3", 1000.0), ("-3.5", -3.5),
])
def test_as_float(value, expected):
    if expected is None:
        assert as_float(value) is None
    else:
        assert as_float(value) == pytest.approx(expected, rel=1e-12)


def test_as_int_truncates():
    assert as_int("63") == 63 and as_int("4.9") == 4 and as_int(None) is None


def test_s9_fixture_to_telemetry():
    t = parse_s9(raw("cgminer/s9_stats.raw"), raw("cgminer/s9_summary.raw"),
                 raw("cgminer/s9_pools.raw"), "s9-fixture")
    assert [c.index for c in t.chains] == [6, 7, 8]
    assert [c.chips for c in t.chains] == [63, 63, 63]
    assert [c.chip_temp_c for c in t.chains] == [73, 76, 72]
    assert [c.board_temp_c for c in t.chains] == [58, 61, 57]
    assert t.chains[1].status.count("x") == 1 and len(t.chains[1].status) == 63
    assert t.chains[0].hashrate_ghs == 4612.33 and t.chains[2].hw_errors == 26
    assert t.hashrate_ghs == 13862.71 and t.hashrate_avg_ghs == 13787.35
    assert t.chip_temp_c == 76 and t.board_temp_c == 61 and t.frequency_mhz == 650
    assert t.fan_rpm == [5880, 6120]
    assert (t.accepted, t.rejected, t.hw_errors, t.best_share) == (4521, 3, 102, 1234567)
    assert t.pool_difficulty == 8192.0 and t.pool_user == "s9.bench"
    assert t.firmware.startswith("16.8.1.3") and t.power_w is None


def test_lucky_and_upstream_axeos_fixtures():
    lucky = json.loads((FIX / "axeos/info_lucky_lv06.json").read_text())
    upstream = json.loads((FIX / "axeos/info_esp_miner_2_12.json").read_text())
    t = parse_axeos(lucky, "lv06-fixture")
    assert t.best_share == 4.29e9  # Lucky prints "4.29G"
    assert (t.power_w, t.voltage_mv, t.current_ma, t.chip_temp_c, t.vr_temp_c) == \
        (12.91, 5043.75, 2562.5, 58.25, 47)
    assert t.fan_rpm == [4321] and t.fan_pct == 62 and t.core_voltage_mv == 1187
    assert t.pool_url == "stratum+tcp://192.168.1.10:3333" and t.pool_difficulty == 1024
    u = parse_axeos(upstream, "bitaxe-fixture")
    assert u.best_share == 4.29e9  # upstream prints a number
    assert u.hashrate_avg_ghs == 505.1 and u.hashrate_ghs == 512.4
    assert axeos.detect_generation(lucky) == "2.9" and axeos.detect_generation(upstream) == "2.12"
    assert axeos.read_settings(upstream)["fan_pct"] == 75
    assert axeos.read_settings(lucky)["pool_user"] == "lv06.bench"


def test_goldshell_devs_fixture():
    # field set and units as a captured Box unit's devs (intminer 5.4.2: Name "INCS", MH/s;
    # values scaled to the LB-Box's ~175 GH/s)
    devs = raw("goldshell/box_devs.raw")  # trailing comma and NUL repaired
    assert devs["DEVS"][0]["Name"] == "INCS"
    summary = {"STATUS": [{"STATUS": "S", "Code": 11}],
               "SUMMARY": [{"MHS 20s": 172810.25, "MHS av": 171310.45, "Accepted": 118,
                            "Rejected": 2, "Hardware Errors": 3, "Elapsed": 3600}]}
    t = parse_lbbox(devs, summary, None, {"firmware": "2.2.5"}, "lbbox-fixture")
    assert t.hashrate_ghs == pytest.approx(172.81025) and t.hashrate_avg_ghs == pytest.approx(171.31045)
    assert t.chains[0].hashrate_ghs == pytest.approx(172.81025)
    assert t.chains[0].chip_temps_c == [69.5, 68.0] and t.board_temp_c == 52.5
    assert t.core_voltage_mv == 750.0 and t.fan_rpm == [2780, 2960]
    assert t.frequency_mhz == 1000 and t.firmware == "2.2.5"


def test_as_row_is_flat_and_numeric():
    t = parse_s9(raw("cgminer/s9_stats.raw"), raw("cgminer/s9_summary.raw"), None, "s9")
    row = t.as_row()
    assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in row.values())
    assert row["chain8_board_temp_c"] == 57.0 and row["fan1_rpm"] == 6120.0
    assert row["power_w"] is None


def test_envelopes_on_fixture_readings():
    t = parse_s9(raw("cgminer/s9_stats.raw"), raw("cgminer/s9_summary.raw"), None, "s9")
    ENVELOPES["s9"].check_temperature(t)
    t.chains[0].board_temp_c = 81.0
    with pytest.raises(OverTemperature):
        ENVELOPES["s9"].check_temperature(t)
    lv = ENVELOPES["lv06"]
    lv.check_settings({"frequency_mhz": 575, "core_voltage_mv": 1100, "fan_auto": True})
    for bad in ({"frequency_mhz": 576}, {"core_voltage_mv": 1301}, {"fan_pct": -1},
                {"frequency_mhz": float("nan")}, {"fan_auto": 1}, {"pool_user": 3}):
        with pytest.raises(EnvelopeError):
            lv.check_settings(bad)
    for env in ENVELOPES.values():
        assert env.sources and env.frequency_mhz[0] < env.frequency_mhz[1]


@pytest.mark.parametrize("info, expected", [
    ({"vrTemp": 52.5}, 52.5),      # a TPS546 board reports its regulator
    ({"vrTemp": 0}, None),         # every other board: Power_get_vreg_temp returns 0.0
    ({"vrTemp": 0.0}, None),
    ({}, None),                    # v2.1.8 has no vrTemp
    ({"vrTemp": True}, None),
    ({"vrTemp": "hot"}, None),
])
def test_axeos_vr_temperature_zero_means_no_sensor(info, expected):
    assert axeos.vr_temp(info) == expected
    assert parse_axeos({"temp": 60, **info}, "u").vr_temp_c == expected
