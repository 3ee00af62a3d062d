"""Input channels: encodings, masks, parsing, and refusals for units that cannot carry them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asic_reservoir.experiment.channels import (ChannelError, Command, DifficultyChannel, UnitInfo,
                                     make_mask, parse_channels)

LV06 = UnitInfo(model="lv06", hashrate_ghs=50000.0, frequency_range=(400.0, 575.0),
                fan_range=(20.0, 100.0),
                capabilities={"frequency": True, "fan": True, "pause": True})
S9 = UnitInfo(model="s9", hashrate_ghs=13500.0,
              capabilities={"frequency": True, "frequency_needs_restart": True, "fan": True,
                            "fan_needs_restart": True, "pause": False})
LBBOX = UnitInfo(model="lbbox", hashrate_ghs=1000.0, frequency_range=(100.0, 400.0),
                 frequency_steps=(100.0, 200.0, 300.0, 400.0),
                 capabilities={"frequency": True, "fan": False, "pause": False})


def test_published_difficulty_encoding():
    ch = DifficultyChannel(eps=0.01, rate=20.0)  # explicit: 20 shares/s at u = hi
    d0 = ch.base(LV06)
    # At u = hi the share rate is the requested one.
    d_top = ch.commands(0.5, LV06)[0].value
    assert d_top == pytest.approx(d0 / 0.51)
    assert LV06.hashrate_ghs * 1e9 / (d_top * 2 ** 32) == pytest.approx(20.0)
    assert d_top > 256                       # above the BM1366 ticket mask
    for u in (0.0, 0.1, 0.37):
        assert ch.commands(u, LV06) == [Command("pool", "difficulty", pytest.approx(d0 / (u + 0.01)))]
    # A faster unit gets a proportionally higher D0 for the same share rate.
    assert ch.base(S9) / d0 == pytest.approx(13500 / 50000)
    # LBRY difficulties are 256x easier: same share rate needs a 256x higher D0.
    lb = UnitInfo(model="lbbox", hashrate_ghs=50000.0, difficulty_factor=256.0)
    assert ch.base(lb) / d0 == pytest.approx(256.0)
    # A real LV06 (500 GH/s) cannot report 20 shares/s: its chip floor (256) caps D.
    slow = UnitInfo(model="lv06", hashrate_ghs=500.0)
    assert ch.commands(0.5, slow)[0].value == pytest.approx(256.0)


def test_log_difficulty_spans_the_range_monotonically():
    ch = DifficultyChannel(mode="log", span=100.0, d0=2.0)
    ds = [ch.commands(u, LV06)[0].value for u in np.linspace(0, 0.5, 11)]
    assert ds[0] == pytest.approx(200.0) and ds[-1] == pytest.approx(2.0)
    assert all(a > b for a, b in zip(ds, ds[1:]))
    steps = np.diff(np.log(ds))
    assert np.allclose(steps, steps[0])          # linear in log D


def test_frequency_fan_duty_commands():
    cs = parse_channels("frequency+fan:lo_pct=40+duty")
    cmds = {c.name: c.value for c in cs.commands(0.25, LV06)}
    assert cmds == {"frequency_mhz": pytest.approx(487.5), "fan_pct": pytest.approx(70.0),
                    "duty": pytest.approx(0.5)}
    assert cs.latency_s == 2.0


def test_inverted_component_and_default_fan_floor():
    cs = parse_channels("frequency+fan:invert=1")
    lo = {c.name: c.value for c in cs.commands(0.0, LV06)}
    hi = {c.name: c.value for c in cs.commands(0.5, LV06)}
    assert (lo["frequency_mhz"], lo["fan_pct"]) == (400.0, 100.0)   # cool when idle ...
    assert (hi["frequency_mhz"], hi["fan_pct"]) == (575.0, 30.0)    # ... hot when busy
    assert cs.describe()["channels"][1]["invert"] == 1


def test_discrete_frequency_settings_snap_to_nearest():
    cs = parse_channels("frequency")
    assert cs.commands(0.0, LBBOX)[0].value == 100.0
    assert cs.commands(0.2, LBBOX)[0].value == 200.0      # 220 MHz -> nearest plan


@pytest.mark.parametrize("spec,unit,message", [
    ("frequency", S9, "restart"),
    ("duty", S9, "pause"),
    ("fan", LBBOX, "fan"),
    ("fan", S9, "restarting"),
    ("frequency:lo_mhz=300", LV06, "safe range"),
    ("fan:lo_pct=5", LV06, "safe range"),
])
def test_unit_that_cannot_carry_a_channel_is_refused(spec, unit, message):
    with pytest.raises(ChannelError, match=message):
        parse_channels(spec).check(unit)


@pytest.mark.parametrize("spec,message", [
    ("", "empty"), ("voltage", "unknown channel"), ("fan:lo_pct", "key=value"),
    ("fan:speed=3", "bad option"), ("fan+fan", "twice"), ("difficulty:mode=cubic", "mode"),
    ("difficulty:eps=nan", "finite"), ("difficulty:eps=0", "eps > 0"),
    ("fan:lo_pct=20,hi_pct=40", "must be a number"),    # a comma instead of ':'
])
def test_bad_specifications(spec, message):
    with pytest.raises(ChannelError, match=message):
        parse_channels(spec)


def test_difficulty_needs_a_hashrate():
    with pytest.raises(ChannelError, match="hashrate"):
        parse_channels("difficulty").check(UnitInfo(model="x"))
    parse_channels("difficulty:d0=3").check(UnitInfo(model="x"))   # explicit D0 is fine


def test_mask_is_seeded_and_identity_for_one_slot():
    assert make_mask(1, 5).tolist() == [1.0]
    a, b, c = make_mask(8, 5), make_mask(8, 5), make_mask(8, 6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(a.tolist()) == {-1.0, 1.0}                      # binary, both signs
    with pytest.raises(ChannelError):
        make_mask(0, 1)
    with pytest.raises(ChannelError, match="mask has"):
        parse_channels("fan", slots=3, mask=[1.0, 0.5])


@given(u=st.floats(0.0, 0.5), slots=st.integers(1, 12), seed=st.integers(0, 2 ** 31))
def test_slot_values_stay_in_range_and_follow_mask(u, slots, seed):
    cs = parse_channels("difficulty", slots=slots, seed=seed)
    values = cs.slot_values(u)
    assert len(values) == slots
    assert all(-1e-12 <= v <= 0.5 + 1e-12 for v in values)
    # Each slot is an affine function of u with slope m_k (the mask value).
    shifted = cs.slot_values(min(u + 0.01, 0.5))
    for m, a, b in zip(cs.mask, values, shifted):
        assert b - a == pytest.approx(m * (min(u + 0.01, 0.5) - u), abs=1e-12)
