"""Values that are obviously not real credentials: the placeholders example files and templates ship.

The shim refuses them as webhook keys (``worker.shim.arming``) and Flower's start-up check as passwords
(``worker.execution.celerylog``); the deploy files ship ``change-me`` so that a copy left unedited fails to
start instead of running with a published secret.
"""

from __future__ import annotations

import re

# Values copied from examples and templates, never real keys (compared case-insensitively).
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "change-this",
        "changeit",
        "secret",
        "test",
        "testing",
        "example",
        "placeholder",
        "replace-me",
        "replaceme",
        "replace_me",
        "xxx",
        "todo",
        "tbd",
        "key",
        "your-key",
        "yourkey",
        "your_key",
        "password",
        "none",
        "null",
        "default",
        "demo",
    }
)
_PLACEHOLDER_SHAPES = re.compile(r"x+|\*+|<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}|your[-_ ].*", re.IGNORECASE)


def is_placeholder(value: str) -> bool:
    """A known placeholder (case-insensitive) or a template shape (``<key>``, ``${KEY}``, ``xxxx``...)."""
    text = value.strip()
    return text.lower() in PLACEHOLDERS or bool(_PLACEHOLDER_SHAPES.fullmatch(text))
