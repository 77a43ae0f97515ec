"""`ims-worker inbox init|purge` against a real private PostgreSQL, run as a user would."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.cli import cli
from worker.devtools.embedded import free_port

INSERT = "INSERT INTO ims_worker_inbox (event_id, handler, applied_at)"


def count(dsn: str, where: str = "true") -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(f"SELECT count(*) FROM ims_worker_inbox WHERE {where}").fetchone()[0])  # type: ignore[index]


def test_init_creates_the_table_and_is_idempotent(ims_postgres: Any) -> None:
    ims_postgres.psql("DROP TABLE IF EXISTS ims_worker_inbox")
    for _ in range(2):
        done = cli("inbox", "init", "--dsn", ims_postgres.dsn)
        assert done.returncode == 0, done.stderr
        assert "inbox table ims_worker_inbox ready" in done.stdout
    assert count(ims_postgres.dsn) == 0
    indexes = ims_postgres.psql(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'ims_worker_inbox' ORDER BY 1"
    )
    assert indexes.split() == ["ims_worker_inbox_applied_at", "ims_worker_inbox_pkey"]


def test_init_without_dsn_uses_the_libpq_environment(ims_postgres: Any) -> None:
    env = {"PGHOST": "127.0.0.1", "PGPORT": str(ims_postgres.port), "PGUSER": "ims", "PGDATABASE": "postgres"}
    done = cli("inbox", "init", env=env)
    assert done.returncode == 0, done.stderr
    assert "the PG* environment's database" in done.stdout


def test_purge_deletes_old_rows_in_batches_and_keeps_the_rest(ims_postgres_dsn: str) -> None:
    with psycopg.connect(ims_postgres_dsn) as conn:
        for i in range(7):
            conn.execute(
                f"{INSERT} VALUES (%s, 'h', now() - %s::interval)",
                (f"ev{i}", "40 days" if i < 5 else "2 days"),
            )
    done = cli("inbox", "purge", "--dsn", ims_postgres_dsn, "--older-than", "30d", "--batch", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2 rows deleted",
        "4 rows deleted",
        "5 rows deleted",
        "purged 5 rows applied more than 30d ago",
    ]
    assert (
        count(ims_postgres_dsn) == 2
        and count(ims_postgres_dsn, "applied_at > now() - interval '3 days'") == 2
    )


def test_purge_refuses_to_go_below_the_done_marker_ttl_unless_forced(ims_postgres_dsn: str) -> None:
    with psycopg.connect(ims_postgres_dsn) as conn:
        conn.execute(f"{INSERT} VALUES ('e', 'h', now() - '3 days'::interval)")
    done = cli("inbox", "purge", "--dsn", ims_postgres_dsn, "--older-than", "1d")
    assert done.returncode == 2
    assert (
        "refusing --older-than 1d: shorter than the done markers' 14d" in done.stderr
        and "IMS_WORKER_HANDLER_DONE_TTL_SECONDS" in done.stderr
    )
    assert count(ims_postgres_dsn) == 1
    shorter = cli(
        "inbox", "purge", "--dsn", ims_postgres_dsn, "--older-than", "1d",
        env={"IMS_WORKER_HANDLER_DONE_TTL_SECONDS": "3600"},
    )  # fmt: skip
    assert shorter.returncode == 0, shorter.stderr
    assert count(ims_postgres_dsn) == 0
    forced = cli("inbox", "purge", "--dsn", ims_postgres_dsn, "--older-than", "1h", "--force")
    assert forced.returncode == 0 and "purged 0 rows" in forced.stdout


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://ims:s3cr3t-pw@127.0.0.1:{port}/postgres",
        "host=127.0.0.1 port={port} user=ims password=s3cr3t-pw dbname=postgres",
    ],
)
def test_an_unreachable_database_is_a_clear_error_without_the_password(dsn: str) -> None:
    dsn = dsn.format(port=free_port())  # nothing listens there
    for args in (["init"], ["purge", "--older-than", "30d"]):
        done = cli("inbox", *args, "--dsn", dsn)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "connection" in done.stderr.lower() and "[REDACTED]" in done.stderr, done.stderr
        assert "s3cr3t" not in done.stdout + done.stderr


def test_bad_arguments_are_refused() -> None:
    assert cli("inbox", "purge", "--older-than", "thirty days").returncode == 2
    assert cli("inbox", "purge", "--older-than", "30d", "--batch", "0").returncode == 2
    assert "not a duration" in cli("inbox", "purge", "--older-than", "30").stderr
