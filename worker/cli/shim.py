"""``ims-worker shim``: the HTTP webhook receiver, served by uvicorn (uvloop + httptools when installed).

``--workers N`` starts N uvicorn worker processes sharing the listening socket. On a 2-core machine that also
runs Redis and the Celery worker, keep the default of 1 (one process saturates a core at several thousand
requests per second, which no provider approaches); use 2 on a host dedicated to the shim. With N > 1 the
Prometheus metrics of every process are aggregated through ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary
directory unless you set one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any

import uvicorn

from worker import boundedhttp
from worker.cli.preflight import load_handlers, require_free_port
from worker.logging import configure_logging
from worker.settings import Settings, load_settings
from worker.shim import server, spoolcheck
from worker.shim.arming import check as check_arming

APP_FACTORY = "worker.shim.server:create_app_from_environment"


def uvicorn_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "loop": "auto",  # uvloop when installed
        # uvicorn's httptools protocol plus a connection cap and header/body deadlines (shim/server.py).
        "http": boundedhttp.PROTOCOL,
        # Our root handler renders uvicorn's lines too (JSON, redacted); uvicorn's own dictConfig would
        # replace it with plain-text handlers.
        "log_config": None,
        "ws": "none",
        "lifespan": "on",
        "access_log": False,  # the shim writes its own structured access log
        # Only the configured public URL is trusted for signatures; never rewrite scheme/client from headers.
        "proxy_headers": False,
        "server_header": False,
        "log_level": settings.log_level.lower(),
        "timeout_keep_alive": 30,  # providers reuse connections between retries and bursts
        "timeout_graceful_shutdown": 10,
    }


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    boundedhttp.configure(settings)
    boundedhttp.check_uvicorn()
    host = args.host or settings.shim_host
    port = settings.shim_port if args.port is None else args.port
    workers = args.workers or settings.shim_workers
    check_arming(settings)  # exit 2 before binding the port: nothing armed, or a placeholder key
    load_handlers(settings)  # events answered 200 here must have handlers that can run
    if settings.shim_spool_enabled:
        spoolcheck.preflight(settings)  # exit 2 before binding: no writable spool directory, or a full disk
    require_free_port(host, port, "ims-worker shim")
    options = uvicorn_options(settings, host, port)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == "":
        # Merely set, even empty, it turns prometheus_client's file mode on (files in the working directory).
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if workers == 1:
        from worker.shim import create_app  # noqa: PLC0415 - the app pulls in Redis only when serving

        uvicorn.run(server.bounded(create_app(settings), settings), **options)
        return 0
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    owned_dir = None
    if not metrics_dir:
        owned_dir = tempfile.mkdtemp(prefix="ims-worker-shim-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = owned_dir  # read by the spawned worker processes
    try:
        uvicorn.run(APP_FACTORY, factory=True, workers=workers, **options)
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "shim",
        help="receive provider webhooks over HTTP and enqueue them",
        description="Authenticate IMS, ApsaraVideo Live (recording, production studio, RTC) and Tencent CSS "
        "webhooks, normalize them and enqueue them into Redis; 200 only once enqueued.",
    )
    parser.add_argument("--host", default=None, help="bind address (default IMS_WORKER_SHIM_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default IMS_WORKER_SHIM_PORT, 8080)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default IMS_WORKER_SHIM_WORKERS, 1; see the module docs for sizing)",
    )
    parser.set_defaults(func=_serve)
