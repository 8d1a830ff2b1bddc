"""Reconnect delays: exponential with full jitter, so a restarted server is not stampeded."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)

    def next_delay(self) -> float:
        """A delay drawn from [0, min(cap, base * 2**attempt)]; the ceiling doubles each time."""
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0
