"""The explicit handler registry: ``@handler("type")`` subscriptions and plugin discovery.

Mistakes fail loudly at start (import time of the plugin): an unknown event type, a pattern that matches
nothing, a function registered twice, or a function that cannot take one ``Event``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from worker.errors import ConfigurationError
from worker.events import Event
from worker.events.catalogue import CATALOGUE
from worker.execution import profile
from worker.execution.flow.options import FlowOptions, KeySpec, build_options

HandlerFunc = Callable[
    [Event], Awaitable[None] | None
]  # async def handlers are awaited (worker.execution.asyncrun)
ENTRY_POINT_GROUP = "ims_worker.handlers"
BUILTIN_PACKAGE = "handlers"


@dataclass(frozen=True)
class Subscription:
    pattern: str
    func: HandlerFunc
    name: str  # "module:qualname", the stable identity used for ordering and exactly-once markers
    flow: FlowOptions = field(
        default_factory=FlowOptions
    )  # key / stale / rate / concurrency (worker.execution.flow)
    cpu_bound: bool | None = None  # declared by the plugin; None: not said (worker.execution.profile)

    def describe(self) -> dict[str, Any]:
        """The subscription and its options, for listings (``ims-worker handlers list``)."""
        declared = {} if self.cpu_bound is None else {"cpu_bound": self.cpu_bound}
        return {"name": self.name, "pattern": self.pattern, **self.flow.describe(), **declared}

    @property
    def waits(self) -> bool | None:
        """True: waits (async, or ``cpu_bound=False``); False: declared CPU-bound; None: not said."""
        return profile.waits(self.func, self.cpu_bound)

    def matches(self, event_type: str) -> bool:
        if self.pattern == "*":
            return True
        if self.pattern.endswith(".*"):
            return event_type.startswith(self.pattern[:-1])
        return event_type == self.pattern


def _handler_name(func: Callable[..., object]) -> str:
    return f"{func.__module__}:{func.__qualname__}"


def _check_pattern(pattern: str) -> None:
    if pattern == "*":
        return
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        if not any(known.startswith(prefix) for known in CATALOGUE):
            raise ConfigurationError(f"handler pattern {pattern!r} matches no known event type")
        return
    if pattern not in CATALOGUE:
        raise ConfigurationError(
            f"unknown event type {pattern!r} in @handler; see 'ims-worker events list' for the catalogue"
        )


class HandlerImportError(ConfigurationError):
    """A handler module could not be imported (not installed, not on PYTHONPATH, or raising at import)."""


def _check_signature(func: Callable[..., object]) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"handler {func!r} has no inspectable signature") from exc
    try:
        signature.bind(object())
    except TypeError as exc:
        positional = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if not positional:
            found = "takes no positional argument"
        else:
            found = f"requires {len(required)} arguments ({', '.join(required)})"
        raise ConfigurationError(
            f"handler {_handler_name(func)} {found}; a handler takes exactly one positional argument, the "
            f"Event: def {getattr(func, '__name__', 'handler')}(event: Event) -> None"
        ) from exc


class Registry:
    """Subscriptions by pattern. ``handlers_for`` answers in a stable order (by handler name)."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._cache: dict[str, tuple[Subscription, ...]] = {}

    def add(
        self, pattern: str, func: HandlerFunc, flow: FlowOptions | None = None, cpu_bound: bool | None = None
    ) -> None:
        _check_pattern(pattern)
        _check_signature(func)
        name = _handler_name(func)
        for existing in self._subscriptions:
            if existing.name == name and existing.pattern == pattern:
                raise ConfigurationError(f"handler {name} is registered twice for {pattern!r}")
        sub = Subscription(
            pattern=pattern, func=func, name=name, flow=flow or FlowOptions(), cpu_bound=cpu_bound
        )
        self._subscriptions.append(sub)
        self._cache.clear()

    def handlers_for(self, event_type: str) -> tuple[Subscription, ...]:
        found = self._cache.get(event_type)
        if found is None:
            matched = {s.name: s for s in self._subscriptions if s.matches(event_type)}
            found = tuple(matched[name] for name in sorted(matched))
            self._cache[event_type] = found
        return found

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def clear(self) -> None:
        self._subscriptions.clear()
        self._cache.clear()


REGISTRY = Registry()


def handler(
    pattern: str,
    *,
    key: KeySpec | None = None,
    stale: str | None = None,
    rate: str | None = None,
    concurrency: int | None = None,
    cpu_bound: bool | None = None,
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Subscribe the decorated function to ``pattern``: an exact type, ``"<prefix>.*"`` or ``"*"``.

    Flow control across the whole fleet (docs/handlers.md): ``key`` (a field name such as ``"MediaId"``,
    looked up in the event's data, or a callable of the event): one run at a time per key value;
    ``stale="skip"``: skip an event older than the newest one completed for its key; ``rate="20/s"`` (or
    ``/m``, ``/h``): at most that many starts per period; ``concurrency=N``: at most N runs at once.

    ``cpu_bound=True`` (computes) or ``False`` (waits on the network): only declares the handler's kind, so
    that ``ims-worker handlers list`` and ``check`` warn when the worker profile does not fit it.
    """

    def register(func: HandlerFunc) -> HandlerFunc:
        flow = None
        if key is not None or stale is not None or rate is not None or concurrency is not None:
            _check_pattern(pattern)
            types = [t for t in CATALOGUE if Subscription(pattern, func, "").matches(t)]
            flow = build_options(
                _handler_name(func),
                types,
                key=key,
                stale=stale,
                rate=rate,
                concurrency=concurrency,
                models={t: CATALOGUE[t].model for t in types},
            )
        if cpu_bound is not None and not isinstance(cpu_bound, bool):
            raise ConfigurationError(
                f"@handler(cpu_bound=...) of {_handler_name(func)} must be True or False"
            )
        REGISTRY.add(pattern, func, flow, cpu_bound)
        return func

    return register


def _import(module_name: str, origin: str) -> None:
    try:
        importlib.import_module(module_name)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise HandlerImportError(f"cannot import handler module {module_name!r} ({origin}): {exc}") from exc


def discover(extra_modules: Iterable[str] = ()) -> list[str]:
    """Import the built-in handlers, ``extra_modules`` and the entry-point plugins; return what was loaded."""
    loaded: list[str] = []
    builtin = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        name = f"{BUILTIN_PACKAGE}.{info.name}"
        _import(name, "built-in")
        loaded.append(name)
    for name in extra_modules:
        _import(name, "IMS_WORKER_HANDLER_MODULES")
        loaded.append(name)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _import(entry.value.split(":")[0], f"entry point {entry.name}")
        loaded.append(entry.value)
    return loaded
