"""``ims-worker consume``: the MNS consumer for ``IMS_WORKER_MNS_QUEUES``."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

import structlog

from worker.cli.preflight import load_handlers, require_mns
from worker.logging import configure_logging
from worker.mns.consumer import Consumer
from worker.mns.health import serve_health
from worker.settings import load_settings

log = structlog.get_logger(__name__)


def _consume(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    require_mns(settings, queues_given=bool(args.queue))
    load_handlers(settings)  # events acknowledged here must have handlers that can run
    consumer = Consumer(settings, queues=args.queue or None)
    consumer.check_queues()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("mns.consumer.signal", signal=signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if settings.consumer_metrics_port:
        server = serve_health(consumer.health, settings.consumer_metrics_host, settings.consumer_metrics_port)
        log.info(
            "mns.consumer.health", url=f"http://{settings.consumer_metrics_host}:{server.server_port}/healthz"
        )
    consumer.start()
    clean = consumer.wait()
    if consumer.fatal is not None:
        log.error("mns.consumer.exit", reason=str(consumer.fatal))
        return 2
    return 0 if clean else 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="pull IMS events from MNS queues into the broker",
        description="Long-poll IMS_WORKER_MNS_QUEUES in batches of 16, publish each batch to the broker in "
        "one round trip, then delete exactly what was published, found duplicate or dead-lettered.",
    )
    parser.add_argument(
        "--queue", action="append", help="queue name (repeatable); default IMS_WORKER_MNS_QUEUES"
    )
    parser.set_defaults(func=_consume)
