"""Values that are obviously not real credentials: the placeholders example files ship.

Flower's password is checked against them at start-up (``worker.celerylog``); the shim refuses the same
kind of value as a webhook key. The deploy files ship ``change-me`` so that a copy left unedited fails to
start instead of running with a known secret.
"""

from __future__ import annotations

PLACEHOLDERS = frozenset(
    {"change-me", "changeme", "change_me", "replace-me", "replaceme", "replace_me", "secret", "test",
     "example", "password", "passwd", "xxx", "todo", "fixme", "none", "null"}
)  # fmt: skip


def is_placeholder(value: str) -> bool:
    """Empty after trimming, a known placeholder (case-insensitive), or an unfilled ``<...>`` template."""
    text = value.strip()
    return not text or text.lower() in PLACEHOLDERS or (text.startswith("<") and text.endswith(">"))
