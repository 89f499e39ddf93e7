"""Requests of one endpoint waiting their turn (for a place in flight, for a rate slot).

They are served in the order they came, so the extra line pages of a long invoice go
before those of invoices fetched after it. Patient requests let the others go first:
the pages of a backfill slice that cannot be split (objects created in one second, as
renewals sharing a billing date, read one page after another through the cursor) wait
behind the other slices' pages. Those are what finds the other such seconds, and each
of them is a chain of pages that takes its own time once found, so the sooner all are
found, the sooner the backfill ends (docs/benchmarks.md: 24 s where it took 29 at 250 ms,
in an account with 3,000 renewals in one second a month). Not locked: its owner's lock
guards it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(eq=False)
class Turn:
    patient: bool = False


class WaitingLine:
    def __init__(self) -> None:
        self._turns: deque[Turn] = deque()

    def __bool__(self) -> bool:
        return bool(self._turns)

    def join(self, patient: bool = False) -> Turn:
        """A place at the end of the line; for a request that is not patient, before the
        patient ones."""
        turn = Turn(patient)
        if patient:
            self._turns.append(turn)
        else:
            place = next(
                (place for place, other in enumerate(self._turns) if other.patient),
                len(self._turns),
            )
            self._turns.insert(place, turn)
        return turn

    def is_first(self, turn: Turn | None) -> bool:
        """Whether ``turn`` may go now: it is first, or the line is empty and it has no
        place (a request that found no one waiting)."""
        return self._turns[0] is turn if self._turns else turn is None

    def served(self, turn: Turn) -> None:
        """``turn`` went (it was first)."""
        self._turns.remove(turn)

    def leave(self, turn: Turn) -> bool:
        """``turn`` gave up its place (if it still had one); whether it had."""
        if turn in self._turns:
            self._turns.remove(turn)
            return True
        return False
