"""Sensor sanity: impossible readings are reported missing with a warning, never as data."""
from __future__ import annotations

import logging

import pytest

from asic_reservoir.drivers.envelope import ENVELOPES
from asic_reservoir.drivers.errors import OverTemperature
from asic_reservoir.drivers.units import parse_axeos, parse_lbbox, parse_s9
from asic_reservoir.experiment.loop import flatten_telemetry


def _s9_stats(**body):
    base = {"chain_acn6": 63, "temp6": 58, "temp2_6": 76, "chain_acn7": 63, "temp7": 60,
            "temp2_7": 79, "fan5": 5900, "fan6": 6000, "GHS 5s": "13900", "frequency": 650}
    return {"STATS": [{"Type": "Antminer S9"}, {**base, **body}]}


def test_s9_garbage_chip_sensor_and_fan_become_missing(caplog):
    with caplog.at_level(logging.WARNING):
        t = parse_s9(_s9_stats(temp2_6=-83, fan6=65535), {"SUMMARY": [{}]}, None, "s9://x")
    assert t.chains[0].chip_temp_c is None and t.chains[1].chip_temp_c == 79
    assert t.chip_temp_c == 79 and t.fan_rpm == [5900]
    assert t.insane == {"chain6_chip_temp_c": -83.0, "fan1_rpm": 65535.0}
    assert "impossible readings" in caplog.text and "-83" in caplog.text
    row = flatten_telemetry(t)
    assert row["chain6_chip_temp_c"] is None and "fan1_rpm" not in row


def test_hot_but_possible_readings_are_kept_and_reach_the_envelope():
    t = parse_s9(_s9_stats(temp6=149), {"SUMMARY": [{}]}, None, "s9://x")
    assert t.board_temp_c == 149 and not t.insane
    with pytest.raises(OverTemperature):         # a real over-temperature still stops things
        ENVELOPES["s9"].check_temperature(t)


def test_lv06_and_lbbox_impossible_values():
    t = parse_axeos({"temp": 151.0, "vrTemp": -40, "hashRate": -1.0, "fanrpm": 21000,
                     "frequency": 485}, "lv06://x")
    assert (t.chip_temp_c, t.vr_temp_c, t.hashrate_ghs, t.fan_rpm) == (None, None, None, [])
    assert set(t.insane) == {"chain0_chip_temp_c", "chain0_chip_temp0_c", "vr_temp_c",
                             "chain0_hashrate_ghs", "hashrate_ghs", "hashrate_avg_ghs", "fan0_rpm"}
    lb = parse_lbbox({"DEVS": [{"PGA": 0, "tstemp-0": 255, "tstemp-1": 61, "tstemp-2": 50,
                                "MHS 20s": 175000}]}, {"SUMMARY": [{"MHS 20s": 175000}]},
                     None, None, "lbbox://x")
    assert lb.chains[0].chip_temp_c is None and lb.chains[0].chip_temps_c == [61]
    assert lb.hashrate_ghs == 175.0 and lb.insane == {"chain0_chip_temp_c": 255.0,
                                                      "chain0_chip_temp0_c": 255.0}
