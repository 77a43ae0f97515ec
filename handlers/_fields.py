"""Helpers shared by the built-in handlers: pick the fields an operator looks for out of a provider object."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

FAILURE_STATUSES = frozenset({"fail", "failed", "failure", "error", "exception", "timeout"})

# Names structlog and the log pipeline use themselves, and the context the task wrapper binds to every line of
# an event (worker.logging.merge_bound_context): a provider field of that name is logged as provider_<name>
# (Tencent's numeric ``event_type`` 314 must not stand where the normalized type belongs).
RESERVED = frozenset(
    {"event", "level", "log_level", "logger", "logger_name", "timestamp", "exc_info", "stack_info"}
    | {"event_id", "event_type", "source", "task_id", "attempt", "process_name"}
)


def fields_of(data: Any) -> Mapping[str, Any]:
    """A typed payload (``event.data``, or a model inside it) as the provider's field names -> JSON values.

    The values are the validated ones (numbers sent as strings coerced, ``CurrentMedias`` as a list); absent
    optional fields are left out.
    """
    dump = getattr(data, "model_dump", None)
    if dump is not None:
        result: Mapping[str, Any] = dump(mode="json", exclude_none=True)
        return result
    return data if isinstance(data, Mapping) else {}


def as_mapping(value: Any) -> Mapping[str, Any]:
    """Providers sometimes nest JSON as a string (Tencent ``msg``, some MNS bodies): accept both forms."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def log_key(key: str) -> str:
    """The provider's field name, unless the log pipeline reserves it (``event`` -> ``provider_event``)."""
    return f"provider_{key}" if key in RESERVED else key


def pick(source: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The scalar values of ``keys`` present and non-empty in ``source``, keeping the provider's names."""
    found: dict[str, Any] = {}
    for key in keys:
        value = source.get(key)
        if value is None or value == "" or isinstance(value, Mapping | list):
            continue
        found[log_key(key)] = value
    return found


def urls(source: Mapping[str, Any]) -> dict[str, Any]:
    """Every scalar field whose name says it is a URL or URI (``FileUrl``, ``MediaURL``, ``uri``...)."""
    return {
        log_key(key): value
        for key, value in source.items()
        if isinstance(value, str) and value and key.lower().endswith(("url", "uri", "urls"))
    }


def is_failure(status: Any = None, error_code: Any = None) -> bool:
    if isinstance(status, str) and status.strip().lower() in FAILURE_STATUSES:
        return True
    return error_code not in (None, "", 0, "0", "Success", "success", "OK")
