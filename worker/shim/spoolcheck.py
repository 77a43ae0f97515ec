"""``ims-worker check``'s and ``ims-worker shim``'s look at the spool directory, without owning any file."""

from __future__ import annotations

import time
from pathlib import Path

from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.shim.spooldir import SpoolDir, SpoolDirError
from worker.shim.spoolfile import summarize


def preflight(settings: Settings) -> SpoolDir:
    """The spool directory exists and takes a request's worth of synced bytes, else ``ConfigurationError``."""
    directory = SpoolDir(Path(settings.effective_shim_spool_dir))
    try:
        directory.prepare()
    except SpoolDirError as exc:
        raise ConfigurationError(f"IMS_WORKER_SHIM_SPOOL_DIR: {exc}") from exc
    return directory


def report(settings: Settings) -> str:
    """One line: writable, and what the files hold (entries, bytes, oldest age, files held by live shims)."""
    if not settings.shim_spool_enabled:
        return "off (IMS_WORKER_SHIM_SPOOL_ENABLED=false): a Redis outage is answered 503"
    directory = preflight(settings)
    files = directory.files()
    entries = size = 0
    oldest: int | None = None
    for path in files:
        rows, nbytes, first = summarize(path)
        entries, size = entries + rows, size + nbytes
        if first is not None:
            oldest = first if oldest is None else min(oldest, first)
    held = sum(1 for path in files if directory.locked(path))
    age = "" if oldest is None else f", oldest {time.time() - oldest / 1000:.0f} s old"
    return (
        f"{directory.directory} writable; {len(files)} file(s) ({held} held by running shims), "
        f"{entries} request(s) waiting for Redis, {size} bytes{age}"
    )
