"""Fault injection: errors, dropped connections, latency, partial batch deletes. Seeded, changeable live."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

RATE_FIELDS = ("error_rate", "drop_rate", "drop_response_rate", "partial_delete_rate")


@dataclass(frozen=True)
class FaultSettings:
    """Probabilities are per request (``partial_delete_rate``: per receipt handle of a BatchDelete).

    - ``error_rate``: answer 503 ServiceUnavailable or 500 InternalError (half each) without doing anything.
    - ``drop_rate``: reset the connection without answering and without doing anything (request lost).
    - ``drop_response_rate``: do the operation, then reset the connection (response lost: the client cannot
      tell whether a send or delete happened, and may retry it).
    - ``latency_ms``: added before every request is handled.
    - ``partial_delete_rate``: in BatchDeleteMessage, report a handle in ``<Errors>`` and keep the message.
    """

    error_rate: float = 0.0
    drop_rate: float = 0.0
    drop_response_rate: float = 0.0
    latency_ms: float = 0.0
    partial_delete_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in RATE_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> FaultSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in values.items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class RequestPlan(NamedTuple):
    """What happens to one request."""

    latency: float  # seconds
    drop: bool  # reset before handling
    error_status: int | None  # 500/503 instead of handling
    drop_response: bool  # reset after handling


NO_FAULTS = RequestPlan(0.0, False, None, False)


class FaultInjector:
    """Draws from one seeded RNG under a lock: a single client sees the same faults on every seeded run."""

    def __init__(self, settings: FaultSettings | None = None, seed: int | None = None) -> None:
        self._settings = settings or FaultSettings()
        self._rng = random.Random(seed)  # noqa: S311 - fault injection, not cryptography
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: FaultSettings | None = None, /, **changes: float) -> FaultSettings:
        """Replace the settings (or change some of them); takes effect for the next request."""
        with self._lock:
            self._settings = replace(settings or self._settings, **changes)
            return self._settings

    def plan(self) -> RequestPlan:
        s = self._settings
        if not (s.error_rate or s.drop_rate or s.drop_response_rate or s.latency_ms):
            return NO_FAULTS
        with self._lock:
            rng = self._rng
            drop = s.drop_rate > 0 and rng.random() < s.drop_rate
            error_status = None
            if not drop and s.error_rate > 0 and rng.random() < s.error_rate:
                error_status = rng.choice((500, 503))
            drop_response = (
                not drop
                and error_status is None
                and s.drop_response_rate > 0
                and rng.random() < s.drop_response_rate
            )
            for kind, hit in (("drop", drop), ("error", error_status), ("drop_response", drop_response)):
                if hit:
                    self.injected[kind] += 1
        return RequestPlan(s.latency_ms / 1000.0, drop, error_status, drop_response)

    def fail_delete(self) -> bool:
        rate = self._settings.partial_delete_rate
        if rate <= 0:
            return False
        with self._lock:
            hit = self._rng.random() < rate
            if hit:
                self.injected["partial_delete"] += 1
            return hit
