"""The inbox under kill -9 (tests/chaos/test_inbox.py): real Celery workers, Redis and PostgreSQL, at the
default settings; a few hundred events whose handler commits one row each; workers killed in the window
between that commit and the done marker, again and again; then the rows are counted in PostgreSQL.

The test plugin (``tests.plugins.inbox``) pushes ``"<pid> <event id> <time>"`` right after its commit and
then sleeps ``WINDOW`` seconds before returning: the window is made wide in the plugin, never in the product.
The killer reads those pushes and, at most every ``KILL_EVERY`` seconds, kills the pool process whose window
is open (Celery requeues its message at once: ``task_reject_on_worker_lost``) or, in the first seconds, the
whole worker (its messages come back after the 60 s delivery lease: kills of whole workers are made early and
overlap, so the recovery waits are not added one after another). An event is struck once at most (so none
reaches the redelivery limit). A kill counts as landed in the window when the event's done marker is still
absent after the process is dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

from tests.celery_worker import ALL_QUEUES, CELERY
from tests.chaos.procs import Service, children, wait_for
from tests.flowutil import upload_event
from tests.plugins.inbox import DSN_ENV, EFFECTS_TABLE, MODE_ENV, WINDOW_ENV, WINDOWS_KEY
from tests.servers import running_redis
from worker import keyspace
from worker.delivery.publish import Publisher
from worker.settings import Settings
from worker.testing.postgres import PrivatePostgres

HANDLER = "tests.plugins.inbox:apply_upload"
WINDOW = 0.5  # seconds between the handler's commit and its return (the plugin's sleep)
KILL_EVERY = 1.0  # seconds between kills at least
WORKERS, CONCURRENCY = 2, 3
WHOLE_WORKER_KILLS, WHOLE_KILLS_UNTIL = 2, 12.0  # whole workers are killed in the first seconds only
DRAIN_SECONDS = 150.0


@dataclass
class CrashResult:
    events: int
    whole_workers: bool = True  # also kill whole workers (early), not only pool processes
    kills: Counter[str] = field(default_factory=Counter)  # "child", "worker", "in_window"
    timeline: list[str] = field(default_factory=list)
    rows: Counter[str] = field(default_factory=Counter)  # event id -> effect rows
    inbox_rows: int = 0
    already_applied: int = 0  # re-runs the inbox turned into no-ops (the workers' log lines)
    drained: bool = False
    seconds: float = 0.0
    logs: str = ""

    @property
    def duplicated(self) -> dict[str, int]:
        return {e: n for e, n in self.rows.items() if n > 1}

    @property
    def missing(self) -> int:
        return self.events - len(self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "kills": dict(self.kills),
            "events_with_one_row": sum(1 for n in self.rows.values() if n == 1),
            "events_duplicated": len(self.duplicated),
            "extra_rows": sum(n - 1 for n in self.duplicated.values()),
            "events_missing": self.missing,
            "inbox_rows": self.inbox_rows,
            "re_runs_the_inbox_refused": self.already_applied,
            "drained": self.drained,
            "seconds": round(self.seconds, 1),
            "timeline": self.timeline,
        }


def _worker(n: int, env: dict[str, str], logdir: Path) -> Service:
    argv = [
        CELERY, "-A", "worker.app", "worker", "--pool", "prefork", "--concurrency", str(CONCURRENCY),
        "--queues", ",".join(ALL_QUEUES), "--hostname", f"inbox{n}-{uuid.uuid4().hex[:6]}@%h",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
    ]  # fmt: skip
    return Service(f"worker{n}", argv, env, logdir)


def _idle(client: redis.Redis) -> bool:
    return not (
        any(client.llen(q) for q in ALL_QUEUES) or client.hlen("unacked") or client.hlen(keyspace.OUTBOX)
    )


def _rows(dsn: str) -> tuple[Counter[str], int]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT event_id, count(*) FROM inbox_effects GROUP BY event_id").fetchall()
        (inbox_rows,) = conn.execute("SELECT count(*) FROM ims_worker_inbox").fetchone() or (0,)
    return Counter({str(e): int(n) for e, n in found}), int(inbox_rows)


def _dead(pid: str) -> bool:
    """Gone, or a zombie its parent has not reaped yet (billiard reaps on its own schedule)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def _strike(
    client: redis.Redis, workers: list[Service], struck: set[str], result: CrashResult, *, whole: bool
) -> bool:
    """Wait for a window to open and kill its process (or its whole worker); False if none opened."""
    popped = client.blpop([WINDOWS_KEY], timeout=1)
    if popped is None:
        return False
    raw = popped[1]
    pid_text, event_id, at = (raw.decode() if isinstance(raw, bytes) else str(raw)).split()
    if event_id in struck or time.time() - float(at) > WINDOW / 2:  # its window may be closing
        return False
    owner = next((w for w in workers if w.pid is not None and int(pid_text) in children(w.pid)), None)
    if owner is None:
        return False
    struck.add(event_id)
    if whole:
        owner.kill9()
        result.kills["worker"] += 1
        owner.start()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_text), signal.SIGKILL)
        result.kills["child"] += 1
        wait_for(lambda: _dead(pid_text), timeout=5, interval=0.01)
    if not client.exists(keyspace.done(event_id, HANDLER)):
        result.kills["in_window"] += 1  # killed after its commit, before its done marker
    return True


def _drain(client: redis.Redis, workers: list[Service], redis_url: str, result: CrashResult) -> None:
    """Publish, strike while the queue drains, then wait until everything is done and stays idle."""
    batch = [upload_event("FileUploadComplete", f"media-{i}", i) for i in range(result.events)]
    publisher = Publisher(Settings(broker_url=redis_url))
    try:
        assert all(r.enqueued for r in publisher.publish(batch))
    finally:
        publisher.close()
    load_started = time.monotonic()
    struck: set[str] = set()
    last = 0.0
    while client.llen("ims") > CONCURRENCY * WORKERS and time.monotonic() - load_started < 120:
        if time.monotonic() - last < KILL_EVERY:
            client.delete(WINDOWS_KEY)  # only windows that open from now on are candidates
            time.sleep(0.05)
            continue
        early = time.monotonic() - load_started < WHOLE_KILLS_UNTIL
        whole = result.whole_workers and early and result.kills["worker"] < WHOLE_WORKER_KILLS
        if _strike(client, workers, struck, result, whole=whole):
            last = time.monotonic()
            result.timeline.append(f"{last - load_started:.1f}s q={client.llen('ims')}")
    result.timeline.append(f"kills over {time.monotonic() - load_started:.1f}s q={client.llen('ims')}")
    done = [keyspace.done(e.id, HANDLER) for e in batch]
    result.drained = wait_for(
        lambda: client.exists(*done) == result.events and _idle(client), timeout=DRAIN_SECONDS, interval=0.5
    )
    if result.drained:  # idle for a moment: nothing held by a dead worker is still to come back
        time.sleep(2.0)
        result.drained = _idle(client)


def run_crash_drain(workdir: Path, *, events: int, claim: bool, whole_workers: bool = True) -> CrashResult:
    """Publish ``events`` upload events, kill -9 during the drain, wait until idle, count the rows."""
    result = CrashResult(events=events, whole_workers=whole_workers)
    started = time.monotonic()
    logdir = workdir / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    with running_redis(workdir / "redis", appendonly=False) as server:
        pg = PrivatePostgres()  # its port is known now; it is started while the workers boot
        env = {
            "IMS_WORKER_BROKER_URL": server.url,
            "IMS_WORKER_HANDLER_MODULES": "tests.plugins.inbox",
            DSN_ENV: pg.dsn,
            MODE_ENV: "claim" if claim else "plain",
            WINDOW_ENV: str(WINDOW),
        }
        workers = [_worker(n, env, logdir) for n in range(WORKERS)]
        client = redis.Redis.from_url(server.url)
        try:
            for worker in workers:
                worker.start()  # nothing reaches PostgreSQL before the events are published
            pg.start()
            pg.create_inbox()
            pg.psql(EFFECTS_TABLE)
            ready = wait_for(lambda: all(" ready." in w.output() for w in workers), timeout=60)
            assert ready, workers[0].tail()
            _drain(client, workers, server.url, result)
            result.rows, result.inbox_rows = _rows(pg.dsn)
        finally:
            client.close()
            for worker in workers:
                worker.stop(timeout=5)
            result.logs = "".join(w.output() for w in workers)
            pg.stop()
    result.already_applied = result.logs.count("task.inbox_already_applied")
    result.seconds = time.monotonic() - started
    return result
