"""The task wrapper's side of ``worker.inbox``: what a handler's claims said, and a replay's forced re-run.

The Redis done marker stays the fast path (a handler marked done is not called at all); when the handler is
called anyway (its process died after its transaction committed, before the marker; a replay), the inbox
row in its database is the truth and ``claim`` answers False. The journal records each handler's answer
(``ims-worker trace``: step ``inbox``), one write per handler that claimed.
"""

from __future__ import annotations

import redis
import structlog

from worker import keyspace
from worker.inbox.claim import ALREADY
from worker.journal.writer import JournalWriter

log = structlog.get_logger(__name__)

REAPPLY_LINE = "!reapply"  # in a replay record (one name a line): `ims-worker replay --reapply`


def reapply_requested(client: redis.Redis, task_id: str, handler: str) -> bool:
    """Whether this task is a replay that forces ``handler`` to apply its effect again (read only when the
    inbox already has the row, so an ordinary run never pays for it)."""
    record = client.get(keyspace.replay(task_id))
    if record is None:
        return False
    text = record.decode("utf-8", "replace") if isinstance(record, bytes) else str(record)
    lines = text.split("\n")
    return REAPPLY_LINE in lines and handler in lines


def journal_claims(journal: JournalWriter, event_id: str, handler: str, claims: list[str]) -> None:
    verdict = claims[-1] if len(set(claims)) == 1 else ", ".join(claims)
    if ALREADY in claims:  # a re-run of an effect that committed: the handler's own database said so
        log.info("task.inbox_already_applied", handler=handler)
    journal.note(event_id, "inbox", h=handler, why=verdict)
