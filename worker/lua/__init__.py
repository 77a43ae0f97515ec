"""The worker's Redis scripts: one ``.lua`` file each in this package (package data), assembled here.

A script includes a fragment with a line ``--! include <name>`` (``journal``, ``envelope``): the loader puts
the fragment's text in its place. Fragments include nothing themselves. Each script's KEYS and ARGV are
documented at its top; the key names come from ``worker.keyspace``.

``source(name)`` is read and assembled once per process; ``register(client, name)`` wraps it in redis-py's
``Script`` (EVALSHA, loading the script on a NOSCRIPT reply), once per client by the module that uses it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.commands.core import AsyncScript, Script

SCRIPTS = (
    "publish",
    "ledger_begin",
    "ledger_done",
    "ledger_finish",
    "deadletter_add",
    "journal_note",
    "replay",
    "outbox_sweep",
    "flow_acquire",
    "flow_release",
    "flow_renew",
    "journal_received",
)
FRAGMENTS = ("journal", "envelope")

_INCLUDE = re.compile(r"^--! include (\w+)$", re.MULTILINE)


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _fragment(match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in FRAGMENTS:
        raise ValueError(f"unknown Lua fragment {name!r} (known: {', '.join(FRAGMENTS)})")
    text = _read(name)
    if _INCLUDE.search(text):
        raise ValueError(f"Lua fragment {name!r} includes another fragment")
    return text


@functools.cache
def source(name: str) -> str:
    """The script ``name`` with its includes in place."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown Lua script {name!r}")
    return _INCLUDE.sub(_fragment, _read(name))


@overload
def register(client: redis.asyncio.Redis, name: str) -> AsyncScript: ...
@overload
def register(client: redis.Redis, name: str) -> Script: ...
def register(client: redis.Redis | redis.asyncio.Redis, name: str) -> Script | AsyncScript:
    return client.register_script(source(name))
