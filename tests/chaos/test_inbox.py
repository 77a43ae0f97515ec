"""Exactly-once effects under kill -9, checked in PostgreSQL (RELIABILITY.md, "The inbox under kill -9").

At the default settings (60 s delivery lease, prefork pool, acks late): a handler that commits one row per
event through ``worker.inbox.claim``, workers killed again and again between that commit and the done marker
(pool processes, and two whole workers early on), a few hundred events: every event's row exists exactly
once. The same drain without ``claim`` shows the duplicates the inbox prevents (so the check can fail).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos.inboxcrash import run_crash_drain

pytestmark = pytest.mark.chaos


def test_every_effect_row_exists_exactly_once_under_repeated_kill_9(tmp_path: Path) -> None:
    result = run_crash_drain(tmp_path, events=300, claim=True)
    print("\ninbox with claim:", json.dumps(result.summary()), flush=True)
    assert result.drained, result.logs[-3000:]
    assert result.kills["worker"] == 2 and result.kills["child"] >= 10, result.summary()
    assert result.kills["in_window"] >= 10, result.summary()
    assert result.missing == 0 and result.duplicated == {}, result.summary()
    assert result.inbox_rows == result.events
    # The kills were not idle: the re-runs they caused found their effect applied, each turned into a no-op.
    assert result.already_applied >= result.kills["in_window"] // 2, result.summary()


def test_without_claim_the_same_kills_duplicate_effects(tmp_path: Path) -> None:
    result = run_crash_drain(tmp_path, events=150, claim=False, whole_workers=False)
    print("\ninbox without claim:", json.dumps(result.summary()), flush=True)
    assert result.drained, result.logs[-3000:]
    assert result.missing == 0
    assert result.kills["in_window"] >= 5, result.summary()
    assert len(result.duplicated) >= result.kills["in_window"] // 2, result.summary()
    assert result.inbox_rows == 0
