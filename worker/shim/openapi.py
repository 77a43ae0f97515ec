"""The OpenAPI 3.1 description of the shim, built once at start and served as bytes from ``/openapi.json``.

Request schemas describe what each provider documents (required identifying fields, extra fields allowed:
providers add fields over time and the shim keeps them). Security schemes name the headers, body fields and
query parameter each provider authenticates with; the signature formulas are in the descriptions.
"""

from __future__ import annotations

from typing import Any

from worker.shim.providers import ENDPOINTS

_STR = {"type": "string"}
_INT = {"type": "integer"}
_OBJ_ANY: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _obj(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": True}


_RTC_CONTENT = _obj(
    ["Event"],
    {
        "Event": {"type": "string", "enum": ["UserEvent", "ChannelEvent"]},
        "UserEvent": _obj(
            [],
            {
                "UserId": _STR,
                "EventTag": _STR,
                "SessionId": _STR,
                "Timestamp": {"type": "number"},
                "Role": _INT,
            },
        ),
        "ChannelEvent": _obj([], {"ChannelId": _STR, "EventTag": _STR, "Timestamp": {"type": "number"}}),
    },
)

REQUEST_SCHEMAS: dict[str, dict[str, Any]] = {
    "ims": _obj(
        ["EventType"],
        {"EventType": _STR, "UserId": _INT, "EventTime": _STR, "MessageBody": _OBJ_ANY},
    ),
    "live.record": _obj(
        ["domain", "app", "stream"],
        {
            "domain": _STR,
            "app": _STR,
            "stream": _STR,
            "event": {"type": "string", "enum": ["record_started", "record_paused", "record_resumed"]},
            "uri": _STR,
            "duration": {"type": "number"},
            "start_time": _INT,
            "stop_time": _INT,
            "push_args": _OBJ_ANY,
        },
    ),
    "live.caster": _obj(["EventType"], {"CasterId": _STR, "EventType": _STR, "EventMessage": _OBJ_ANY}),
    "rtc": _obj(
        ["MsgId", "Contents"],
        {
            "MsgId": _STR,
            "MsgTimestamp": _INT,
            "SubscribeID": _STR,
            "AppId": _STR,
            "ChannelID": _STR,
            "Contents": {"type": "array", "items": _RTC_CONTENT},
        },
    ),
    "tencent": _obj(
        ["event_type"],
        {
            "t": {"type": "integer", "description": "signature expiry, unix seconds"},
            "sign": {"type": "string", "description": 'md5hex("{key}{t}")'},
            "event_type": _INT,
            "callback_event": _STR,
            "appid": _INT,
            "task_id": _STR,
            "stream_id": _STR,
            "msg": _STR,
        },
    ),
}

_SUMMARIES = {
    "ims": "IMS HTTP callback",
    "live.record": "ApsaraVideo Live recording callback",
    "live.caster": "ApsaraVideo Live production studio callback",
    "rtc": "ApsaraVideo Live RTC event subscription callback",
    "tencent": "Tencent Cloud CSS relay callback",
}

_SECURITY_SCHEMES: dict[str, Any] = {
    "ims": {
        "type": "apiKey",
        "in": "header",
        "name": "X-ICE-SIGNATURE",
        "description": 'md5hex("{callback URL}|{X-ICE-TIMESTAMP}|{key}"), URL = public base URL + path',
    },
    "live.record": {
        "type": "apiKey",
        "in": "header",
        "name": "ALI-LIVE-SIGNATURE",
        "description": 'md5hex("{callback host}|{ALI-LIVE-TIMESTAMP}|{key}")',
    },
    "live.caster": {"type": "apiKey", "in": "query", "name": "token", "description": "the configured token"},
    "rtc": {
        "type": "apiKey",
        "in": "header",
        "name": "Ali-Rtc-Signature",
        "description": 'md5hex("{callback host}|{Ali-Rtc-Timestamp}|{AppKey}")',
    },
}

_TIMESTAMP_HEADERS = {
    "ims": "X-ICE-TIMESTAMP",
    "live.record": "ALI-LIVE-TIMESTAMP",
    "rtc": "Ali-Rtc-Timestamp",
}

_ERROR = {
    "type": "object",
    "required": ["error", "detail", "request_id"],
    "properties": {"error": _STR, "detail": _STR, "request_id": _STR},
}
_ACCEPTED = {
    "type": "object",
    "required": ["request_id", "events"],
    "properties": {
        "request_id": _STR,
        "events": {
            "type": "array",
            "items": _obj(
                ["id", "type", "duplicate"], {"id": _STR, "type": _STR, "duplicate": {"type": "boolean"}}
            ),
        },
    },
}


def _error(description: str, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        answer["headers"] = {name: {"schema": _STR, "description": text} for name, text in headers.items()}
    return answer


def _webhook_operation(source: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{source}"}
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if source == "rtc":
        content["application/x-www-form-urlencoded"] = {"schema": _OBJ_ANY}
    ok = (
        {"type": "object", "required": ["code"], "properties": {"code": {"const": 0}}}
        if source == "tencent"
        else {"$ref": "#/components/schemas/Accepted"}
    )
    operation: dict[str, Any] = {
        "summary": _SUMMARIES[source],
        "operationId": f"webhook_{source.replace('.', '_')}",
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {
                "description": "every event is durably enqueued (or was already: a duplicate delivery)",
                "content": {"application/json": {"schema": ok}},
            },
            "400": _error("the body is not valid JSON, not an object, or not a valid event"),
            "401": _error("authentication missing, malformed, stale, in the future or wrong"),
            "413": _error("the body exceeds the configured limit"),
            "415": _error("the Content-Type is not accepted"),
            "503": _error("Redis is unreachable; retry later", **{"Retry-After": "seconds"}),
        },
    }
    if source in _TIMESTAMP_HEADERS:
        operation["parameters"] = [
            {"name": _TIMESTAMP_HEADERS[source], "in": "header", "required": False, "schema": _STR}
        ]
    if source in _SECURITY_SCHEMES:
        operation["security"] = [{source: []}]
    return operation


def _status_operation(summary: str, *, text: bool = False) -> dict[str, Any]:
    media = "text/plain" if text else "application/json"
    answers: dict[str, Any] = {
        "200": {"description": "ok", "content": {media: {"schema": _STR if text else _OBJ_ANY}}}
    }
    if summary.startswith("Readiness"):
        answers["503"] = _error("the broker is unreachable", **{"Retry-After": "seconds"})
    return {"summary": summary, "responses": answers}


def build_openapi(version: str = "0.1.0") -> dict[str, Any]:
    """The whole description as a JSON-ready dict."""
    paths: dict[str, Any] = {path: {"post": _webhook_operation(source)} for source, path in ENDPOINTS.items()}
    paths["/healthz"] = {"get": _status_operation("Liveness: the process answers")}
    paths["/readyz"] = {"get": _status_operation("Readiness: the broker (Redis) is reachable")}
    paths["/metrics"] = {"get": _status_operation("Prometheus metrics", text=True)}
    paths["/openapi.json"] = {"get": _status_operation("This description")}
    schemas: dict[str, Any] = {"Error": _ERROR, "Accepted": _ACCEPTED, **REQUEST_SCHEMAS}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ims-event-worker webhook shim",
            "version": version,
            "description": "Authenticates provider webhooks, normalizes them and enqueues them into Redis.",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }
