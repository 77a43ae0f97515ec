"""A private PostgreSQL for tests: ``initdb`` + ``pg_ctl`` on a free port, with the inbox table created.

The binaries come from PATH, else Debian's ``/usr/lib/postgresql/<version>/bin`` (the newest). PostgreSQL
refuses to run as root, so under root (CI containers) the server runs as an unprivileged user (``postgres``
if it exists, else ``nobody``) through ``setpriv``, in a directory that user owns under the system's
temporary directory (pytest's own temporary directories are private to root). The server listens on
127.0.0.1 only, trusts local connections (a test database), and is stopped (``-m immediate``) and deleted by
``stop()``; a test process killed with kill -9 leaves it running (``pg_ctl -D <dir> stop`` ends it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from worker.devtools.embedded import free_port

SUPERUSER = "ims"
DATABASE = "postgres"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (the message says what to install)."""


def _version(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def postgres_bin_dir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``psql``: PATH first, then Debian's layout."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    for directory in candidates:
        if all(Path(directory, tool).exists() for tool in ("initdb", "pg_ctl", "psql")):
            return Path(directory)
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin: install "
        "them (Debian/Ubuntu: apt-get install postgresql)"
    )


def _unprivileged() -> tuple[int, int] | None:
    """Who runs the server when we are root (PostgreSQL refuses root); None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' user exists")


class PrivatePostgres:
    """``start()``, ``dsn``, ``psql(sql)``, ``stop()``. ``settings``: extra ``postgres -c`` options."""

    def __init__(self, *, port: int = 0, settings: Mapping[str, str] | None = None) -> None:
        self.bin_dir = postgres_bin_dir()
        self.port = port or free_port()
        self.settings = dict(settings or {})
        self._owner = _unprivileged()
        self.root = Path(tempfile.mkdtemp(prefix="ims-worker-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        if self._owner is not None:
            os.chown(self.root, *self._owner)

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, tool: str, *args: str, timeout: float = 120.0, stdin: str | None = None) -> str:
        prefix: list[str] = []
        if self._owner is not None:
            uid, gid = self._owner
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        done = subprocess.run(  # noqa: S603 - our own argv, no shell
            [*prefix, str(self.bin_dir / tool), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if done.returncode != 0:
            said = (done.stderr or done.stdout)[-2000:]
            raise RuntimeError(f"{tool} exited with {done.returncode}: {said}")
        return done.stdout

    def start(self, timeout: float = 120.0) -> PrivatePostgres:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8",
                  "--locale=C", timeout=timeout)  # fmt: skip
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            **self.settings,
        }
        flags = " ".join(f"-c {name}={value}" for name, value in options.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", flags, "-w",
                  "-t", str(int(timeout)), "start", timeout=timeout + 10)  # fmt: skip
        return self

    def psql(self, sql: str, *, args: Sequence[str] = ()) -> str:
        """Run ``sql`` (stops at the first error) and return psql's unaligned output."""
        return self._run(
            "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn, *args, stdin=sql
        )

    def create_inbox(self) -> None:
        from worker.inbox import schema_sql  # noqa: PLC0415

        self.psql(schema_sql())

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            # Already gone: the directory is removed all the same.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> PrivatePostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
