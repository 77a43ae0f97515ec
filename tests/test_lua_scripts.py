"""Each pipeline script of ``worker/lua/`` called directly against a real redis-server, with the KEYS and
ARGV its header documents (the modules that call them: test_publish, test_app_ledger, test_outbox...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis

from worker import keyspace, lua
from worker.journal.config import JournalConfig

pytestmark = pytest.mark.integration

NOW = 1_700_000_000_000
JOURNAL = JournalConfig(True, 3600, 1000, 4, 10, 600)
J = list(keyspace.JOURNAL_KEYS)
EVENT = '{"type":"ims.FileUploadComplete","id":"ev-1","source":"ims"}'


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    # The events these tests journal were received (in the index): the journal writes only for those.
    c.zadd(keyspace.JOURNAL_INDEX, {"ev": NOW, "ev-1": NOW})
    yield c
    c.close()


def script(client: redis.Redis, name: str) -> Callable[..., Any]:
    """The script as redis-py calls it (``keys=``, ``args=``); untyped: the tests pass mixed arguments."""
    return lua.register(client, name)


def entries(client: redis.Redis, event_id: str) -> list[dict[str, object]]:
    return [json.loads(e) for e in client.lrange(keyspace.journal_entries(event_id), 0, -1)]


def test_publish_marks_enqueues_records_and_journals_once(client: redis.Redis) -> None:
    publish = script(client, "publish")
    keys = [*J, keyspace.OUTBOX, keyspace.OUTBOX_DUE, keyspace.dedupe("ev-1"), "ims"]
    blob = 'ev-1\n{"t":1,"e":"received"}'
    args = [JOURNAL.line(NOW), "0", NOW + 60_000, "task-1", 300, EVENT, blob]
    assert publish(keys=keys, args=args) == [1]
    assert client.get(keyspace.dedupe("ev-1")) == b"1" and 295 <= client.ttl(keyspace.dedupe("ev-1")) <= 300
    (message,) = client.lrange("ims", 0, -1)
    envelope = json.loads(message)
    assert envelope["headers"] == {"task": "ims.FileUploadComplete", "id": "task-1", "argsrepr": '["ev-1"]'}
    assert envelope["properties"]["delivery_tag"] == "task-1"
    assert json.loads(envelope["body"]) == [["ev-1"], {}, {}]
    assert client.hget(keyspace.OUTBOX, "task-1") == b"ims\n" + EVENT.encode()
    assert client.zscore(keyspace.OUTBOX_DUE, "task-1") == NOW + 60_000
    assert [e["e"] for e in entries(client, "ev-1")] == ["received", "enqueued"]
    assert client.zscore(keyspace.JOURNAL_INDEX, "ev-1") == NOW

    args[3] = "task-2"  # the same event again: a duplicate, nothing enqueued
    assert publish(keys=keys, args=args) == [0]
    assert client.llen("ims") == 1 and not client.hexists(keyspace.OUTBOX, "task-2")
    assert entries(client, "ev-1")[-1] == {"t": NOW, "e": "duplicate", "first": NOW}

    args[1] = "1"  # bypass: a redrive enqueues regardless
    assert publish(keys=keys, args=args) == [1] and client.llen("ims") == 2


def test_publish_refuses_what_is_not_an_event_and_writes_nothing(client: redis.Redis) -> None:
    keys = [*J, keyspace.OUTBOX, keyspace.OUTBOX_DUE, keyspace.dedupe("x"), "ims"]
    with pytest.raises(redis.ResponseError, match="event 1 is not an event JSON"):
        script(client, "publish")(keys=keys, args=["", "0", NOW, "t", 60, '{"id":"x"}', ""])
    assert client.dbsize() == 1  # the index the fixture wrote, nothing else


def begin_keys(task: str, handlers: list[str]) -> list[str]:
    own = [keyspace.redeliveries(task), keyspace.OUTBOX_DUE, keyspace.replay(task)]
    return [
        *J,
        *own,
        *(keyspace.done("ev", h) for h in handlers),
        *(keyspace.claim("ev", h) for h in handlers),
    ]


def begin_args(task: str, handlers: list[str], redelivered: str = "0", journal: str = "") -> list[object]:
    return [journal, task, 30, redelivered, 3600, NOW, "ev", 1, '[["MediaId","m-1"]]', EVENT, *handlers]


def test_ledger_begin_skips_done_claims_free_and_reports_busy(client: redis.Redis) -> None:
    begin = script(client, "ledger_begin")
    client.set(keyspace.done("ev", "a"), "old-task")
    client.set(keyspace.claim("ev", "c"), "other-task")
    client.zadd(keyspace.OUTBOX_DUE, {"task": 1})
    handlers = ["a", "b", "c"]
    reply = begin(
        keys=begin_keys("task", handlers), args=begin_args("task", handlers, journal=JOURNAL.line(NOW))
    )
    assert reply == [0, 0, 1, 2]
    assert client.get(keyspace.claim("ev", "b")) == b"task" and client.ttl(keyspace.claim("ev", "b")) <= 30
    assert client.zscore(keyspace.OUTBOX_DUE, "task") == NOW  # the deadline moved out
    kinds = [(e["e"], e.get("h")) for e in entries(client, "ev")]
    assert kinds == [("attempt", None), ("skipped", "a")]
    assert client.zrange(keyspace.journal_value("m-1"), 0, -1) == [b"MediaId|ev"]
    assert client.get(keyspace.journal_payload("ev")) == EVENT.encode()
    # Redelivered: counted; our own claim is taken over.
    reply = begin(keys=begin_keys("task", handlers), args=begin_args("task", handlers, redelivered="1"))
    assert reply == [1, 0, 1, 2]


def test_ledger_begin_runs_only_what_a_replay_record_names_even_if_done(client: redis.Redis) -> None:
    client.set(keyspace.done("ev", "a"), "old-task")
    client.set(keyspace.done("ev", "b"), "old-task")
    client.set(keyspace.replay("replay-task"), "a")
    handlers = ["a", "b", "c"]
    reply = script(client, "ledger_begin")(
        keys=begin_keys("replay-task", handlers), args=begin_args("replay-task", handlers)
    )
    assert reply == [0, 1, 0, 0]  # a forced; b done and not named; c not named


def test_ledger_done_marks_and_drops_only_its_own_claim(client: redis.Redis) -> None:
    done = script(client, "ledger_done")
    client.set(keyspace.claim("ev", "a"), "task")
    client.set(keyspace.claim("ev", "b"), "other")
    for h in ("a", "b"):
        keys = [*J, keyspace.done("ev", h), keyspace.claim("ev", h)]
        assert done(keys=keys, args=[JOURNAL.line(NOW), "task", 3600, "ev", h, 12.5]) == 1
    assert client.get(keyspace.done("ev", "a")) == b"task" and client.ttl(keyspace.done("ev", "a")) > 3500
    assert not client.exists(keyspace.claim("ev", "a")) and client.get(keyspace.claim("ev", "b")) == b"other"
    assert entries(client, "ev")[0] == {"t": NOW, "e": "succeeded", "h": "a", "ms": 12.5}


def test_ledger_finish_releases_counts_journals_and_drops_the_outbox_copy(client: redis.Redis) -> None:
    finish = script(client, "ledger_finish")
    client.set(keyspace.claim("ev", "a"), "task")
    client.set(keyspace.claim("ev", "b"), "other")
    client.hset(keyspace.OUTBOX, "task", "ims\n{}")
    client.zadd(keyspace.OUTBOX_DUE, {"task": 1})
    keys = [*J, keyspace.failures("task"), keyspace.OUTBOX, keyspace.OUTBOX_DUE]
    keys += [keyspace.claim("ev", "a"), keyspace.claim("ev", "b")]
    failed = '{"t":1,"e":"failed","h":"a"}'
    args = [JOURNAL.line(NOW), "task", 600, "1", "0", "ev", "failed|a\t1", failed]
    assert finish(keys=keys, args=args) == 1
    assert finish(keys=keys, args=args) == 2  # a second failed attempt
    assert not client.exists(keyspace.claim("ev", "a")) and client.exists(keyspace.claim("ev", "b"))
    assert client.hexists(keyspace.OUTBOX, "task")
    assert client.zscore(keyspace.JOURNAL_FAILED, "ev") == NOW
    assert client.hget(keyspace.STATS, "failed|a") == b"2"
    assert finish(keys=keys, args=[JOURNAL.line(NOW), "task", 600, "0", "1", "ev", ""]) == 2  # handled
    assert not client.hexists(keyspace.OUTBOX, "task") and not client.zscore(keyspace.OUTBOX_DUE, "task")
    assert [e["e"] for e in entries(client, "ev")] == ["failed", "failed", "handled"]


def test_deadletter_add_once_per_once_key_with_journal_and_counter(client: redis.Redis) -> None:
    add = script(client, "deadletter_add")
    keys = [*J, keyspace.DEADLETTERS, keyspace.DEADLETTER_USAGE, keyspace.deadletter_once("mid-1")]
    head = [JOURNAL.line(NOW), 60, "ev", "bad", "deadlettered|ims|x\t1", "ims", 5, 3, 1000]
    args = [*head, "raw", "{}", "reason", "bad"]
    entry_id = add(keys=keys, args=args)
    assert entry_id and add(keys=keys, args=args) is None  # the once key holds
    ((_, fields),) = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keyspace.DEADLETTERS))
    assert fields == {b"raw": b"{}", b"reason": b"bad"}
    assert entries(client, "ev") == [
        {"t": NOW, "e": "dead-lettered", "reason": "bad", "dl": entry_id.decode()}
    ]
    assert client.zscore(keyspace.JOURNAL_FAILED, "ev") == NOW
    assert client.hget(keyspace.STATS, "deadlettered|ims|x") == b"1"
    assert add(keys=keys[:-1], args=args) and client.xlen(keyspace.DEADLETTERS) == 2  # no once key: always
    assert client.hgetall(keyspace.DEADLETTER_USAGE) == {b"ims|n": b"2", b"ims|bytes": b"10"}
    assert add(keys=keys[:-1], args=args) and add(keys=keys[:-1], args=args) == -1  # the cap of 3 entries
    assert add(keys=keys[:-1], args=[*head[:6], 5, 100, 12, "raw", "{}"]) == -1  # 15 + 5 bytes > 12 bytes
    assert client.xlen(keyspace.DEADLETTERS) == 3


def test_journal_note_appends_marks_failed_and_counts_even_when_off(client: redis.Redis) -> None:
    note = script(client, "journal_note")
    assert note(keys=J, args=[JOURNAL.line(NOW), "ev", "retried\t1", "1", '{"e":"retry"}', '{"e":"x"}']) == 1
    assert [e["e"] for e in entries(client, "ev")] == ["retry", "x"]
    assert client.zscore(keyspace.JOURNAL_FAILED, "ev") == NOW
    assert note(keys=J, args=["", "ev2", "retried\t1", "1", '{"e":"retry"}']) == 1  # journal off
    assert (
        not client.exists(keyspace.journal_entries("ev2")) and client.hget(keyspace.STATS, "retried") == b"2"
    )


def test_journal_entries_are_capped_keeping_the_first(client: redis.Redis) -> None:
    note = script(client, "journal_note")
    for i in range(10):
        note(keys=J, args=[JOURNAL.line(NOW), "ev", "", "0", json.dumps({"e": str(i)})])
    assert [e["e"] for e in entries(client, "ev")] == ["0", "7", "8", "9"]  # a cap of 4


def test_replay_records_enqueues_and_journals(client: redis.Redis) -> None:
    keys = [*J, "ims", keyspace.replay("task-r")]
    args = [JOURNAL.line(NOW), b"message", "a\nb", 600, "ev", '{"e":"replayed"}']
    assert script(client, "replay")(keys=keys, args=args) == 1
    assert client.get(keyspace.replay("task-r")) == b"a\nb" and client.ttl(keyspace.replay("task-r")) > 590
    assert client.lrange("ims", 0, -1) == [b"message"]
    assert entries(client, "ev") == [{"e": "replayed"}]


def sweep(client: redis.Redis, unacked: str = "unacked", now: int = NOW) -> list[object]:
    keys = [keyspace.OUTBOX, keyspace.OUTBOX_DUE, unacked]
    args = [now, 100, "-inf", 0, 64, 5000, keyspace.HELD_PREFIX, 0, keyspace.SUSPECT_PREFIX]
    return list(script(client, "outbox_sweep")(keys=keys, args=args))


def test_outbox_sweep_reenqueues_a_copy_found_nowhere_and_leaves_held_and_queued_ones(
    client: redis.Redis,
) -> None:
    for task in ("lost", "held", "queued"):
        client.hset(keyspace.OUTBOX, task, f"ims\n{EVENT}")
        client.zadd(keyspace.OUTBOX_DUE, {task: NOW - 1000})
    client.set(keyspace.held("held"), "tag-7")
    client.hset("my-unacked", "tag-7", "...")  # the channel's unacked hash, under the name it was given
    client.lpush("ims", '{"headers": {"id": "queued"}}')
    assert sweep(client, unacked="my-unacked") == [1, 3, str(NOW - 1000).encode(), 3]
    pushed = json.loads(cast(bytes, client.lindex("ims", -1)))
    assert pushed["headers"]["id"] == "lost" and client.llen("ims") == 2
    assert json.loads(pushed["body"]) == [["ev-1"], {}, {}]
    assert sweep(client, unacked="unacked")[0] == 1  # not held under the name asked: "held" is lost too


def test_journal_received_indexes_and_journals_what_kombu_sent(client: redis.Redis) -> None:
    received = '{"t":1,"e":"received","src":"ims","type":"ims.X","via":"http"}'
    add = script(client, "journal_received")
    assert add(keys=J, args=[JOURNAL.line(NOW), "1", f"ev-2\n{received}", "0", f"ev-2\n{received}"]) == 2
    assert client.zscore(keyspace.JOURNAL_INDEX, "ev-2") == NOW
    assert [e["e"] for e in entries(client, "ev-2")] == ["received", "enqueued", "received", "duplicate"]
    assert add(keys=J, args=["", "1", f"ev-3\n{received}"]) == 0  # the journal off: nothing
    assert not entries(client, "ev-3")
