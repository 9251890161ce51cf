"""A per-client request budget (api.rate_per_minute), as GCRA: a steady rate with a minute's worth of burst.
Pure (time passed in). Kept per process: several processes each allow the rate, which bounds a runaway client
without a database write per request."""

from __future__ import annotations

import math


class RateLimiter:
    def __init__(self, per_minute: int, *, burst: int | None = None) -> None:
        self._interval = 60.0 / max(1, per_minute)
        self._tolerance = self._interval * max(0, (burst if burst is not None else per_minute) - 1)
        self._tat: dict[str, float] = {}  # each key's theoretical arrival time

    def check(self, key: str, now: float) -> int:
        """0 when the request may go (and counts it); otherwise the whole seconds to wait (Retry-After)."""
        tat = max(self._tat.get(key, now), now)
        allowed_at = tat - self._tolerance
        if now < allowed_at:
            return max(1, math.ceil(allowed_at - now))
        self._tat[key] = tat + self._interval
        if len(self._tat) > 10_000:  # forget keys whose budget is full again
            self._tat = {k: t for k, t in self._tat.items() if t > now}
        return 0
