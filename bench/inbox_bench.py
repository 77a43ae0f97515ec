"""The inbox's cost: the same handler with and without ``worker.inbox.claim``, against the same private
PostgreSQL (``worker.testing.postgres``, server defaults: fsync and synchronous_commit on), in the same run.

Each variant is the handler body of the README's pattern, run in this process on one psycopg connection:
``plain`` is one transaction inserting one effect row; ``claim`` is the same transaction with
``inbox.claim(conn, event)`` first (a fresh event each time, so every claim inserts: the common path). The
variants alternate in rounds (plain, claim, claim, plain, ...) so that both meet the same moments of a shared
machine. Per event: the median and p99 latency of each, the added median latency, the throughput ratio. Also
priced: a claim that finds its row (the re-run after a crash: ``already applied``) and the worker's one
journal write per claiming handler (``ims-worker trace``'s ``inbox`` step) on a private Redis.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import redis

from bench.config import BenchConfig
from bench.stats import Benchmark, Metrics, Row, check, fmt, percentile
from worker import inbox
from worker.devtools.embedded import EmbeddedRedis
from worker.execution.inboxrun import journal_claims
from worker.journal.config import JournalConfig
from worker.journal.writer import JournalWriter
from worker.settings import Settings
from worker.testing.postgres import PrivatePostgres

HANDLER = "bench.inbox:save"
EFFECTS = (
    "CREATE TABLE bench_effects (id bigserial PRIMARY KEY, event_id text NOT NULL, status text NOT NULL)"
)
_INSERT = "INSERT INTO bench_effects (event_id, status) VALUES (%s, 'produced')"


class _Event:
    def __init__(self, event_id: str) -> None:
        self.id = event_id


def _handle(conn: psycopg.Connection[Any], event: _Event, *, claim: bool) -> None:
    with conn.transaction():
        if claim and not inbox.claim(conn, event):
            return
        conn.execute(_INSERT, (event.id,))


def _round(conn: psycopg.Connection[Any], count: int, *, claim: bool, repeat: bool = False) -> list[float]:
    """Latencies (ms) of ``count`` handler calls; ``repeat``: events whose claim already committed."""
    out = []
    for n in range(count):
        event = _Event(f"{'seen' if repeat else uuid.uuid4().hex}-{n}")
        with inbox.running(HANDLER, event.id, "bench-task"):
            began = time.perf_counter()
            _handle(conn, event, claim=claim)
            out.append((time.perf_counter() - began) * 1000)
    return out


def _journal_note_ms(config: BenchConfig, count: int) -> float:
    server = EmbeddedRedis(config.workdir / f"inbox-redis-{uuid.uuid4().hex[:6]}")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        writer = JournalWriter(client, JournalConfig.from_settings(Settings(broker_url=server.url)))
        began = time.perf_counter()
        for n in range(count):
            journal_claims(writer, f"ev-{n}", HANDLER, ["applied"])
        elapsed = (time.perf_counter() - began) * 1000 / count
        client.close()
        return elapsed
    finally:
        server.stop()


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    per_round = max(10, config.inbox_events // config.inbox_rounds)
    times: dict[str, list[float]] = {"plain": [], "claim": []}
    seconds = {"plain": 0.0, "claim": 0.0}
    with PrivatePostgres() as pg:
        pg.create_inbox()
        pg.psql(EFFECTS)
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            _round(conn, per_round, claim=True)  # warm-up: connection, plans, first pages
            _round(conn, per_round, claim=False)
            for index in range(config.inbox_rounds):
                order = ("plain", "claim") if index % 2 == 0 else ("claim", "plain")
                for variant in order:
                    began = time.perf_counter()
                    times[variant] += _round(conn, per_round, claim=variant == "claim")
                    seconds[variant] += time.perf_counter() - began
            _round(conn, per_round, claim=True, repeat=True)  # the rows a re-run finds
            repeats = _round(conn, per_round, claim=True, repeat=True)
    metrics: Metrics = {}
    for variant, values in times.items():
        metrics[f"{variant}_median_ms"] = percentile(values, 50)
        metrics[f"{variant}_p99_ms"] = percentile(values, 99)
        metrics[f"{variant}_events_per_s"] = len(values) / seconds[variant]
    metrics["added_median_ms"] = metrics["claim_median_ms"] - metrics["plain_median_ms"]
    metrics["throughput_ratio"] = metrics["claim_events_per_s"] / metrics["plain_events_per_s"]
    metrics["repeat_median_ms"] = percentile(repeats, 50)
    metrics["journal_note_ms"] = _journal_note_ms(config, per_round)
    facts = {"events_per_variant": len(times["plain"]), "rounds": config.inbox_rounds, "postgres": "defaults"}
    return metrics, facts


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    n = facts["events_per_variant"]
    return [
        Row(
            "inbox",
            f"handler median ms/event ({n} events each)",
            fmt(m["claim_median_ms"], 3),
            fmt(m["plain_median_ms"], 3),
        ),
        Row("inbox", "handler p99 ms/event", fmt(m["claim_p99_ms"], 3), fmt(m["plain_p99_ms"], 3)),
        Row(
            "inbox",
            "added median latency by claim (ms)",
            fmt(m["added_median_ms"], 3),
            target="< 1 ms",
            met=check(m["added_median_ms"], 1.0, at_least=False),
        ),
        Row(
            "inbox",
            "events/s (one connection, sequential)",
            fmt(m["claim_events_per_s"]),
            fmt(m["plain_events_per_s"]),
            fmt(m["throughput_ratio"], 2, "x"),
        ),
        Row("inbox", "re-run: claim finds its row, median ms", fmt(m["repeat_median_ms"], 3)),
        Row("inbox", "worker: journal write per claiming handler, ms", fmt(m["journal_note_ms"], 3)),
    ]


BENCHMARK = Benchmark("inbox", "The inbox: a PostgreSQL handler with vs without claim", run, rows)
