"""Value formatting shared by the firmware emulations.

cgminer-family firmware builds its JSON by hand with printf formats (``%.2f`` for
hash rates, ``%.8f`` for difficulties, strings for some rates), and the Bitmain
and ESP-Miner firmwares print hash rates and difficulties through cgminer's
``suffix_string``.  Clients parse exactly these spellings, so they are
reproduced here instead of letting ``json.dumps`` choose.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Fixed:
    """A number printed with a printf format, e.g. ``Fixed(1.5, "%.2f")`` -> ``1.50``."""

    value: float
    fmt: str = "%.2f"

    def render(self) -> str:
        v = self.value
        if not math.isfinite(v):
            v = 0.0
        return self.fmt % v


Value = Union[str, int, float, bool, Fixed]
Items = Sequence[tuple[str, Value]]


def render_value(value: Value, isjson: bool = True) -> str:
    """One value the way cgminer's print_data writes it (JSON or text mode)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Fixed):
        return value.render()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%f" % (value if math.isfinite(value) else 0.0)
    text = str(value)
    if isjson:
        return json.dumps(text, ensure_ascii=False)
    return text.replace(",", "\\,").replace("|", "\\|")


def render_items(items: Iterable[tuple[str, Value]], isjson: bool = True) -> str:
    """An object (JSON) or a ``k=v,...|`` record (text mode)."""
    if isjson:
        body = ",".join(f'"{k}":{render_value(v)}' for k, v in items)
        return "{" + body + "}"
    return ",".join(f"{k}={render_value(v, False)}" for k, v in items) + "|"


_UNITS = ((10**18, 10**15, "E"), (10**15, 10**12, "P"), (10**12, 10**9, "T"),
          (10**9, 10**6, "G"), (10**6, 10**3, "M"))


def suffix_string(val: float, sigdigits: int = 0) -> str:
    """cgminer's ``suffix_string``: 4290000000 -> ``"4.29G"``, 512 -> ``"512"``.

    ESP-Miner (and the Lucky LV06 clone) print ``bestDiff`` with it; cgminer
    prints a pool's ``Diff`` with it.
    """
    ival = max(0, int(val))
    suffix = ""
    decimal = True
    for limit, div, suf in _UNITS:
        if ival >= limit:
            dval = (ival // div) / 1000.0
            suffix = suf
            break
    else:
        if ival >= 1000:
            dval = ival / 1000.0
            suffix = "K"
        else:
            dval = float(ival)
            decimal = False
    if not sigdigits:
        if decimal:
            return "%.3g%s" % (dval, suffix)
        return "%d%s" % (int(dval), suffix)
    return _c_fixed(dval, sigdigits) + suffix


def bitmain_rate_string(hashes_per_s: float, sigdigits: int) -> str:
    """bmminer's ``suffix_string_c5`` as used for "GHS 5s" and ``chain_rateN``.

    It scales an H/s counter to G (or M, K) but prints no suffix, so a running
    S9 shows e.g. ``"13512.45"`` (GH/s) while a unit hashing under 1 GH/s shows
    its rate in a smaller unit without saying so, exactly as the real firmware.
    """
    val = max(0, int(hashes_per_s))
    if val >= 10**9:
        dval = (val // 10**6) / 1000.0
    elif val >= 10**6:
        dval = (val // 10**3) / 1000.0
    elif val >= 1000:
        dval = val / 1000.0
    else:
        dval = float(val)
    return _c_fixed(dval, sigdigits)


def _c_fixed(dval: float, sigdigits: int) -> str:
    """``printf("%*.*f", sigdigits + 1, ndigits, dval)``; C treats a negative precision as 6."""
    ndigits = sigdigits - 1 - (int(math.floor(math.log10(dval))) if dval > 0.0 else 0)
    return "%*.*f" % (sigdigits + 1, ndigits if ndigits >= 0 else 6, dval)
