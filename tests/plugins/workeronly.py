"""A plugin that imports everywhere except inside a Celery worker (as when only the worker's host lacks a
dependency): ``ims-worker run``'s own check passes, and the worker child exits 2 at start."""

from __future__ import annotations

import sys

from worker import Event, handler

if "celery" in " ".join(sys.argv):
    raise ImportError("no module named 'vendor_sdk' (simulated: missing on the worker's host)")


@handler("ims.FileUploadComplete")
def upload(event: Event) -> None:
    """Does nothing: the test is about start-up."""
