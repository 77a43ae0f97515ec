"""The MNS consumer: pollers that receive, publish and delete; the loop boundary that classifies errors.

Each poller owns its SDK client (the SDK is not thread-safe), its publisher and its dead-letter store. One
``_poll_once`` is one batch: BatchReceive (long poll) -> publish -> BatchDelete. Every exception of a poll is
caught in exactly one place, ``Poller.run``, and turned into a backoff, a clean exit, or a fatal configuration
error that stops the whole consumer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
import structlog
from mns.mns_exception import MNSClientNetworkException, MNSExceptionBase, MNSServerException

from worker.backoff import backoff_delay
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.errors import BrokerUnavailable, ConfigurationError
from worker.mns import metrics
from worker.mns.backpressure import Backpressure, backpressure_for
from worker.mns.batch import BatchHandler
from worker.mns.client import interrupt, open_queue
from worker.mns.credentials import CredentialsUnavailable, credentials_for
from worker.mns.explain import explain_for
from worker.mns.health import PollHealth
from worker.mns.progress import Progress
from worker.mns.refusals import is_fatal, with_fresh_credentials
from worker.settings import Settings

log = structlog.get_logger(__name__)
_DEBUG = logging.getLogger(__name__)  # asked before building a debug line: structlog would build it first

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# A long poll answering "empty" much faster than asked means MNS is shedding load: pause instead of spinning.
EARLY_EMPTY_PAUSE_SECONDS = 1.0


class Poller(threading.Thread):
    """One receive loop on one queue."""

    def __init__(
        self,
        settings: Settings,
        queue_name: str,
        index: int,
        *,
        stopping: threading.Event,
        health: PollHealth,
        on_fatal: Any,
        backpressure: Backpressure,
    ) -> None:
        super().__init__(name=f"poller-{queue_name}-{index}", daemon=True)
        self.settings = settings
        self.queue_name = queue_name
        self.stopping = stopping
        self.health = health
        self.on_fatal = on_fatal
        self.backpressure = backpressure
        self.receiving = False
        self.queue: Any = None
        self._failures = 0
        self._rng = random.Random()  # noqa: S311 - jitter only
        self._progress = Progress()
        self.credentials = credentials_for(settings)

    def run(self) -> None:
        structlog.contextvars.bind_contextvars(queue=self.queue_name, poller=self.name)
        try:
            self.queue = open_queue(self.settings, self.queue_name)
            handler = BatchHandler(
                self.queue_name,
                Publisher(self.settings),
                DeadLetterStore.for_settings(self.settings),
                self.settings.mns_max_dequeue_count,
                self.settings.max_events_per_request,
            )
        except ConfigurationError as exc:
            self.on_fatal(exc)
            return
        while not self.stopping.is_set():
            try:
                self._poll_once(handler)
                self._failures = 0
            except MNSServerException as exc:
                if is_fatal(exc, refreshable=self.credentials.refreshable):
                    self.on_fatal(ConfigurationError(self._explain(exc, getattr(exc, "operation", None))))
                    return
                self._back_off(f"mns-{exc.type}", self._explain(exc))
            except CredentialsUnavailable as exc:
                # Already logged once for the incident by the credentials source: wait without a line each.
                self._back_off("credentials-unavailable", str(exc), quiet=True)
            except MNSClientNetworkException as exc:
                if self.stopping.is_set():
                    break  # our own interrupt of a long poll at shutdown
                self._back_off("mns-network", exc.type)
            except (BrokerUnavailable, redis.RedisError) as exc:
                self._back_off("broker-unavailable", str(exc))
            except (MNSExceptionBase, KeyError, UnicodeDecodeError, ValueError, OSError) as exc:
                # The SDK lets KeyError (missing headers) and UnicodeDecodeError escape its hierarchy.
                self._back_off(f"unexpected-{type(exc).__name__}", repr(exc)[:200])
            except Exception as exc:
                log.exception("mns.poller.unexpected_error")
                self._back_off(f"unexpected-{type(exc).__name__}", repr(exc)[:200])
            self._progress.report()
        self._progress.report(final=True)
        log.info("mns.poller.stopped")

    def _poll_once(self, handler: BatchHandler) -> None:
        if not self.backpressure.allow():
            # Paused on purpose, not stuck: the liveness probe must not restart us for it.
            self.health.record_poll()
            self.stopping.wait(self.backpressure.check_seconds)
            return
        messages = self._receive()
        if not messages:
            return
        started = time.perf_counter()
        metrics.RECEIVED.labels(self.queue_name).inc(len(messages))
        outcome = handler.handle(messages)
        self.backpressure.published(outcome.published)
        self._delete_messages(outcome.handles_to_delete)
        elapsed = time.perf_counter() - started
        metrics.BATCH_SECONDS.labels(self.queue_name).observe(elapsed)
        self._progress.add(len(messages), outcome)
        if _DEBUG.isEnabledFor(logging.DEBUG):
            log.debug(
                "mns.batch",
                count=len(messages),
                published=outcome.published,
                duplicates=outcome.duplicates,
                dead_lettered=outcome.dead_lettered,
                deleted=len(outcome.handles_to_delete),
                latency_ms=round(elapsed * 1000, 1),
            )

    def _receive(self) -> Sequence[Any]:
        wait = self.settings.mns_wait_seconds
        started = time.monotonic()
        self.receiving = True
        try:
            if self.stopping.is_set():
                return []
            size = self.settings.mns_batch_size
            messages: Sequence[Any] = self._fresh(
                "BatchReceiveMessage", lambda: self.queue.batch_receive_message(size, wait)
            )
        except MNSServerException as exc:
            if exc.type != "MessageNotExist":
                raise
            self.health.record_poll()
            metrics.LAST_POLL.labels(self.queue_name).set_to_current_time()
            if wait and time.monotonic() - started < wait / 2:
                self.stopping.wait(EARLY_EMPTY_PAUSE_SECONDS)
            return []
        finally:
            self.receiving = False
        self.health.record_poll()
        metrics.LAST_POLL.labels(self.queue_name).set_to_current_time()
        return messages

    # Not ``_delete``: that name is threading.Thread's own clean-up hook, which runs when the thread ends.
    def _delete_messages(self, handles: list[str]) -> None:
        if not handles:
            return
        try:
            self._fresh("BatchDeleteMessage", lambda: self.queue.batch_delete_message(handles))
        except MNSServerException as exc:
            if not exc.sub_errors and is_fatal(exc, refreshable=self.credentials.refreshable):
                exc.operation = "BatchDeleteMessage"  # e.g. the RAM policy lacks mns:DeleteMessage: stop
                raise
            # Partial failure: the SDK lists each refused handle. Those messages come back after their
            # visibility timeout and are absorbed as duplicates, so this is logged, not retried.
            failures = exc.sub_errors or [
                {"ReceiptHandle": "*", "ErrorCode": exc.type, "ErrorMessage": exc.message}
            ]
            for failure in failures:
                metrics.DELETE_FAILURES.labels(self.queue_name, failure.get("ErrorCode", "")).inc()
                log.warning(
                    "mns.delete.failed",
                    receipt_handle=failure.get("ReceiptHandle"),
                    code=failure.get("ErrorCode"),
                    message=failure.get("ErrorMessage"),
                )
            metrics.DELETED.labels(self.queue_name).inc(len(handles) - len(failures))
            return
        metrics.DELETED.labels(self.queue_name).inc(len(handles))

    def _fresh(self, operation: str, call: Any) -> Any:
        return with_fresh_credentials(self.credentials, operation, call)

    def _explain(self, exc: BaseException, operation: str | None = None) -> str:
        operation = operation or "BatchReceiveMessage"
        return explain_for(self.settings, exc, queue=self.queue_name, operation=operation)

    def _back_off(self, kind: str, detail: str, *, quiet: bool = False) -> None:
        self._failures += 1
        delay = backoff_delay(
            self._failures, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rng=self._rng
        )
        metrics.ERRORS.labels(self.queue_name, kind).inc()
        if not quiet:
            log.warning("mns.poller.backoff", kind=kind, detail=detail, attempt=self._failures,
                        delay_s=round(delay, 2))  # fmt: skip
        self.stopping.wait(delay)

    def interrupt_receive(self) -> None:
        if self.receiving and self.queue is not None:
            interrupt(self.queue)


class Consumer:
    """All pollers of all queues, with graceful shutdown and a fatal-error path."""

    def __init__(self, settings: Settings, queues: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.queues = list(queues if queues is not None else settings.mns_queues)
        if not self.queues:
            raise ConfigurationError("no MNS queue configured: set IMS_WORKER_MNS_QUEUES")
        self.stopping = threading.Event()
        self.health = PollHealth(
            max_silence_seconds=settings.mns_wait_seconds + settings.mns_socket_timeout + 30,
            health_file=settings.consumer_health_file,
        )
        self.fatal: ConfigurationError | None = None
        self.pollers: list[Poller] = []
        self.backpressure = backpressure_for(settings)

    def check_queues(self) -> None:
        """Fail fast on a wrong queue name, endpoint or key instead of backing off forever."""
        for name in self.queues:
            try:
                open_queue(self.settings, name).get_attributes()
            except CredentialsUnavailable as exc:
                raise ConfigurationError(str(exc)) from exc
            except MNSServerException as exc:
                if is_fatal(exc, refreshable=False):  # a token refused at start is no rotation
                    line = explain_for(self.settings, exc, queue=name, operation="GetQueueAttributes")
                    raise ConfigurationError(line) from exc
                # A 503/500 is MNS having a bad moment, not a wrong setting: the pollers back off and retry.
                log.warning("mns.check.failed", queue=name, error=exc.type)
            except MNSClientNetworkException as exc:
                log.warning("mns.check.unreachable", queue=name, error=exc.type)

    def _on_fatal(self, exc: ConfigurationError) -> None:
        if self.fatal is None:  # every poller meets the same cause: one line for the operator
            self.fatal = exc
            log.error("mns.consumer.fatal", error=str(exc))
        self.stopping.set()

    def start(self) -> None:
        for name in self.queues:
            for index in range(self.settings.mns_pollers_per_queue):
                poller = Poller(
                    self.settings,
                    name,
                    index,
                    stopping=self.stopping,
                    health=self.health,
                    on_fatal=self._on_fatal,
                    backpressure=self.backpressure,
                )
                self.pollers.append(poller)
                poller.start()
        log.info("mns.consumer.started", queues=self.queues, pollers=len(self.pollers))

    def stop(self) -> None:
        self.stopping.set()

    def wait(self) -> bool:
        """Block until stopped; then let batches in hand finish within the grace period. True if all did."""
        while not self.stopping.wait(0.5):
            pass
        for poller in self.pollers:
            poller.interrupt_receive()  # a long poll holds no message yet: cutting it short loses nothing
        deadline = time.monotonic() + self.settings.consumer_grace_seconds
        for poller in self.pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
        stuck = [p.name for p in self.pollers if p.is_alive()]
        if stuck:
            log.error("mns.consumer.grace_exceeded", pollers=stuck)
        log.info("mns.consumer.stopped", clean=not stuck)
        return not stuck
