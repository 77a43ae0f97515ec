"""worker.testing's private PostgreSQL (``ims_postgres``, ``ims_postgres_dsn``) as a plugin author uses it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.cli import clean_env
from worker.testing import postgres


def test_the_fixture_serves_a_private_database_with_the_inbox_table(
    ims_postgres: Any, ims_postgres_dsn: str
) -> None:
    assert ims_postgres.port != 5432 and "127.0.0.1" in ims_postgres_dsn
    with psycopg.connect(ims_postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ims_worker_inbox").fetchone() == (0,)
    owner = pwd.getpwuid(Path(ims_postgres.data).stat().st_uid).pw_name
    # PostgreSQL refuses root: under root the server runs as an unprivileged user that owns its directory.
    if os.geteuid() == 0:
        assert owner in ("postgres", "nobody")
    else:
        assert owner == pwd.getpwuid(os.geteuid()).pw_name


def test_no_server_binaries_is_a_clear_skip(tmp_path: Path) -> None:
    (tmp_path / "test_needs_postgres.py").write_text(
        "import worker.testing.postgres as pg\n"
        "pg.shutil.which = lambda *args, **kwargs: None\n"
        "pg.glob.glob = lambda *args, **kwargs: []\n"
        "def test_it(ims_postgres_dsn):\n"
        "    raise AssertionError('must not run')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "test_needs_postgres.py"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 skipped" in done.stdout
    assert "no PostgreSQL server binaries (initdb, pg_ctl)" in done.stdout
    assert "apt-get install postgresql" in done.stdout


def test_the_binaries_are_found_on_path_or_in_debians_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    found = postgres.postgres_bin_dir()
    assert (found / "initdb").exists() and (found / "pg_ctl").exists()
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if debian:
        assert postgres.postgres_bin_dir().parent.parent == Path("/usr/lib/postgresql")


HANDLERS = """
import os

import psycopg

from worker import Event, handler, inbox


@handler("ims.ProduceMediaComplete")
def save(event: Event) -> None:
    with psycopg.connect(os.environ["MY_DSN"]) as conn, conn.transaction():
        if not inbox.claim(conn, event):
            return
        conn.execute("INSERT INTO media_status VALUES (%s, 'produced')", (event.data.MessageBody.MediaId,))
"""

TESTS = """
import psycopg

import myteam.handlers  # noqa: F401
from worker import keyspace
from worker.testing import sample_event


def test_applied_once_even_when_the_done_marker_is_lost(ims_handlers, ims_postgres_dsn, monkeypatch):
    monkeypatch.setenv("MY_DSN", ims_postgres_dsn)
    with psycopg.connect(ims_postgres_dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS media_status (media_id text, status text)")
    event = sample_event("ims.ProduceMediaComplete")
    assert ims_handlers.run(event).handled
    ims_handlers._client.delete(keyspace.done(event.id, "myteam.handlers:save"))  # the crash window
    assert ims_handlers.run(event).handled
    with psycopg.connect(ims_postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM media_status").fetchone() == (1,)
"""


def test_a_plugin_authors_suite_runs_claim_through_the_kit(tmp_path: Path) -> None:
    (tmp_path / "myteam").mkdir()
    (tmp_path / "myteam" / "__init__.py").write_text("")
    (tmp_path / "myteam" / "handlers.py").write_text(HANDLERS)
    (tmp_path / "test_myteam.py").write_text(TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_myteam.py"],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
