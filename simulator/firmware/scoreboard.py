"""ESP-Miner's best-difficulty scoreboard (v2.15.0 ``main/tasks/scoreboard.c``): the 20 best
chip results a unit ever found, kept in NVS so that they survive restarts.

``asic_result_task.c`` adds every chip result (pool share or not) with its job id,
extranonce2, ntime, nonce and version bits (the rolled version XOR the job's); the list
stays sorted by difficulty, a tie goes after the entries already there, and once full a
result no better than the last one is dropped. ``GET /api/system/scoreboard`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SCOREBOARD = 20                    # scoreboard.h


@dataclass(frozen=True)
class ScoreboardEntry:
    difficulty: float
    job_id: str
    extranonce2: str
    ntime: int
    nonce: int
    version_bits: int

    def as_json(self) -> dict:
        """GET_scoreboard's object: nonce and version bits as 8 upper-case hex digits."""
        return {"difficulty": self.difficulty, "job_id": self.job_id[:31],
                "extranonce2": self.extranonce2[:31], "ntime": self.ntime,
                "nonce": f"{self.nonce:08X}", "version_bits": f"{self.version_bits:08X}"}


class Scoreboard:
    """The sorted best-results list, as ``scoreboard_add`` maintains it."""

    def __init__(self) -> None:
        self.entries: list[ScoreboardEntry] = []

    def add(self, entry: ScoreboardEntry) -> None:
        if len(self.entries) == MAX_SCOREBOARD and entry.difficulty <= self.entries[-1].difficulty:
            return
        i = min(len(self.entries), MAX_SCOREBOARD - 1)
        while i > 0 and entry.difficulty > self.entries[i - 1].difficulty:
            i -= 1
        self.entries.insert(i, entry)
        del self.entries[MAX_SCOREBOARD:]

    def as_json(self) -> list[dict]:
        return [e.as_json() for e in self.entries]
