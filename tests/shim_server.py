"""The webhook shim served by a real uvicorn on a loopback port, in a thread of the test process.

A thread (not a subprocess) keeps start-up under 100 ms and lets tests read the app's metrics and capture its
logs; the HTTP path is the real one (sockets, httptools, uvloop), and so is the publisher (real Redis).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn

from worker.shim.types import ASGIApp


@contextlib.contextmanager
def serving(app: ASGIApp, port: int, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on ``host:port`` until the block exits; yields the base URL."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        ws="none",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"shim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the shim did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
