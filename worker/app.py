"""The Celery app: one task per catalogued event type, named exactly as the type, all run by one wrapper.

``celery -A worker.app worker`` and ``celery -A worker.app flower`` use the module-level ``app``, built from
the environment when this module is imported (the one place that reads settings at import, because the
Celery command line needs an object). Everything else, tests included, calls ``create_app(settings)``.

At worker start (``worker_init``) the handler plugins are discovered; a broken plugin stops the worker with a
clear message rather than letting it run without its handlers. Logging goes through ``worker.logging``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import structlog
from celery import Celery, Task, bootsteps, signals

from worker import kombuadapter
from worker.delivery.outbox import Outbox, Sweeper
from worker.errors import ConfigurationError
from worker.events.catalogue import CATALOGUE
from worker.execution import celerylog
from worker.execution import metrics as workermetrics
from worker.execution.celeryconfig import celery_config
from worker.execution.lease import LeaseKeeper
from worker.execution.profile import mismatch, pool_name, refusal
from worker.execution.progress import ProgressRecorder, record_delivery
from worker.execution.registry import REGISTRY, discover
from worker.execution.taskruntime import runtime
from worker.execution.tasks import run_event
from worker.logging import configure_logging
from worker.providers import load as load_providers
from worker.redisconn import store_client, sync_client
from worker.settings import Settings, load_settings

log = structlog.get_logger(__name__)


class EventApp(Celery):  # type: ignore[misc]  # celery ships no type hints
    """A Celery app that carries the ``Settings`` it was built from."""

    settings: Settings


def _register(app: EventApp, event_type: str) -> None:
    def run(self: Task, *args: Any, **kwargs: Any) -> str:
        # kwargs are not part of the message format; anything odd in args is dead-lettered by run_event.
        return run_event(self, args, app.settings)

    run.__name__ = run.__qualname__ = event_type.replace(".", "_")
    # Not shared: a shared task would be added to every other app created in the process (tests make many).
    # max_retries=None: the wrapper decides when to stop (task_max_attempts), Celery must not cap it at 3.
    app.task(name=event_type, bind=True, shared=False, max_retries=None)(run)


class LeaseStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery ships no type hints
    """Runs the lease heartbeat (``worker.execution.lease``) for the consumer of a worker's main process.

    A consumer step is (re)started with every broker connection; the heartbeat thread is started once and
    always reads the consumer's current channel."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, c: Any) -> None:
        _start_leases(c)


def create_app(settings: Settings | None = None, *, set_as_current: bool = False) -> EventApp:
    settings = settings or load_settings()
    app = EventApp("ims-worker", set_as_current=set_as_current)
    app.settings = settings
    load_providers(settings)  # plugin providers catalogue their event types: one task per type below
    app.conf.update(celery_config(settings))
    if settings.broker_is_redis:
        app.steps["consumer"].add(LeaseStep)
    for event_type in CATALOGUE:
        _register(app, event_type)
    app.finalize()
    return app


def load_handlers(settings: Settings) -> list[str]:
    """Discover built-in, configured and entry-point handler modules (idempotent: imports are cached)."""
    return discover(settings.handler_modules)


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    worker_app = getattr(sender, "app", None)
    if not isinstance(worker_app, EventApp):
        return
    _check_pool(worker_app, getattr(sender, "pool_cls", None))
    kombuadapter.check_versions()  # the internals the worker touches were tested on these versions only
    try:
        modules = load_handlers(worker_app.settings)
    except ConfigurationError as exc:
        # Celery logs and swallows exceptions from signal receivers; SystemExit is the way to stop the start.
        print(f"ims-worker: cannot load handlers: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from exc
    try:
        workermetrics.check_port(worker_app.settings)
    except ConfigurationError as exc:
        print(f"ims-worker: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from exc
    log.info("worker.handlers_loaded", modules=modules)
    for sub in REGISTRY.subscriptions:
        warning = mismatch(sub.name, sub.waits, worker_app.settings.worker_profile)
        if warning:
            log.warning("worker.profile_mismatch", warning=warning)


def _check_pool(worker_app: EventApp, pool_cls: Any) -> None:
    """Refuse gevent and eventlet (``worker.execution.profile``); fit Celery's options to the threads pool."""
    reason = refusal(pool_cls)
    if reason is not None:
        print(reason, file=sys.stderr, flush=True)
        raise SystemExit(2)
    if pool_name(pool_cls) == "threads":
        # On a lost broker connection Celery would "terminate" running acks-late tasks, which the threads
        # pool cannot do (NotImplementedError, in the consumer's reconnect). They run on instead; their
        # messages, no longer renewed on the new connection, come back after the lease and the ledger skips
        # the handlers they completed.
        worker_app.conf.worker_cancel_long_running_tasks_on_connection_loss = False
    log.info("worker.pool", pool=pool_name(pool_cls), profile=worker_app.settings.worker_profile)


def _on_setup_logging(**_: Any) -> None:
    # Connecting this receiver stops Celery from installing its own handlers: ours render structlog lines.
    configure_logging(app.settings)


_sweeper: Sweeper | None = None


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    # In the worker's main process only (pool children are forked before this and never run it).
    global _sweeper  # noqa: PLW0603 - one sweeper per worker process
    worker_app = getattr(sender, "app", None)
    if (
        not isinstance(worker_app, EventApp)
        or not worker_app.settings.broker_is_redis
        or _sweeper is not None
    ):
        return
    settings = worker_app.settings
    unacked = kombuadapter.unacked_key(worker_app.conf.broker_transport_options)  # the channel's name for it
    outbox = Outbox(store_client(settings), settings.visibility_timeout, unacked_key=unacked)
    _sweeper = Sweeper(outbox, interval=min(30.0, max(1.0, settings.visibility_timeout / 4)))
    _sweeper.start()


_leases: LeaseKeeper | None = None


def _start_leases(consumer: Any) -> None:
    global _leases  # noqa: PLW0603 - one heartbeat per worker process
    worker_app = getattr(consumer, "app", None)
    if not isinstance(worker_app, EventApp) or _leases is not None:
        return
    settings = worker_app.settings

    def channel() -> Any:
        return kombuadapter.consumer_channel(consumer)

    _leases = LeaseKeeper(
        channel,
        store_client(settings),
        lease_seconds=settings.visibility_timeout,
        interval=settings.lease_heartbeat_seconds,
    )
    _leases.start()
    # The queues this worker was started to consume (-Q), taken now: a cancelled consumer leaves the list.
    queues = sorted(worker_app.amqp.queues.consume_from)
    recorder = ProgressRecorder(
        Path(settings.worker_progress_file), queues, sync_client(settings.broker_url, settings), channel
    )
    recorder.start()
    log.info("worker.progress.recording", path=settings.worker_progress_file, queues=queues)
    log.info(
        "lease.heartbeat_started",
        lease_seconds=settings.visibility_timeout,
        interval_seconds=settings.lease_heartbeat_seconds,
    )


def _on_task_retry(sender: Any = None, request: Any = None, **_: Any) -> None:
    # In the process that ran the task, after the retry message was sent: the outbox copy is as young as it.
    worker_app = getattr(sender, "app", None)
    task_id = getattr(request, "id", None)
    if not isinstance(worker_app, EventApp) or not worker_app.settings.broker_is_redis or not task_id:
        return
    try:
        runtime(worker_app.settings).outbox.renew(task_id)
    except Exception as exc:  # noqa: BLE001 - the sweep then finds it queued or held anyway, only later
        log.warning("outbox.renew_failed", error=type(exc).__name__)


def _on_worker_shutdown(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()


signals.worker_init.connect(_on_worker_init)
signals.worker_ready.connect(_on_worker_ready)
signals.worker_ready.connect(workermetrics.on_worker_ready)
signals.worker_shutdown.connect(_on_worker_shutdown)
signals.task_retry.connect(_on_task_retry)
signals.task_received.connect(record_delivery)
signals.setup_logging.connect(_on_setup_logging)

try:
    app = create_app(load_settings(), set_as_current=True)
except ConfigurationError as _exc:
    # `celery -A worker.app worker` imports this module: one line and exit 2, as every ims-worker command,
    # rather than Celery's "Unable to load celery application" and a traceback.
    print(f"ims-worker: configuration error: {_exc}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None
celerylog.install(app.settings)  # Celery's banner and stdout, Flower's lines: through worker.logging
