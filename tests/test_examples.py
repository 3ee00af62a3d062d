"""The public API and the scripts in examples/, run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import asic_reservoir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_every_public_name_resolves_and_says_what_it_is_for():
    for name in asic_reservoir.__all__:
        value = getattr(asic_reservoir, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"asic_reservoir.{name} has no docstring"
    assert set(asic_reservoir.__all__) <= set(dir(asic_reservoir))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        asic_reservoir.nope  # noqa: B018


def test_a_pool_only_script_does_not_load_the_analysis_stack():
    code = ("import sys, asic_reservoir.drivers.stratum; "
            "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'asic_reservoir.analysis', "
            "'asic_reservoir.simulator'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_narma_example_records_and_scores_a_run(tmp_path):
    out = tmp_path / "narma.db"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "narma_on_simulator.py"), "--steps", "100",
                           "--runs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{out}: 100 steps" in proc.stdout
    with asic_reservoir.RunReader(out) as run:
        assert run.meta.units[0].model == "lv06" and run.count("steps") == 100
        assert run.count("shares") > 0
    table = proc.stdout.splitlines()
    for kind, readout in (("hardware", "hardware"), ("control", "input only"),
                          ("baseline", "mean"), ("baseline", "ridge 10 delays"),
                          ("baseline", "ESN-100")):
        assert any(line.split()[:1] == [kind] and f" {readout} " in line for line in table), \
            (kind, readout, proc.stdout)


@pytest.mark.slow
def test_fingerprint_example_enrolls_then_identifies_the_unit_it_read(tmp_path):
    store = tmp_path / "fp.db"
    proc = subprocess.run([sys.executable, str(EXAMPLES / "fingerprint_units.py"), "--store",
                           str(store), "--steps-per-phase", "4"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines() if ":" in line)
    ranked = [part.split(" (")[0].strip() for part in lines["identify"].split(",")]
    assert sorted(ranked) == ["unit11", "unit12", "unit13"]
    assert ranked[0] == "unit12"          # the unit re-read is the nearest enrollment
    assert store.exists()
