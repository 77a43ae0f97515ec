"""Sending task messages through kombu, for brokers the one-script Redis path cannot serve (``amqp://``).

A minimal Celery app (same configuration as the worker's, no tasks registered) does the routing, queue
declaration and publisher confirms, so messages match what the worker consumes.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from celery import Celery
from kombu.exceptions import OperationalError

from worker.delivery.routing import broker_config
from worker.delivery.taskmessage import encode_event, task_argsrepr
from worker.errors import BrokerUnavailable
from worker.events import Event
from worker.redact import redact_text, redact_url
from worker.settings import Settings


class KombuSender:
    def __init__(self, settings: Settings) -> None:
        self._url = settings.broker_url
        self._app = Celery("ims-worker-publisher", set_as_current=False)
        self._app.conf.update(broker_config(settings))
        connection = self._app.connection_for_write()
        self._errors: tuple[type[BaseException], ...] = (
            OperationalError,
            OSError,
            *connection.connection_errors,
            *connection.channel_errors,
        )
        connection.release()

    def send(self, items: Sequence[tuple[Event, str]]) -> None:
        """Send ``(event, task id)`` pairs; raises ``BrokerUnavailable`` if any could not be handed over."""
        if not items:
            return
        try:
            with self._app.producer_or_acquire() as producer:
                for event, task_id in items:
                    self._app.send_task(
                        event.type,
                        args=[orjson.loads(encode_event(event))],
                        task_id=task_id,
                        argsrepr=task_argsrepr(event),
                        producer=producer,
                    )
        except self._errors as exc:
            detail = redact_text(str(exc)) or type(exc).__name__
            raise BrokerUnavailable(f"broker at {redact_url(self._url)} is unreachable: {detail}") from exc

    def ping(self) -> bool:
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
        except self._errors:
            return False
        return True

    def close(self) -> None:
        self._app.close()
