"""A training run's budget: a step count, a wall time, or both (whichever ends it first)."""

from __future__ import annotations


def step_budget(steps: int | None, minutes: float | None, default_steps: int) -> int | None:
    """The steps that end a run: `steps` if given, else `default_steps` unless `minutes` gives a
    time budget (which a default step count would otherwise cut short). None: no step limit."""
    if steps is not None:
        return steps
    return None if minutes else default_steps


def budget_progress(step: int, seconds: float, steps: int | None, minutes: float | None) -> float:
    """How far through its budget a run is (1 = the end): whichever budget is further along."""
    by_steps = step / steps if steps else 0.0
    by_time = seconds / (60 * minutes) if minutes else 0.0
    return max(by_steps, by_time)
