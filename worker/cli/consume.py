"""``ims-worker consume``: the MNS consumer for ``IMS_WORKER_MNS_QUEUES``."""

from __future__ import annotations

import argparse
import signal
from types import FrameType
from typing import Any

import structlog

from worker.cli.preflight import load_handlers, require_free_port, require_mns
from worker.logging import configure_logging
from worker.mns.consumer import Consumer
from worker.mns.health import serve_health
from worker.ports import PortTaken, is_taken_error, taken_message
from worker.settings import load_settings

log = structlog.get_logger(__name__)


def _consume(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    require_mns(settings, queues_given=bool(args.queue))
    load_handlers(settings)  # events acknowledged here must have handlers that can run
    # Before anything reaches MNS: a taken port is one line and exit 2, not a traceback and a restart loop.
    require_free_port(
        settings.consumer_metrics_host,
        settings.consumer_metrics_port,
        "ims-worker consume: the /healthz and /metrics server",
        "IMS_WORKER_CONSUMER_METRICS_PORT (0 turns it off)",
    )
    consumer = Consumer(settings, queues=args.queue or None)
    consumer.check_queues()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("mns.consumer.signal", signal=signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if settings.consumer_metrics_port:
        try:
            server = serve_health(
                consumer.health, settings.consumer_metrics_host, settings.consumer_metrics_port
            )
        except OSError as exc:  # taken since the check above
            if not is_taken_error(exc):
                raise
            raise PortTaken(
                taken_message(
                    "ims-worker consume: the /healthz and /metrics server",
                    settings.consumer_metrics_host,
                    settings.consumer_metrics_port,
                    "IMS_WORKER_CONSUMER_METRICS_PORT (0 turns it off)",
                )
            ) from exc
        log.info(
            "mns.consumer.health", url=f"http://{settings.consumer_metrics_host}:{server.server_port}/healthz"
        )
    consumer.start()
    clean = consumer.wait()
    if consumer.fatal is not None:
        log.error("mns.consumer.exit", exit_code=2, reason="see mns.consumer.fatal")
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
