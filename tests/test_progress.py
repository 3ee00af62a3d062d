"""Progress bars show on a terminal (a real pty) and stay silent everywhere else."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import termios

from asic_reservoir.progress import advance_to, progress_bar


def _terminal() -> tuple[int, int]:
    """A real pty with an 80x24 window (a fresh pty reports 0 columns)."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    return leader, follower


def _read_all(fd: int) -> str:
    """Everything written to the pty so far (never blocks: nothing written reads as '')."""
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def test_bar_draws_on_a_terminal_with_label_count_and_fields():
    leader, follower = _terminal()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            bar = progress_bar(10, "experiment", stream=tty, unit="step")
            bar.mininterval = 0
            advance_to(bar, 4, temp=71.5)
            bar.refresh()
            tty.flush()
            out = _read_all(leader)
            bar.close()
    finally:
        os.close(leader)
        os.close(follower)
    assert "experiment" in out and "4/10" in out and "temp=71.5" in out


def test_bar_is_silent_off_a_terminal_and_when_disabled():
    log = io.StringIO()
    bar = progress_bar(3, "tpf", stream=log)
    bar.update(3)
    bar.close()
    assert log.getvalue() == ""
    leader, follower = _terminal()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            bar = progress_bar(3, "json mode", stream=tty, enabled=False)
            bar.update(3)
            bar.close()
            tty.write("end\n")
            tty.flush()
            assert _read_all(leader).strip() == "end"
    finally:
        os.close(leader)
        os.close(follower)


def test_advance_to_never_moves_back():
    leader, follower = _terminal()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            bar = progress_bar(10, "sim", stream=tty)
            advance_to(bar, 6)
            advance_to(bar, 3)
            assert bar.n == 6
            bar.close()
    finally:
        os.close(leader)
        os.close(follower)
