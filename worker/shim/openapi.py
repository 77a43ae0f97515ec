"""The OpenAPI 3.1 description of the shim, generated from the provider definitions and their models.

Request schemas are the pydantic models' own JSON schemas (one ``anyOf`` entry per event type a provider
sends, or the provider's ``request_model``); security schemes and headers come from each ``AuthSpec``. It is
built once at start and served as bytes from ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from worker.providers import ProviderSpec

_STR = {"type": "string"}
_REF = "#/components/schemas/{model}"
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
        "dead_lettered": {
            "type": "boolean",
            "description": "authenticated but invalid: kept as a dead letter",
        },
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "type", "duplicate"],
                "properties": {"id": _STR, "type": _STR, "duplicate": {"type": "boolean"}},
            },
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


def _request_models(spec: ProviderSpec) -> list[type[BaseModel]]:
    if spec.request_model is not None:
        return [spec.request_model]
    return [model for model, _ in spec.types.values()]


def _security(spec: ProviderSpec) -> dict[str, Any] | None:
    auth = spec.auth
    if auth.kind == "token":
        return {"type": "apiKey", "in": "query", "name": "token", "description": auth.description}
    if auth.kind in ("md5-url", "md5-host") and auth.signature_header:
        return {
            "type": "apiKey",
            "in": "header",
            "name": auth.signature_header,
            "description": auth.description,
        }
    return None  # Tencent signs inside the body: described on the operation


def _operation(spec: ProviderSpec, refs: list[dict[str, Any]]) -> dict[str, Any]:
    schema: dict[str, Any] = refs[0] if len(refs) == 1 else {"anyOf": refs}
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if spec.accept_form:
        content["application/x-www-form-urlencoded"] = {"schema": {"type": "object"}}
    ok = (
        {"type": "object", "required": ["code"], "properties": {"code": {"const": 0}}}
        if spec.answer == "tencent"
        else {"$ref": "#/components/schemas/Accepted"}
    )
    operation: dict[str, Any] = {
        "summary": spec.title,
        "description": f"Authentication: {spec.auth.description}",
        "operationId": f"webhook_{spec.name.replace('.', '_')}",
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {
                "description": "every event is durably enqueued (or was already: a duplicate delivery), "
                "or the authenticated request was invalid and is kept as a dead letter",
                "content": {"application/json": {"schema": ok}},
            },
            "400": _error("the request could not be authenticated because its body is not a JSON object"),
            "401": _error("authentication missing, malformed, stale, in the future or wrong"),
            "403": _error("an unsigned request from outside the allowed networks"),
            "404": _error("the endpoint is not armed (no key configured)"),
            "413": _error("the body exceeds the configured limit"),
            "415": _error("the Content-Type is not accepted"),
            "503": _error("Redis is unreachable; retry later", **{"Retry-After": "seconds"}),
        },
    }
    if spec.auth.timestamp_header:
        operation["parameters"] = [
            {"name": spec.auth.timestamp_header, "in": "header", "required": False, "schema": _STR}
        ]
    if _security(spec) is not None:
        operation["security"] = [{spec.name: []}]
    return operation


def _status_operation(summary: str, *, text: bool = False) -> dict[str, Any]:
    media = "text/plain" if text else "application/json"
    schema = _STR if text else {"type": "object"}
    answers: dict[str, Any] = {"200": {"description": "ok", "content": {media: {"schema": schema}}}}
    if summary.startswith("Readiness"):
        answers["503"] = _error("the broker is unreachable", **{"Retry-After": "seconds"})
    return {"summary": summary, "responses": answers}


def build_openapi(specs: Sequence[ProviderSpec], version: str = "0.1.0") -> dict[str, Any]:
    """The whole description of the endpoints of ``specs`` (the armed ones) as a JSON-ready dict."""
    models = list(dict.fromkeys(model for spec in specs for model in _request_models(spec)))
    keyed, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=_REF, title="ims-event-worker"
    )
    paths: dict[str, Any] = {}
    security: dict[str, Any] = {}
    for spec in specs:
        refs = [keyed[(model, "validation")] for model in _request_models(spec)]
        paths[spec.path] = {"post": _operation(spec, refs)}
        scheme = _security(spec)
        if scheme is not None:
            security[spec.name] = scheme
    paths["/healthz"] = {"get": _status_operation("Liveness: the process answers")}
    paths["/readyz"] = {"get": _status_operation("Readiness: the broker (Redis) is reachable")}
    paths["/metrics"] = {"get": _status_operation("Prometheus metrics", text=True)}
    paths["/openapi.json"] = {"get": _status_operation("This description")}
    schemas: dict[str, Any] = {"Error": _ERROR, "Accepted": _ACCEPTED, **definitions.get("$defs", {})}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ims-event-worker webhook shim",
            "version": version,
            "description": "Authenticates provider webhooks, normalizes them and enqueues them into Redis.",
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": security},
    }
