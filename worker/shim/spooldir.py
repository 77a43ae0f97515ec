"""Who owns which spool file: one file per shim process, each held with an exclusive lock.

Every shim process (``ims-worker shim``, or each of its ``--workers N``) writes only to a file of its own,
``spool-<pid>-<random>.db``, and holds an exclusive ``flock`` on ``spool-<pid>-<random>.lock`` for as long as
it lives. The kernel drops the lock when the process dies, however it dies (kill -9 included), so a lock that
can be taken marks a file whose writer is gone: any live process of the directory (a restarted shim, or a
sibling worker) adopts it, drains it and removes it. SQLite is never shared between writers, so its own
locking is never relied on across processes.

The lock file is created under a temporary name and renamed into place only once locked: an adopter never
sees a lock file whose owner has not locked it yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from worker.shim.spoolfile import SpoolFile, SpoolFileError, remove_files

PROBE_BYTES = 64 * 1024  # a request body's worth: what the first append will need


@dataclass
class Held:
    """A spool file and the lock that makes it ours."""

    file: SpoolFile
    lock_fd: int
    lock_path: Path
    owner_pid: int  # the process that wrote it (ours, or a dead one's for adopted files)

    def release(self, *, remove: bool) -> None:
        """Close the file; with ``remove`` delete it and its lock first (only when it is empty)."""
        self.file.close()
        if remove:
            remove_files(self.file.path)
            self.lock_path.unlink(missing_ok=True)
        os.close(self.lock_fd)


class SpoolDirError(Exception):
    """The directory cannot hold a spool (the message says why)."""


def _lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        return path.stat().st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class SpoolDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def prepare(self) -> None:
        """Create the directory (owner-only) and prove a request's worth can be written and synced to it."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError as exc:
            raise SpoolDirError(
                f"spool directory {self.directory}: cannot write {PROBE_BYTES} bytes and sync them "
                f"({exc.strerror or exc}); set IMS_WORKER_SHIM_SPOOL_DIR to a writable directory with "
                "free space"
            ) from exc

    def claim_own(self) -> Held:
        """A new, empty, locked file for this process."""
        pid = os.getpid()
        stem = f"spool-{pid}-{secrets.token_hex(4)}"
        temporary = self.directory / f".{stem}.lock"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock_path = self.directory / f"{stem}.lock"
        os.rename(temporary, lock_path)
        try:
            file = SpoolFile(self.directory / f"{stem}.db", create=True)
        except (SpoolFileError, OSError) as exc:
            lock_path.unlink(missing_ok=True)
            os.close(fd)
            raise SpoolDirError(str(exc)) from exc
        return Held(file, fd, lock_path, pid)

    def adopt(self, skip: set[Path]) -> list[Held]:
        """Every file of the directory whose writer is gone, now locked by us (``skip``: the ones we hold)."""
        adopted = []
        for lock_path in sorted(self.directory.glob("spool-*.lock")):
            if lock_path in skip:
                continue
            fd = _lock(lock_path)
            if fd is None:
                continue  # a live process holds it
            if not _same_file(lock_path, fd):  # removed by another adopter between our open and lock
                os.close(fd)
                continue
            db_path = lock_path.with_suffix(".db")
            try:
                file = SpoolFile(db_path, create=False)
            except SpoolFileError:
                if not db_path.exists():  # a writer that died between its lock and its database: nothing kept
                    lock_path.unlink(missing_ok=True)
                os.close(fd)
                continue
            adopted.append(Held(file, fd, lock_path, _owner_pid(lock_path)))
        return adopted

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("spool-*.db"))

    def locked(self, db_path: Path) -> bool:
        """Whether a live process holds ``db_path`` (for ``ims-worker check``)."""
        fd = _lock(db_path.with_suffix(".lock"))
        if fd is None:
            return True
        with contextlib.suppress(OSError):
            os.close(fd)
        return False


def _owner_pid(lock_path: Path) -> int:
    try:
        return int(lock_path.stem.split("-")[1])
    except (IndexError, ValueError):
        return 0
