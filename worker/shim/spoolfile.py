"""One spool file: an SQLite database (stdlib ``sqlite3``) holding requests the shim answered 200 without
Redis, until the drainer has published them.

WAL journal with ``synchronous=FULL``: a commit returns only after its WAL frames are fsync'd, so an entry
whose append returned survives kill -9 and power loss (SQLite's documented durability, not ours to
re-invent). One row per request: its normalized events (``encode_event``, as a JSON array; they carry the raw
body, the receipt time and the request id), the provider and the request id. The signature headers are not
kept: the request was authenticated before it was spooled, and the events need nothing else.

Not thread-safe: ``worker.shim.spool`` calls every method from its one spool thread.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  received_ms INTEGER NOT NULL,
  source TEXT NOT NULL,
  request_id TEXT NOT NULL,
  events BLOB NOT NULL
)
"""
SUFFIXES = ("", "-wal", "-shm", "-reserve")
# Room kept beside each file for its deletions: on a full disk SQLite needs WAL space to delete too, and a
# spool that cannot delete what it published would publish it again forever. Given back to the file system
# when a deletion meets a full disk, taken again once the file is empty and its WAL truncated.
RESERVE_BYTES = 256 * 1024
# WAL pages between automatic checkpoints (SQLite's default is 1000: 4 MB of WAL before it is reused).
AUTOCHECKPOINT_PAGES = 64


class SpoolFileError(Exception):
    """The file cannot be opened as a spool (a clear reason in the message)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    received_ms: int
    source: str
    request_id: str
    events: bytes  # a JSON array of events as ``encode_event`` writes them


Row = tuple[int, str, str, bytes]  # received_ms, source, request_id, events


class SpoolFile:
    """The file's rows and their running totals (``depth``, ``bytes``, ``oldest_ms``)."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        if create:
            # Owner-only: the rows are raw provider payloads. SQLite gives its -wal/-shm files the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            self._db = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False, timeout=5
            )
        except sqlite3.Error as exc:
            raise SpoolFileError(f"{path}: cannot open: {exc}") from exc
        try:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolFileError(f"{path}: the file system does not support SQLite's WAL mode ({mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self._db.execute(f"PRAGMA journal_size_limit={RESERVE_BYTES}")
            self._db.execute(_SCHEMA)
            depth, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(events)), 0) FROM spool"
            ).fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            raise SpoolFileError(f"{path}: cannot use as a spool: {exc}") from exc
        self.depth: int = depth
        self.bytes: int = size
        self.oldest_ms: int | None = self._oldest()
        self.reserve = Path(f"{path}-reserve")
        if create:
            write_reserve(self.reserve)  # OSError (a full disk at start): the caller refuses to start

    def _oldest(self) -> int | None:
        row = self._db.execute("SELECT received_ms FROM spool ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def append(self, rows: Sequence[Row]) -> None:
        """All ``rows`` in one transaction; returns once it is on disk (raises ``sqlite3.Error`` if not)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO spool (received_ms, source, request_id, events) VALUES (?, ?, ?, ?)", rows
            )
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        if self.depth == 0:
            self.oldest_ms = min(row[0] for row in rows)
        self.depth += len(rows)
        self.bytes += sum(len(row[3]) for row in rows)

    def oldest(self, limit: int) -> list[Entry]:
        cursor = self._db.execute(
            "SELECT seq, received_ms, source, request_id, events FROM spool ORDER BY seq LIMIT ?", (limit,)
        )
        return [Entry(int(s), int(t), str(src), str(rid), bytes(ev)) for s, t, src, rid, ev in cursor]

    def delete(self, entries: Sequence[Entry]) -> None:
        """Forget ``entries`` (their publish returned); on a full disk, with the room of the reserve."""
        try:
            self._delete(entries)
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc) or not self.reserve.exists():
                raise
            self.reserve.unlink()
            self._delete(entries)
        self.depth -= len(entries)
        self.bytes -= sum(len(e.events) for e in entries)
        self.oldest_ms = self._oldest() if self.depth else None
        if not self.depth:
            self._compact()

    def _delete(self, entries: Sequence[Entry]) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(e.seq,) for e in entries])
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _compact(self) -> None:
        """Empty: give the WAL's space back and take the reserve again (best effort: the disk may be full)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if not self.reserve.exists():
                write_reserve(self.reserve)
        except (sqlite3.Error, OSError):
            self.reserve.unlink(missing_ok=True)  # a partial reserve is no reserve; tried again next time

    def close(self) -> None:
        self._db.close()


def write_reserve(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * RESERVE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_files(path: Path) -> None:
    """The database, its WAL and shared-memory files and its reserve."""
    for suffix in SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def summarize(path: Path) -> tuple[int, int, int | None]:
    """(rows, bytes, oldest receipt ms) of a spool file, read-only, for ``ims-worker check``."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'spool'").fetchone() is None:
            return 0, 0, None  # its process is between creating the file and its table
        rows, size, oldest = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(length(events)), 0), MIN(received_ms) FROM spool"
        ).fetchone()
    finally:
        db.close()
    return int(rows), int(size), None if oldest is None else int(oldest)
