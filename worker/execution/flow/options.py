"""The flow-control options of ``@handler(..., key=, stale=, rate=, concurrency=)``: parsed and checked once,
at registration, so a typo stops the worker at start with a message naming the handler and the option.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from worker.errors import ConfigurationError
from worker.events import Event
from worker.events.schema import fields

KeyFunc = Callable[[Event], object]
KeySpec = str | KeyFunc
MAX_KEY_CHARS = 200  # longer key values are hashed (a Redis key per value; bounded size)
MAX_SEARCH_DEPTH = 4  # how deep a bare field name is looked for inside the event's data

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0}
_PERIODS |= {"h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    count: int
    period: float  # seconds
    text: str

    @property
    def interval_ms(self) -> float:
        """The spacing between two starts: at most ``count`` starts fall in any window of ``period``."""
        return self.period * 1000.0 / self.count


def parse_rate(text: str) -> Rate:
    match = _RATE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ConfigurationError(f"rate {text!r} is not '<count>/<s|m|h>' with count >= 1, e.g. '20/s'")
    count, unit = int(match.group(1)), match.group(2)
    return Rate(count=count, period=_PERIODS[unit], text=f"{count}/{unit[0]}")


@dataclass(frozen=True)
class FlowOptions:
    key: KeySpec | None = None
    stale: Literal["skip"] | None = None
    rate: Rate | None = None
    concurrency: int | None = None

    @property
    def active(self) -> bool:
        return self.key is not None or self.rate is not None or self.concurrency is not None

    def describe(self) -> dict[str, Any]:
        key = self.key
        if callable(key):
            key = f"{getattr(key, '__module__', '?')}:{getattr(key, '__qualname__', repr(key))}"
        return {
            "key": key,
            "stale": self.stale,
            "rate": self.rate.text if self.rate else None,
            "concurrency": self.concurrency,
        }


def build_options(
    handler_name: str,
    event_types: Iterable[str],
    *,
    key: KeySpec | None,
    stale: str | None,
    rate: str | None,
    concurrency: int | None,
    models: Mapping[str, type[BaseModel]],
) -> FlowOptions:
    """Validate one subscription's options; ``models``: event type -> data model, for the types it matches."""
    where = f"@handler option of {handler_name}"
    if stale not in (None, "skip"):
        raise ConfigurationError(f"{where}: stale={stale!r}; the only choice is stale='skip'")
    if stale is not None and key is None:
        raise ConfigurationError(f"{where}: stale='skip' needs key= (staleness is judged per key value)")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)):
        raise ConfigurationError(f"{where}: concurrency={concurrency!r} must be an integer >= 1")
    if concurrency is not None and concurrency < 1:
        raise ConfigurationError(f"{where}: concurrency={concurrency} must be >= 1")
    if key is not None and not callable(key):
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"{where}: key={key!r} must be a field name or a callable of the event")
        types_with = [t for t in event_types if _model_has(models[t], key.split("."))]
        if not types_with:
            raise ConfigurationError(
                f"{where}: key={key!r} names no field of the event types it subscribes to"
                f" ({_shown(list(event_types))}); {_key_fields(models, event_types)}, or a callable"
            )
    try:
        parsed = parse_rate(rate) if rate is not None else None
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    return FlowOptions(key=key, stale="skip" if stale else None, rate=parsed, concurrency=concurrency)


def _shown(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{len(names)} types: {names[0]} ... {names[-1]}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found += _models_in(arg)
    return found


def _key_fields(models: Mapping[str, type[BaseModel]], event_types: Iterable[str]) -> str:
    """The field names those types have (all of them first), to say what ``key=`` could name instead."""
    per_type = [
        {row.path.rsplit(".", 1)[-1].removesuffix("[]") for row in fields(models[t])} for t in event_types
    ]
    common = set.intersection(*per_type) if per_type else set()
    names = sorted(common) or sorted(set().union(*per_type))
    if not names:
        return "these types have no typed field"
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    return f"fields {'all of them' if common else 'some of them'} have: {shown}"


def _model_has(model: type[BaseModel], path: list[str], depth: int = 0) -> bool:
    """Whether ``model`` declares the dotted ``path``, or (a bare name) that field at any depth."""
    if depth > MAX_SEARCH_DEPTH:
        return False
    head, rest = path[0], path[1:]
    for name, field in model.model_fields.items():
        if head in (name, field.alias):
            if not rest:
                return True
            if any(_model_has(sub, rest, depth + 1) for sub in _models_in(field.annotation)):
                return True
        if len(path) == 1 and any(_model_has(sub, path, depth + 1) for sub in _models_in(field.annotation)):
            return True
    return False


def key_value(spec: KeySpec, event: Event) -> str | None:
    """The key value of ``event``: the field (searched in ``event.data``, then ``event.raw``) or the
    callable's answer; ``None`` when the event has none."""
    value = spec(event) if callable(spec) else _lookup(event, spec)
    if value is None or value == "":
        return None
    return str(value)


def _lookup(event: Event, name: str) -> object:
    path = name.split(".")
    dumped = event.data.model_dump(by_alias=True)
    for root in (dumped, event.raw):
        found = _find(root, path) if len(path) > 1 else _search(root, name)
        if found is not None:
            return found
    return None


def _find(node: object, path: list[str]) -> object:
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _search(root: object, name: str) -> object:
    """Breadth first: the shallowest field of that name wins (``MessageBody.MediaId`` before deeper ones)."""
    level: list[object] = [root]
    for _ in range(MAX_SEARCH_DEPTH + 1):
        deeper: list[object] = []
        for node in level:
            if isinstance(node, dict):
                value = node.get(name)
                if value is not None and not isinstance(value, dict | list):
                    return value
                deeper += [v for v in node.values() if isinstance(v, dict | list)]
            elif isinstance(node, list):
                deeper += [v for v in node if isinstance(v, dict | list)]
        level = deeper
    return None
