"""Exponential backoff with full jitter, shared by the consumer loop and task retries."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before try number ``attempt`` (1-based): uniform in [base/2, min(cap, base * 2**(n-1))].

    Jitter spreads many pollers or tasks that failed together, so that they do not retry in lockstep.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    low = min(base / 2, ceiling)
    return (rng or random).uniform(low, ceiling)
