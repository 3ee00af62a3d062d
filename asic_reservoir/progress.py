"""Progress bars for long work: tqdm on stderr, and silent where nobody watches.

A bar shows only when it is enabled (commands pass ``not --json`` / ``not --quiet``) and its
stream is a terminal, so logs, CI output and JSON consumers never see carriage-return noise.
Live fields (shares/s, temperature, ...) go in the bar's postfix.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def progress_bar(total: int | None, label: str, *, enabled: bool = True,
                 stream: TextIO | None = None, unit: str = "it") -> tqdm:
    """A tqdm bar for ``total`` items, labelled ``label``; disabled off a terminal."""
    stream = sys.stderr if stream is None else stream
    return tqdm(total=total, desc=label, file=stream, unit=unit, dynamic_ncols=True,
                mininterval=0.5, leave=False, disable=not (enabled and stream.isatty()))


def advance_to(bar: tqdm, position: int, **fields: object) -> None:
    """Move ``bar`` forward to ``position`` (never back), showing ``fields`` as its postfix."""
    if fields:
        bar.set_postfix(fields, refresh=False)
    if position > bar.n:
        bar.update(position - bar.n)
