"""Message operations: (Batch)Send, (Batch)Receive, (Batch)Peek, (Batch)Delete, ChangeMessageVisibility."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping

from worker.devtools.mns_emulator import xmlcodec
from worker.devtools.mns_emulator.errors import BatchError, MnsError
from worker.devtools.mns_emulator.http_types import Request, Response
from worker.devtools.mns_emulator.models import Delivery, NewMessage, QueueAttributes
from worker.devtools.mns_emulator.queue_state import EmulatedQueue
from worker.devtools.mns_emulator.store import parse_int
from worker.devtools.mns_emulator.xmlcodec import Field

MAX_BATCH = 16
MAX_WAIT_SECONDS = 30
DEFAULT_PRIORITY = 8
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def preloaded(
    bodies: Iterable[str], attributes: QueueAttributes, priority: int, delay_seconds: int
) -> list[NewMessage]:
    """Messages put in directly (Python or admin API), validated exactly like sent ones."""
    extra = {"Priority": str(priority), "DelaySeconds": str(delay_seconds)}
    return [new_message({"MessageBody": body, **extra}, attributes) for body in bodies]


def body_md5(body: str) -> str:
    return hashlib.md5(body.encode()).hexdigest().upper()  # noqa: S324 - protocol-defined checksum


def new_message(fields: Mapping[str, str], attributes: QueueAttributes) -> NewMessage:
    """Validate one message as the service does (the fields are its XML elements, as text)."""
    body = fields.get("MessageBody", "")
    if _NOT_XML.search(body):
        # Cannot come through the SDK (its XML would not parse); refused so that a preloaded body can
        # never produce a response the SDK fails to parse.
        raise MnsError("InvalidArgument", "MessageBody contains characters that XML 1.0 cannot carry.")
    size = len(body.encode())
    if not 1 <= size <= attributes.maximum_message_size:
        raise MnsError(
            "InvalidArgument",
            f"The length of MessageBody should between 1 and {attributes.maximum_message_size} bytes, "
            f"not {size}.",
        )
    delay = attributes.delay_seconds
    if "DelaySeconds" in fields:
        delay = parse_int("DelaySeconds", fields["DelaySeconds"], 0, 604800)
    priority = DEFAULT_PRIORITY
    if "Priority" in fields:
        priority = parse_int("Priority", fields["Priority"], 1, 16)
    return NewMessage(body, body_md5(body), priority, delay)


def send_message(queue: EmulatedQueue, req: Request) -> Response:
    root, node = xmlcodec.parse(req.body, ("Message", "Messages"))
    if root == "Message":
        [(message_id, md5)] = queue.send([new_message(xmlcodec.fields_of(node), queue.attributes)])
        body = xmlcodec.document("Message", [("MessageId", message_id), ("MessageBodyMD5", md5)])
        return Response(201, body)

    items = xmlcodec.items_of(node, "Message")
    _check_batch_size(len(items), "Message")
    accepted: list[NewMessage] = []
    entries: list[list[Field] | None] = []  # None: filled with the id once sent
    for item in items:
        try:
            accepted.append(new_message(xmlcodec.fields_of(item), queue.attributes))
            entries.append(None)
        except MnsError as exc:
            entries.append([("ErrorCode", exc.code), ("ErrorMessage", exc.message)])
    sent = iter(queue.send(accepted) if accepted else [])
    records: list[list[Field]] = []
    for entry in entries:
        if entry is None:
            message_id, md5 = next(sent)
            records.append([("MessageId", message_id), ("MessageBodyMD5", md5)])
        else:
            records.append(entry)
    body = xmlcodec.list_document("Messages", "Message", records)
    if len(accepted) < len(items):
        # Entries that failed carry ErrorCode/ErrorMessage; the SDK raises MNSServerException with the
        # per-entry list in ``sub_errors``. The others were sent.
        raise BatchError(400, body)
    return Response(201, body)


def _check_batch_size(count: int, what: str) -> None:
    if not 1 <= count <= MAX_BATCH:
        raise MnsError(
            "InvalidArgument", f"The count of {what} should between 1 and {MAX_BATCH}, not {count}."
        )


def _delivery_fields(d: Delivery, *, peek: bool = False) -> list[Field]:
    fields: list[Field] = [("MessageId", d.message_id)]
    if not peek:
        fields.append(("ReceiptHandle", d.receipt_handle))
    fields += [
        ("MessageBodyMD5", d.body_md5),
        ("MessageBody", d.body),
        ("EnqueueTime", d.enqueue_time),
    ]
    if not peek:
        fields.append(("NextVisibleTime", d.next_visible_time))
    fields += [
        ("FirstDequeueTime", d.first_dequeue_time),
        ("DequeueCount", d.dequeue_count),
        ("Priority", d.priority),
    ]
    return fields


def receive_message(queue: EmulatedQueue, req: Request) -> Response:
    query = req.query
    batch = "numofmessages" in query
    count = parse_int("numOfMessages", query["numofmessages"], 1, MAX_BATCH) if batch else 1
    peek = query.get("peekonly", "").lower() == "true"
    if peek:
        found = queue.peek(count)
    else:
        wait = queue.attributes.polling_wait_seconds
        if "waitseconds" in query:
            wait = parse_int("waitseconds", query["waitseconds"], 0, MAX_WAIT_SECONDS)
        found = queue.receive(count, wait)
    if not found:
        raise MnsError("MessageNotExist", "Message not exist.")
    if batch:
        records = [_delivery_fields(d, peek=peek) for d in found]
        return Response(200, xmlcodec.list_document("Messages", "Message", records))
    return Response(200, xmlcodec.document("Message", _delivery_fields(found[0], peek=peek)))


def delete_message(queue: EmulatedQueue, req: Request, fail_delete: Callable[[], bool]) -> Response:
    if "receipthandle" in req.query:
        handle = req.query["receipthandle"]
        if not handle:
            raise MnsError("MissingReceiptHandle", "ReceiptHandle is required.")
        queue.delete(handle)
        return Response(204)

    _, node = xmlcodec.parse(req.body, ("ReceiptHandles",))
    handles = [item.text or "" for item in xmlcodec.items_of(node, "ReceiptHandle")]
    _check_batch_size(len(handles), "ReceiptHandle")
    failures = queue.delete_batch(handles, fail_delete)
    if failures:
        # Partial failure is a 404 with <Errors>, one <Error> per handle that was not deleted.
        records: list[list[Field]] = [
            [("ErrorCode", exc.code), ("ErrorMessage", exc.message), ("ReceiptHandle", handle)]
            for handle, exc in failures
        ]
        raise BatchError(404, xmlcodec.list_document("Errors", "Error", records))
    return Response(204)


def change_message_visibility(queue: EmulatedQueue, req: Request) -> Response:
    handle = req.query.get("receipthandle", "")
    if not handle:
        raise MnsError("MissingReceiptHandle", "ReceiptHandle is required.")
    if not req.query.get("visibilitytimeout"):
        raise MnsError("MissingVisibilityTimeout", "VisibilityTimeout is required.")
    timeout = parse_int("VisibilityTimeout", req.query["visibilitytimeout"], 1, 43200)
    new_handle, next_visible = queue.change_visibility(handle, timeout)
    body = xmlcodec.document(
        "ChangeVisibility", [("ReceiptHandle", new_handle), ("NextVisibleTime", next_visible)]
    )
    return Response(200, body)
