"""Queue-level operations: CreateQueue, SetQueueAttributes, GetQueueAttributes, DeleteQueue, ListQueue."""

from __future__ import annotations

from worker.devtools.mns_emulator import xmlcodec
from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.http_types import Request, Response
from worker.devtools.mns_emulator.queue_state import EmulatedQueue
from worker.devtools.mns_emulator.store import Broker, attributes_from, parse_int
from worker.devtools.mns_emulator.xmlcodec import Field


def _queue_fields(req: Request, body: bytes, root: str = "Queue") -> dict[str, str]:
    if not body.strip():
        return {}
    _, node = xmlcodec.parse(body, (root,))
    return xmlcodec.fields_of(node)


def queue_url(req: Request, name: str) -> str:
    return f"http://{req.host}/queues/{name}"


def create_queue(broker: Broker, req: Request, name: str) -> Response:
    attributes = attributes_from(_queue_fields(req, req.body))
    created = broker.create_queue(name, attributes)
    # The SDK reads Location on any 2xx; 201 = created, 204 = already there with the same attributes.
    return Response(201 if created else 204, headers={"Location": queue_url(req, name)})


def set_queue_attributes(broker: Broker, req: Request, name: str) -> Response:
    queue = broker.get(name)
    queue.set_attributes(attributes_from(_queue_fields(req, req.body), base=queue.attributes))
    return Response(204)


def attribute_fields(queue: EmulatedQueue) -> list[Field]:
    a = queue.attributes
    stats = queue.stats()
    return [
        ("QueueName", queue.name),
        ("CreateTime", queue.create_time),
        ("LastModifyTime", queue.last_modify_time),
        ("VisibilityTimeout", a.visibility_timeout),
        ("MaximumMessageSize", a.maximum_message_size),
        ("MessageRetentionPeriod", a.message_retention_period),
        ("DelaySeconds", a.delay_seconds),
        ("PollingWaitSeconds", a.polling_wait_seconds),
        ("ActiveMessages", stats.active),
        ("InactiveMessages", stats.inactive),
        ("DelayMessages", stats.delayed),
        ("LoggingEnabled", "True" if a.logging_enabled else "False"),
    ]


def get_queue_attributes(broker: Broker, req: Request, name: str) -> Response:
    body = xmlcodec.document("Queue", attribute_fields(broker.get(name)))
    return Response(200, body)


def delete_queue(broker: Broker, req: Request, name: str) -> Response:
    broker.delete_queue(name)
    return Response(204)


def list_queue(broker: Broker, req: Request) -> Response:
    prefix = req.headers.get("x-mns-prefix") or ""
    marker = req.headers.get("x-mns-marker") or ""
    number = req.headers.get("x-mns-ret-number")
    limit = parse_int("x-mns-ret-number", number, 1, 1000) if number else 1000
    with_meta = (req.headers.get("x-mns-with-meta") or "").lower() == "true"
    names, next_marker = broker.list_queues(prefix, marker, limit)
    records: list[list[Field]] = []
    for name in names:
        fields: list[Field] = [("QueueURL", queue_url(req, name))]
        if with_meta:
            try:
                fields += attribute_fields(broker.get(name))
            except MnsError:
                continue  # deleted meanwhile
        records.append(fields)
    tail = f"<NextMarker>{xmlcodec.escape(next_marker)}</NextMarker>" if next_marker else ""
    return Response(200, xmlcodec.list_document("Queues", "Queue", records, tail))
