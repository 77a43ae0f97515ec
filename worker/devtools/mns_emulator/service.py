"""Routing of authenticated MNS requests to operations, and error answers the SDK can parse."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import structlog

from worker.devtools.mns_emulator import message_ops, queue_ops, xmlcodec
from worker.devtools.mns_emulator.auth import Authenticator
from worker.devtools.mns_emulator.errors import BatchError, MnsError
from worker.devtools.mns_emulator.faults import FaultInjector
from worker.devtools.mns_emulator.http_types import Request, Response, operation_name
from worker.devtools.mns_emulator.queue_state import EmulatedQueue
from worker.devtools.mns_emulator.store import Broker

log = structlog.get_logger(__name__)

XML_CONTENT_TYPE = "text/xml;charset=utf-8"


class MnsService:
    """The MNS queue API over a ``Broker``. Transport-neutral: the HTTP layer adds faults and framing."""

    def __init__(self, broker: Broker, authenticator: Authenticator, faults: FaultInjector, host_id: str):
        self.broker = broker
        self.authenticator = authenticator
        self.faults = faults
        self.host_id = host_id
        self._lock = threading.Lock()
        self.operations: Counter[str] = Counter()  # "BatchReceiveMessage 200", "DeleteMessage 404", ...
        # (AccessKey id, operation) pairs answered AccessDenied, as a RAM policy without that action would.
        self.denied: set[tuple[str, str]] = set()

    def handle(self, req: Request, request_id: str) -> Response:
        try:
            key_id = self.authenticator.verify(req.method, req.uri, req.headers, req.body)
            self._authorize(key_id, req)
            response = self._route(req)
        except MnsError as exc:
            response = self.error(exc, request_id)
        except BatchError as exc:
            response = Response(exc.status, exc.body)
        except Exception:  # a bug here must still answer like the service does, not hang the client
            log.exception("mns.emulator.internal_error", method=req.method, uri=req.uri)
            response = self.error(MnsError("InternalError", "Internal error."), request_id)
        if response.body:
            response.headers.setdefault("Content-Type", XML_CONTENT_TYPE)
        self.count(req, response)
        return response

    def _authorize(self, key_id: str, req: Request) -> None:
        if (key_id, operation_name(req)) in self.denied:
            raise MnsError(
                "AccessDenied",
                "The OwnerId that your Access Key Id associated to is forbidden for this operation.",
            )

    def error(self, exc: MnsError, request_id: str) -> Response:
        body = xmlcodec.error_document(exc.code, exc.message, request_id, self.host_id)
        return Response(exc.status, body, {"Content-Type": XML_CONTENT_TYPE})

    def count(self, req: Request, response: Response) -> None:
        key = f"{operation_name(req)} {response.status}"
        with self._lock:
            self.operations[key] += 1

    def _route(self, req: Request) -> Response:
        # "/queues" -> ["", "queues"]; "/queues/q" -> [.., "q"]; "/queues/q/messages" -> [.., "q", "messages"]
        parts = req.path.split("/")
        method = req.method
        if parts[:2] == ["", "queues"]:
            if len(parts) == 2 and method == "GET":
                return queue_ops.list_queue(self.broker, req)
            if len(parts) == 3 and parts[2] and method in _QUEUE_ROUTES:
                return _QUEUE_ROUTES[method](self.broker, req, parts[2])
            if len(parts) == 4 and parts[2] and parts[3] == "messages" and method in _MESSAGE_ROUTES:
                return _MESSAGE_ROUTES[method](self.broker.get(parts[2]), req, self.faults)
        raise MnsError(
            "InvalidRequestURL",
            f"Http request URL format invalid (only queues are emulated): {method} {req.path}",
        )


def _put_queue(broker: Broker, req: Request, name: str) -> Response:
    if req.query.get("metaoverride", "").lower() == "true":
        return queue_ops.set_queue_attributes(broker, req, name)
    return queue_ops.create_queue(broker, req, name)


_QUEUE_ROUTES: dict[str, Callable[[Broker, Request, str], Response]] = {
    "PUT": _put_queue,
    "GET": queue_ops.get_queue_attributes,
    "DELETE": queue_ops.delete_queue,
}
_MESSAGE_ROUTES: dict[str, Callable[[EmulatedQueue, Request, FaultInjector], Response]] = {
    "POST": lambda queue, req, _: message_ops.send_message(queue, req),
    "GET": lambda queue, req, _: message_ops.receive_message(queue, req),
    "DELETE": lambda queue, req, faults: message_ops.delete_message(queue, req, faults.fail_delete),
    "PUT": lambda queue, req, _: message_ops.change_message_visibility(queue, req),
}
