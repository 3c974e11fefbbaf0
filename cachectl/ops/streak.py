"""Failures of a loop that goes on (a recorder's ticks, an alerting loop's rounds), counted so
that a dead server or a missing permission is one line in the log, not one a round, and the
loop still ends non-zero: exit 0 means every round did its job."""

from __future__ import annotations

from dataclasses import dataclass

from cachectl.errors import PartialFailure


@dataclass
class FailureStreak:
    """Every failed round counted; the first of a run of failures and the first round that
    succeeds after it each give a line to say; the loop's problem at the end (exit 6).
    Subclasses word the lines."""

    count: int = 0
    in_a_row: int = 0
    last_error: str | None = None

    def failed(self, number: int, error: str) -> str | None:
        """Counts a failed round; the line to say when it starts a run of failures."""
        self.count += 1
        self.in_a_row += 1
        self.last_error = error
        return self.failing_line(number, error) if self.in_a_row == 1 else None

    def succeeded(self, number: int) -> str | None:
        """A round that did its job; the line to say when it ends a run of failures."""
        failed, self.in_a_row = self.in_a_row, 0
        return self.recovered_line(number, failed) if failed else None

    def problem(self, rounds: int) -> PartialFailure | None:
        return self.problem_for(rounds) if self.count else None

    def failing_line(self, number: int, error: str) -> str:
        raise NotImplementedError

    def recovered_line(self, number: int, failed: int) -> str:
        raise NotImplementedError

    def problem_for(self, rounds: int) -> PartialFailure:
        raise NotImplementedError


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"
