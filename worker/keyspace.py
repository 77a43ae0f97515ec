"""Every Redis key the worker writes, named in one place (ARCHITECTURE.md, "Keyspace").

The prefix is written once, here. A family of per-id keys is a prefix plus the id (``dedupe(id) ==
DEDUPE_PREFIX + id``); the Lua scripts (``worker/lua/``) never build a key name of their own: they get the
keys, or for a family its prefix, as arguments and only append an id to a prefix they were given. No script
takes a key name apart. kombu's own keys (its queues, ``unacked``, ``unacked_index``) are named by kombu's
channel, not here (``worker.execution.lease``, ``worker.delivery.outbox``).

Text from a payload (an event id, a business key value, a flow key) comes from whoever can send an event: it
goes through ``part`` before it becomes part of a name. A 63 KB ``MsgId`` made 63 KB key names (20x the body
in Redis, for the 14 days of a ``done:`` key), and one holding a newline wrote history under another event's
id. Short plain ASCII stands as is; anything else is named by its digest (``sha256~<hex>``), so the same text
always gets the same name: lookups (``trace``) and deduplication still work. Event ids use it too
(``worker.events.ids``).

A leaf module: it imports nothing of the worker, so every layer may use it.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "ims-worker"

# --- publishing (worker.delivery.publish, outbox) ----------------------------------------------------------
DEDUPE_PREFIX = f"{PREFIX}:dedupe:"  # + event id: enqueued within the dedupe window (value 1)
OUTBOX = f"{PREFIX}:outbox"  # hash: task id -> "<queue>\n<event JSON>"
OUTBOX_DUE = f"{PREFIX}:outbox:due"  # sorted set: task id -> deadline (unix ms)
OUTBOX_SWEEPING = f"{PREFIX}:outbox:sweeping"  # the sweep lock (one worker sweeps at a time)
SUSPECT_PREFIX = f"{PREFIX}:outbox:suspect:"  # + task id: when a sweep first found the copy nowhere
HELD_PREFIX = f"{PREFIX}:held:"  # + task id: the delivery tag kombu holds it under (worker.execution.lease)

# --- the handler ledger (worker.execution.ledger) ----------------------------------------------------------
DONE_PREFIX = f"{PREFIX}:done:"  # + "<event id>:<handler>": the handler succeeded for the event
CLAIM_PREFIX = f"{PREFIX}:claim:"  # + "<event id>:<handler>": a task runs the handler now (its task id)
REDELIVERIES_PREFIX = f"{PREFIX}:redeliveries:"  # + task id: redeliveries after a worker loss
FAILURES_PREFIX = f"{PREFIX}:failures:"  # + task id: failed attempts
REPLAY_PREFIX = f"{PREFIX}:replay:"  # + task id: the handler names a replay forces, one per line

# --- dead letters (worker.delivery.deadletter) -------------------------------------------------------------
DEADLETTERS = f"{PREFIX}:deadletters"  # stream
DEADLETTER_ONCE_PREFIX = f"{PREFIX}:deadletter-once:"  # + once key (an MNS message id)
DEADLETTER_USAGE = f"{PREFIX}:deadletters:usage"  # hash "<source>|n" / "<source>|bytes": what a source holds

# --- metrics and the journal (worker.journal) --------------------------------------------------------------
STATS = f"{PREFIX}:stats"  # hash of fleet-wide counters
JOURNAL_PREFIX = f"{PREFIX}:j:"
JOURNAL_INDEX = f"{JOURNAL_PREFIX}idx"  # sorted set: event id -> first seen (unix ms)
JOURNAL_FAILED = f"{JOURNAL_PREFIX}failed"  # sorted set: event id -> when it failed or was dead-lettered
JOURNAL_ENTRIES_PREFIX = f"{JOURNAL_PREFIX}e:"  # + event id: list of JSON entries
JOURNAL_PAYLOAD_PREFIX = f"{JOURNAL_PREFIX}p:"  # + event id: the event as JSON, for replay
JOURNAL_VALUE_PREFIX = f"{JOURNAL_PREFIX}v:"  # + part(business key value): sorted set "<Name>|<event id>"
JOURNAL_KEYS_OF_PREFIX = f"{JOURNAL_PREFIX}k:"  # + event id: hash, value key -> its member (for the trim)
# What every journaling script gets first in KEYS (see worker/lua/journal.lua).
JOURNAL_KEYS = (STATS, JOURNAL_INDEX, JOURNAL_FAILED)

# --- flow control (worker.execution.flow) ------------------------------------------------------------------
FLOW_PREFIX = f"{PREFIX}:flow:"
FLOW_DEFERRALS = f"{FLOW_PREFIX}deferrals"  # hash "<handler>|<reason>" -> deferrals counted

# --- the demo (worker.devtools) ----------------------------------------------------------------------------
DEMO_HANDLED = f"{PREFIX}:demo:handled"


MAX_PART = 128
# Printable ASCII without space, "|" or "\" (the separators of the scripts' records), at most MAX_PART long.
SAFE_PART = re.compile(r"[!-{}~]{1,128}")
_SEPARATORS = frozenset("|\\")


def part(value: str) -> str:
    """``value`` as it may appear in a key name or record: itself when short and plain, else its digest."""
    if SAFE_PART.fullmatch(value) and not _SEPARATORS.intersection(value):
        return value
    return "sha256~" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def dedupe(event_id: str) -> str:
    return DEDUPE_PREFIX + event_id


def held(task_id: str) -> str:
    return HELD_PREFIX + task_id


def suspect(task_id: str) -> str:
    return SUSPECT_PREFIX + task_id


def done(event_id: str, handler: str) -> str:
    return f"{DONE_PREFIX}{event_id}:{handler}"


def claim(event_id: str, handler: str) -> str:
    return f"{CLAIM_PREFIX}{event_id}:{handler}"


def redeliveries(task_id: str) -> str:
    return REDELIVERIES_PREFIX + task_id


def failures(task_id: str) -> str:
    return FAILURES_PREFIX + task_id


def replay(task_id: str) -> str:
    return REPLAY_PREFIX + task_id


def deadletter_once(once_key: str) -> str:
    return DEADLETTER_ONCE_PREFIX + once_key


def journal_entries(event_id: str) -> str:
    return JOURNAL_ENTRIES_PREFIX + event_id


def journal_payload(event_id: str) -> str:
    return JOURNAL_PAYLOAD_PREFIX + event_id


def journal_value(value: str) -> str:
    return JOURNAL_VALUE_PREFIX + part(value)


def flow_lock(handler: str, key: str) -> str:
    """The key lock, a lease (``SET NX PX``) holding the run's token."""
    return f"{FLOW_PREFIX}lock:{handler}:{part(key) if key else key}"


def flow_newest(handler: str, key: str) -> str:
    """``occurred_at`` (unix ms) of the newest event completed for that key."""
    return f"{FLOW_PREFIX}newest:{handler}:{part(key) if key else key}"


def flow_slots(handler: str) -> str:
    """The concurrency slots: a sorted set of run tokens scored by lease expiry."""
    return f"{FLOW_PREFIX}slots:{handler}"


def flow_rate(handler: str) -> str:
    """The rate limiter's state: hash ``tat``/``tail``."""
    return f"{FLOW_PREFIX}rate:{handler}"


def flow_booked(handler: str) -> str:
    """The rate limiter's bookings: sorted set of run tokens by booked start."""
    return f"{FLOW_PREFIX}rate:{handler}:booked"
