"""The webhook shim: a plain ASGI app (no framework on the hot path) served by uvicorn.

A webhook request goes: route lookup (live endpoints only, ``worker.shim.arming``) -> header authentication
(before the body is read) -> Content-Type -> size-limited read -> parse -> body authentication (Tencent) ->
``normalize`` -> ``publish`` (one Redis round trip, atomic dedupe + enqueue) -> 200; when Redis cannot take an
authenticated request in time, its events go to the durable local spool instead (``worker.shim.accept``)
and a drainer publishes them later. Authenticated but invalid: dead-lettered, 200 (``worker.shim.intake``).
Every other exception meets one place, ``_classify``, which turns it into a JSON answer; nothing leaves a
connection hanging. Settings-only work is in ``__init__``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import orjson
import pydantic
import redis.exceptions
import structlog

from worker.errors import BrokerUnavailable, InvalidPayload, TooManyEvents
from worker.events import Event, Transport
from worker.providers import normalize
from worker.settings import Settings
from worker.shim.accept import Acceptance
from worker.shim.accesslog import AccessLog
from worker.shim.answers import Answer, Publisher, Trace, error_body, validation_detail
from worker.shim.arming import check as check_arming
from worker.shim.batching import PublishBatcher
from worker.shim.body import body_kind, parse_form, parse_json_object, read_body
from worker.shim.drainer import Drainer
from worker.shim.errors import (
    AuthFailure,
    BadRequest,
    ClientDisconnected,
    MethodNotAllowed,
    NotFound,
    ShimError,
)
from worker.shim.intake import Intake
from worker.shim.memguard import RETRY_AFTER_SECONDS as MEMORY_RETRY_AFTER_SECONDS
from worker.shim.memguard import RedisMemoryHigh, memory_guard_for
from worker.shim.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from worker.shim.metrics import ShimMetrics
from worker.shim.network import request_headers
from worker.shim.openapi import build_openapi
from worker.shim.providers import Provider, build_providers
from worker.shim.spool import Spool
from worker.shim.types import Receive, Scope, Send

if TYPE_CHECKING:
    from worker.delivery.publish import AsyncPublisher

log = structlog.get_logger(__name__)

# Providers retry on their own schedule; this is the hint for those that honour it.
RETRY_AFTER_SECONDS = "5"
READY_TIMEOUT_SECONDS = 1.0
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TENCENT_OK = b'{"code":0}'


def _default_publisher(settings: Settings) -> Publisher:
    # Imported late: the publisher pulls in the Redis client and Celery's message format, which tests of the
    # pure parts of the shim do not need.
    from worker.delivery.publish import AsyncPublisher  # noqa: PLC0415

    return AsyncPublisher(settings)


class ShimApp:
    """The ASGI callable. Create it with ``create_app``."""

    def __init__(self, settings: Settings, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.arming = check_arming(settings)  # ConfigurationError: nothing to serve, or a bad key
        self.providers: dict[str, Provider] = build_providers(settings, self.arming)
        self.metrics = ShimMetrics()
        self._owns_publisher = publisher is None
        self.publisher: Publisher = publisher if publisher is not None else _default_publisher(settings)
        self._limit = settings.shim_max_body_bytes
        self._max_events = settings.max_events_per_request
        self._read_timeout = settings.shim_read_timeout_seconds
        self._batcher = PublishBatcher(self.publisher, timeout=settings.shim_publish_timeout_seconds)
        self._memory_guard = memory_guard_for(settings) if self._owns_publisher else None
        self.access_log = AccessLog(settings)
        self._openapi = orjson.dumps(build_openapi([p.spec for p in self.providers.values()]))
        self._intake = Intake(settings, self.arming, self.metrics)
        self.spool = Spool(settings) if settings.shim_spool_enabled else None  # ConfigurationError: no disk
        self.metrics.spool_source = lambda: self.spool
        self.acceptance = Acceptance(settings, self._batcher, self.metrics, self._memory_guard, self.spool)
        self._drainer: Drainer | None = None
        self._intake.announce()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.info(
                    "shim.started",
                    endpoints=self._intake.endpoint_modes(self.providers),
                    public_url=self.settings.shim_public_url,
                    spool=str(self.spool.own.file.path) if self.spool is not None else None,
                )
                self._start_drainer()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._drainer is not None:
                    await self._drainer.stop()
                await self._batcher.drain()
                if self.spool is not None:
                    await self.spool.aclose()
                if self._owns_publisher:
                    await self.publisher.aclose()
                self._intake.close()
                if self._memory_guard is not None:
                    await self._memory_guard.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_drainer(self) -> None:
        if self.spool is None:
            return
        publisher = self.publisher

        async def publish(events: Sequence[Event], waited_ms: Sequence[int]) -> object:
            if self._owns_publisher:  # ours: the journal records how long each event waited in the spool
                return await cast("AsyncPublisher", publisher).publish(events, spooled_ms=waited_ms)
            return await publisher.publish(events)

        self._drainer = Drainer(
            self.spool,
            publish,
            self.settings,
            self.metrics,
            on_result=self.acceptance.redis_result,
            may_publish=self.acceptance.memory_ok,
        )
        self._drainer.start()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = request_headers(scope["headers"])
        given_id = headers.get("x-request-id")
        request_id = given_id if given_id and _REQUEST_ID.fullmatch(given_id) else os.urandom(16).hex()
        trace = Trace(request_id)
        try:
            path = scope["path"]
            # "/webhooks/ims/" is the same endpoint: providers' consoles make adding a slash easy.
            provider = self.providers.get(path) or self.providers.get(path.rstrip("/"))
            if provider is not None:
                trace.provider = provider.source
                answer = await self._webhook(provider, scope, headers, receive, trace)
            else:
                answer = await self._operations(scope)
        except ClientDisconnected:
            log.info("shim.client_disconnected", request_id=request_id, path=scope["path"])
            return
        except Exception as exc:  # noqa: BLE001 - the one place every failure is classified and answered
            answer = self._classify(exc, request_id, trace)
        await self._respond(send, answer, request_id)
        self._record(scope, answer.status, trace, started)

    async def _respond(self, send: Send, answer: Answer, request_id: str) -> None:
        response_headers = [
            (b"content-type", answer.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        response_headers += [
            (name.lower().encode(), value.encode()) for name, value in answer.headers.items()
        ]
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": response_headers})
            await send({"type": "http.response.body", "body": answer.body})
        except OSError:  # the client hung up before reading the answer; the server closes the socket
            log.info("shim.client_gone", request_id=request_id)

    async def _webhook(
        self,
        provider: Provider,
        scope: Scope,
        headers: dict[str, str],
        receive: Receive,
        trace: Trace,
    ) -> Answer:
        request_id = trace.request_id
        if scope["method"] != "POST":
            raise MethodNotAllowed("this endpoint only accepts POST", headers={"Allow": "POST"})
        verified = False  # a signature or token checked: only such requests may be spooled
        if provider.header_auth is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            verified = provider.header_auth(headers, scope.get("scheme", "http"), scope["path"], query)
            if not verified:
                self._intake.unsigned(provider, scope, headers)
        kind = body_kind(headers.get("content-type"), accept_form=provider.accept_form)
        raw = await read_body(
            receive,
            limit=self._limit,
            declared_length=headers.get("content-length"),
            timeout=self._read_timeout,
        )
        authenticated = provider.header_auth is not None
        try:
            payload = parse_form(raw) if kind == "form" else parse_json_object(raw)
            if provider.body_auth is not None:
                verified = provider.body_auth(payload)
                if not verified:
                    self._intake.unsigned(provider, scope, headers)
                authenticated = True
            if provider.tencent_answer:
                # Tencent's per-delivery signature is never stored with the event (handlers log raw payloads).
                payload.pop("sign", None)
            transport = Transport(kind="http", request_id=request_id)
            events = normalize(
                provider.source, payload, transport=transport, parsed=True, max_events=self._max_events
            )
        except TooManyEvents:
            raise  # the fan-out bound: 413, nothing enqueued or kept
        except (BadRequest, InvalidPayload) as exc:
            if not self._intake.keeps(exc, authenticated=authenticated):
                raise
            return await self._intake.dead_letter(provider, raw, exc, trace)
        trace.event_ids = [event.id for event in events]
        results, spooled = await self.acceptance.accept(provider.source, events, trace, verified=verified)
        trace.duplicates = sum(1 for result in results if not result.enqueued)
        if provider.tencent_answer:
            return Answer(200, _TENCENT_OK)
        body: dict[str, object] = {
            "request_id": request_id,
            "events": [{"id": r.event_id, "type": r.type, "duplicate": not r.enqueued} for r in results],
        }
        if spooled:  # durable on the shim's disk; published to Redis as soon as it answers
            body["spooled"] = True
        return Answer(200, orjson.dumps(body))

    async def _operations(self, scope: Scope) -> Answer:
        path = scope["path"]
        if path not in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            raise NotFound(f"no endpoint at {path}")
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed("this endpoint only accepts GET", headers={"Allow": "GET, HEAD"})
        if path == "/healthz":
            return Answer(200, b'{"status":"ok"}')
        if path == "/readyz":
            return await self._readiness()
        if path == "/metrics":
            return Answer(200, self.metrics.render(), METRICS_CONTENT_TYPE.encode())
        return Answer(200, self._openapi)

    async def _readiness(self) -> Answer:
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                ready = await self.publisher.ping()
        except (TimeoutError, BrokerUnavailable, OSError):
            ready = False
        if ready:
            return Answer(200, b'{"status":"ready"}')
        if self.spool is not None and self.spool.can_accept():
            # Redis is out, but authenticated requests are kept on disk: stay in the load balancer.
            return Answer(200, b'{"status":"ready","redis":"unavailable","spool":"accepting"}')
        body = orjson.dumps(
            {"status": "unavailable", "error": "broker_unavailable", "detail": "Redis unreachable"}
        )
        return Answer(503, body, headers={"Retry-After": RETRY_AFTER_SECONDS})

    def _classify(self, exc: Exception, request_id: str, trace: Trace) -> Answer:
        """Every failure of a request, turned into its answer; only unexpected ones log a traceback."""
        if isinstance(exc, BrokerUnavailable) and isinstance(
            exc.__cause__, redis.exceptions.OutOfMemoryError
        ):
            # Redis filled up between two readings of the memory guard (it reads INFO once a second).
            log.warning("shim.redis_memory.full", request_id=request_id, provider=trace.provider)
            detail = (
                "Redis is at its maxmemory and refused the write; the event was not accepted, retry later"
            )
            exc = RedisMemoryHigh(detail, headers={"Retry-After": MEMORY_RETRY_AFTER_SECONDS})
        if isinstance(exc, ShimError):
            trace.error = exc.code
            if isinstance(exc, AuthFailure) and trace.provider is not None:
                self.metrics.auth_failure(trace.provider, exc.code)
            return Answer(exc.status, error_body(exc.code, exc.detail, request_id), headers=exc.headers)
        if isinstance(exc, TooManyEvents):  # the fan-out bound: nothing was enqueued
            trace.error = "too_many_events"
            return Answer(413, error_body("too_many_events", str(exc), request_id))
        if isinstance(exc, InvalidPayload):
            trace.error = "invalid_event"
            return Answer(400, error_body("invalid_event", str(exc), request_id))
        if isinstance(exc, pydantic.ValidationError):
            trace.error = "invalid_event"
            return Answer(400, error_body("invalid_event", validation_detail(exc), request_id))
        if isinstance(exc, BrokerUnavailable):
            trace.error = "broker_unavailable"
            log.warning(
                "shim.broker_unavailable", request_id=request_id, provider=trace.provider, detail=str(exc)
            )
            detail = "Redis is unreachable; the event was not accepted, retry later"
            return Answer(
                503,
                error_body("broker_unavailable", detail, request_id),
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        trace.error = "internal_error"
        log.exception("shim.internal_error", request_id=request_id, provider=trace.provider)
        detail = f"unexpected error; the operator can find it in the logs under request id {request_id}"
        return Answer(500, error_body("internal_error", detail, request_id))

    def _record(self, scope: Scope, status: int, trace: Trace, started: float) -> None:
        elapsed = time.perf_counter() - started
        if trace.provider is not None:
            self.metrics.request(trace.provider, status, elapsed)
        if trace.provider is not None or status >= 400:
            self.access_log.write(
                request_id=trace.request_id,
                provider=trace.provider,
                method=scope["method"],
                path=scope["path"],
                status=status,
                event_ids=trace.event_ids,
                duplicates=trace.duplicates,
                error=trace.error,
                latency_ms=round(elapsed * 1000, 3),
            )


def create_app(settings: Settings, publisher: Publisher | None = None) -> ShimApp:
    """The shim as an ASGI app. Without ``publisher`` it makes (and closes) its own ``AsyncPublisher``."""
    return ShimApp(settings, publisher)


def create_app_from_environment() -> ShimApp:
    """uvicorn factory for ``--workers N``: each worker process reads the settings and builds its app."""
    from worker.logging import configure_logging  # noqa: PLC0415 - only worker processes set up logging
    from worker.settings import load_settings  # noqa: PLC0415 - only the factory path reads the environment

    settings = load_settings()
    configure_logging(settings)  # each spawned worker process logs like the parent
    # configure_logging makes "uvicorn.access" propagate to the root handler, and uvicorn writes its own
    # access line whenever that logger has handlers (its access_log=False is applied before this runs): a
    # second, slow (~100 us) line per request next to ours. Keep it off, as in the one-process path.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    return create_app(settings)
