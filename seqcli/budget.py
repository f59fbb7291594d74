"""The time budget of a run (`train.max_minutes`): when to stop so that the run ends in time.

The budget covers everything after setup: updates, validations, and the end-of-training
steps (checkpoint averaging, length-penalty tuning). Before each update the loop asks
whether the update, the validation that must follow the last one and the end-of-training
steps still fit; it judges from the durations it has seen, so a slow update (a busy machine)
or a slow validation ends training early enough instead of overrunning by one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

# How much of the previous estimate an update's duration replaces (an exponential average:
# a sudden slowdown shows within a few updates).
STEP_WEIGHT = 0.5


@dataclass
class TimeBudget:
    """Seconds allowed (0: no limit), and the durations seen so far."""

    seconds: float
    # The end-of-training steps, counted in validations (checkpoint averaging validates once;
    # a length-penalty search runs a beam search on valid per alpha).
    finish_in_validations: float = 0.0
    step_seconds: float = 0.0  # recent updates, averaged
    validation_seconds: float = 0.0  # the last validation

    @property
    def is_limited(self) -> bool:
        return self.seconds > 0

    def count_step(self, seconds: float) -> None:
        previous = self.step_seconds or seconds
        self.step_seconds = STEP_WEIGHT * seconds + (1 - STEP_WEIGHT) * previous

    def reserve(self) -> float:
        """Seconds to keep for the last validation and the end-of-training steps."""
        return self.validation_seconds * (1 + self.finish_in_validations)

    def allows_step(self, elapsed: float) -> bool:
        """Whether one more update, then the validation and the end-of-training steps, fit."""
        return not self.is_limited or elapsed + self.step_seconds + self.reserve() <= self.seconds

    def training_seconds(self) -> float:
        """The share of the budget for updates and the validations between them (what a
        schedule over the budget spans)."""
        return max(self.seconds - self.reserve(), 1.0)

    def left(self, elapsed: float) -> float:
        return self.seconds - elapsed if self.is_limited else float("inf")
