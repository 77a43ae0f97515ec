"""What the ledger plugin (``tests.plugins.ledger``) and the ledger checker (``tests.chaos.ledger``) agree on.

Kept apart from the plugin so that the checker can know the plugin's handlers without importing it: importing
the plugin registers its handlers in the process-wide registry, which only the Celery worker should do.
"""

from __future__ import annotations

from worker.execution.registry import Subscription

PLUGIN = "tests.plugins.ledger"
LEDGER_STREAM = "chaos:ledger"  # one entry per handler run (see tests/plugins/ledger.py)
LEDGER_URL_ENV = "IMS_CHAOS_LEDGER_URL"  # optional: keep the stream on a Redis the scenario does not break

# An event whose raw payload carries this field is poison for the ``poison`` handler:
# "retry" -> it raises RuntimeError on every attempt (dead-lettered once the attempts are spent);
# "permanent" -> it raises worker.Permanent (dead-lettered at once).
POISON_FIELD = "ChaosPoison"
POISON_RETRY = "retry"
POISON_PERMANENT = "permanent"

# An event whose raw payload carries this field (seconds) makes ``record_all`` sleep that long first.
SLOW_FIELD = "ChaosSlow"


def started_key(event_id: str) -> str:
    """Incremented by ``record_all`` when it starts the sleep of a slow event."""
    return f"chaos:started:{event_id}"


RECORD_ALL = f"{PLUGIN}:record_all"
RECORD_IMS = f"{PLUGIN}:record_ims"
POISON = f"{PLUGIN}:poison"
PATTERNS: dict[str, str] = {RECORD_ALL: "*", RECORD_IMS: "ims.*", POISON: "*"}


def _never(event: object) -> None:  # pragma: no cover - a stand-in: these subscriptions are only matched
    raise AssertionError("not a handler")


SUBSCRIPTIONS = tuple(Subscription(pattern, _never, name) for name, pattern in PATTERNS.items())


def handlers_for(event_type: str) -> list[str]:
    """The ledger plugin's handlers the worker runs for ``event_type`` (matched as the registry does)."""
    return sorted(s.name for s in SUBSCRIPTIONS if s.matches(event_type))
