"""`ims-worker dlq ...` against a real Redis (in-process: the CLI's main with the environment set)."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.conftest import SAMPLES_DIR
from tests.servers import free_port
from worker.cli import main
from worker.cli.dlq import parse_when
from worker.delivery.deadletter import DeadLetterStore
from worker.events import Event
from worker.providers import normalize

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> DeadLetterStore:
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", redis_url)
    monkeypatch.delenv("IMS_WORKER_REDIS_URL", raising=False)
    return DeadLetterStore(redis_url)


def ims_event(name: str) -> Event:
    (event,) = normalize("ims", (SAMPLES_DIR / "ims" / f"{name}.json").read_bytes())
    return event


def dead(store: DeadLetterStore, event: Event, reason: str = "retries exhausted") -> str:
    entry_id = store.add(
        raw=event.raw, source=event.source, reason=reason, event=event, error="RuntimeError: boom", attempts=5
    )
    assert entry_id is not None
    return entry_id


def test_list_shows_count_and_table(store: DeadLetterStore, capsys: pytest.CaptureFixture[str]) -> None:
    first = dead(store, ims_event("FileUploadComplete"))
    dead(store, ims_event("ProduceMediaComplete"), reason="permanent failure")
    assert main(["dlq", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 dead letters"
    assert out[1].split()[:3] == ["ID", "DEAD-LETTERED", "(UTC)"]
    assert out[2].startswith(first) and "ims.FileUploadComplete" in out[2] and "retries exhausted" in out[2]

    assert main(["dlq", "list", "--reason", "permanent", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 1 and listed["entries"][0]["type"] == "ims.ProduceMediaComplete"

    assert main(["dlq", "list", "--type", "ims.*", "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "2 dead letters (showing 1)"

    assert main(["dlq", "list", "--source", "rtc", "--since", "1h"]) == 0
    assert capsys.readouterr().out.strip() == "0 dead letters"


def test_show(store: DeadLetterStore, capsys: pytest.CaptureFixture[str]) -> None:
    event = ims_event("FileUploadComplete")
    entry_id = dead(store, event)
    assert main(["dlq", "show", entry_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == entry_id and shown["raw"] == json.dumps(
        event.raw, ensure_ascii=False, separators=(",", ":")
    )
    assert shown["error"] == "RuntimeError: boom" and shown["attempts"] == 5

    assert main(["dlq", "show", "1-0"]) == 1
    assert "no dead letter with id '1-0'" in capsys.readouterr().err


def test_redrive_by_id_and_by_filter(
    store: DeadLetterStore, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upload = dead(store, ims_event("FileUploadComplete"))
    produce = dead(store, ims_event("ProduceMediaComplete"), reason="permanent failure")
    undecodable = store.add(raw=b"\x01\x02", source="ims", reason="undecodable body")
    client = redis.Redis.from_url(redis_url)

    assert main(["dlq", "redrive", upload]) == 0
    out = capsys.readouterr().out
    assert f"{upload}: redriven: republished 1 (ims.FileUploadComplete)" in out
    assert client.llen("ims") == 1

    assert main(["dlq", "redrive", "--reason", "permanent", "--yes"]) == 0
    assert f"{produce}: redriven" in capsys.readouterr().out
    assert client.llen("ims") == 2

    assert main(["dlq", "redrive", "--yes"]) == 1  # everything left: only the undecodable body, which stays
    out = capsys.readouterr().out
    assert f"{undecodable}: kept: no event can be rebuilt from the raw body (undecodable body)" in out
    assert "0 of 1 redriven" in out
    assert [e.id for e in store.list()] == [undecodable]

    assert main(["dlq", "redrive", "1-0"]) == 1
    assert "no dead letter with id '1-0'" in capsys.readouterr().err
    client.close()


def test_redrive_with_broker_down_keeps_entries(
    store: DeadLetterStore,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead(store, ims_event("FileUploadComplete"))
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", f"amqp://guest:pw-123@127.0.0.1:{free_port()}//")
    monkeypatch.setenv("IMS_WORKER_REDIS_URL", redis_url)
    assert main(["dlq", "redrive", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "the entries are kept" in err and "pw-123" not in err
    assert store.count() == 1


def test_purge_needs_confirmation(store: DeadLetterStore, capsys: pytest.CaptureFixture[str]) -> None:
    dead(store, ims_event("FileUploadComplete"))
    keep = dead(store, ims_event("ProduceMediaComplete"), reason="permanent failure")
    # pytest's stdin is not a terminal: without --yes the purge refuses instead of hanging on a prompt.
    assert main(["dlq", "purge"]) == 1
    assert "refusing to delete 2 entries without --yes" in capsys.readouterr().err
    assert store.count() == 2

    assert main(["dlq", "purge", "--reason", "exhausted", "--yes"]) == 0
    assert capsys.readouterr().out.strip() == "1 dead letter purged"
    assert [e.id for e in store.list()] == [keep]

    assert main(["dlq", "purge", "--source", "rtc"]) == 0
    assert capsys.readouterr().out.strip() == "nothing to purge"


def test_purge_asks_on_a_terminal(
    store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead(store, ims_event("FileUploadComplete"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["dlq", "purge"]) == 1
    assert "aborted" in capsys.readouterr().out and store.count() == 1
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert main(["dlq", "purge"]) == 0
    assert store.count() == 0


def test_redis_unreachable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", f"redis://:hidden@127.0.0.1:{free_port()}/0")
    monkeypatch.delenv("IMS_WORKER_REDIS_URL", raising=False)
    assert main(["dlq", "list"]) == 1
    err = capsys.readouterr().err
    assert "is unreachable" in err and "hidden" not in err


def test_parse_when() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("30m", now=now) == now - timedelta(minutes=30)
    assert parse_when("2d", now=now) == now - timedelta(days=2)
    assert parse_when("2024-05-01T10:00") == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert parse_when("2024-05-01T10:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
        parse_when("yesterday")


def test_bad_time_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["dlq", "list", "--since", "yesterday"])
    assert caught.value.code == 2
    assert "not a time: 'yesterday'" in capsys.readouterr().err


def test_redrive_of_everything_asks_first_and_dry_run_changes_nothing(
    store: DeadLetterStore, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dlq redrive`` with no ids redrove every entry with no confirmation; now: --yes or a prompt."""
    for name in ("FileUploadComplete", "ProduceMediaComplete"):
        dead(store, ims_event(name))
    capsys.readouterr()
    assert main(["dlq", "redrive", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 dead letters would be redriven (dry run)" in out and store.count() == 2
    assert main(["dlq", "redrive"]) == 1  # stdin is not a terminal here: refused, nothing sent
    assert "without --yes" in capsys.readouterr().err and store.count() == 2
    client = redis.Redis.from_url(redis_url)
    assert client.llen("ims") == 0
    started = time.monotonic()
    assert main(["dlq", "redrive", "--yes", "--rate", "4"]) == 0
    assert time.monotonic() - started >= 0.25  # the second entry waited its turn at 4/s
    assert store.count() == 0 and client.llen("ims") == 2
    client.close()
