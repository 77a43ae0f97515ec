"""The provider registry: the five built-in definitions plus any loaded from plugin modules.

A provider is added by a module that calls ``register(ProviderSpec(...))`` at import. The service imports
the modules named in ``IMS_WORKER_PROVIDER_MODULES`` and those advertised under the entry-point group
``ims_worker.providers`` (each process: shim, consumer, Celery worker), before building routes or tasks.
Registering catalogues the provider's event types, so ``@handler`` can name them right after.

A process serves and routes the providers of its settings (``active``): the built-ins plus those registered by
the modules it was configured to load, never one that merely happens to be imported (tests import many).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from worker.errors import ConfigurationError
from worker.events.catalogue import register_source
from worker.providers import ims, live_caster, live_record, rtc, tencent
from worker.providers.spec import ProviderSpec
from worker.settings import Settings

ENTRY_POINT_GROUP = "ims_worker.providers"
UNKNOWN = "unknown"
UNKNOWN_DEDUPE_TTL_SECONDS = 86400

_PROVIDERS: dict[str, ProviderSpec] = {}
_ORIGIN: dict[str, str] = {}  # provider name -> the module that registered it
_BUILTIN_PACKAGE = "worker.providers."


def register(spec: ProviderSpec) -> ProviderSpec:
    """Add ``spec`` (idempotent for the same object); a clashing name, path or alias is refused."""
    current = _PROVIDERS.get(spec.name)
    if current is spec:
        return spec
    if current is not None:
        raise ConfigurationError(f"provider {spec.name!r} is defined twice")
    if spec.name == UNKNOWN or not spec.name.replace(".", "").replace("_", "").isalnum():
        raise ConfigurationError(f"provider name {spec.name!r} must be letters, digits, '.' or '_'")
    if not spec.path.startswith("/webhooks/"):
        raise ConfigurationError(f"provider {spec.name!r}: endpoint {spec.path!r} must start with /webhooks/")
    for other in _PROVIDERS.values():
        if other.path == spec.path:
            raise ConfigurationError(f"providers {other.name!r} and {spec.name!r} share {spec.path}")
        if set(spec.aliases) & {other.name, *other.aliases}:
            raise ConfigurationError(f"provider {spec.name!r}: an alias is taken by {other.name!r}")
    try:
        register_source(spec.name, spec.types)
    except ValueError as exc:
        raise ConfigurationError(f"provider {spec.name!r}: {exc}") from None
    _PROVIDERS[spec.name] = spec
    _ORIGIN[spec.name] = spec.identify.__module__
    return spec


for _builtin in (ims.PROVIDER, live_caster.PROVIDER, live_record.PROVIDER, rtc.PROVIDER, tencent.PROVIDER):
    register(_builtin)


def _plugin_modules(settings: Settings) -> list[str]:
    return [*settings.provider_modules, *(e.module for e in entry_points(group=ENTRY_POINT_GROUP))]


def load(settings: Settings) -> list[str]:
    """Import the provider plugin modules (setting, then entry points); return the active providers' names."""
    for name in settings.provider_modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import provider module {name!r} (IMS_WORKER_PROVIDER_MODULES): {exc}"
            ) from exc
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except ImportError as exc:
            raise ConfigurationError(f"cannot load provider entry point {entry.value!r}: {exc}") from exc
    names = [spec.name for spec in active(settings)]
    check_sources(settings, names)
    return names


def check_sources(settings: Settings, names: list[str]) -> None:
    """Settings keyed by source name only act on real sources: a typo (``{"rtcx": "realtime"}``) would do
    nothing, silently. Name every unknown one, with the valid names."""
    valid = [*names, UNKNOWN]
    problems = [
        f"{variable} names {key!r}, which is not a source"
        for variable, keys in (
            ("IMS_WORKER_QUEUE_ROUTES", settings.queue_routes),
            ("IMS_WORKER_DEDUPE_TTL_SECONDS", settings.dedupe_ttl_seconds),
        )
        for key in keys
        if key not in valid
    ]
    if problems:
        raise ConfigurationError(f"{'; '.join(problems)}; the sources are {', '.join(valid)}")


def active(settings: Settings) -> list[ProviderSpec]:
    """The providers this process serves and routes: the built-ins and those of its configured modules."""
    modules = set(_plugin_modules(settings))
    return [
        spec
        for name, spec in _PROVIDERS.items()
        if _ORIGIN[name].startswith(_BUILTIN_PACKAGE) or _ORIGIN[name] in modules
    ]


def providers() -> list[ProviderSpec]:
    """Every registered provider, built-ins first, in registration order."""
    return list(_PROVIDERS.values())


def get(name: str) -> ProviderSpec:
    """The provider named ``name`` or one of its aliases (``live-record``); ``KeyError`` if none."""
    spec = _PROVIDERS.get(name)
    if spec is not None:
        return spec
    for candidate in _PROVIDERS.values():
        if name in candidate.aliases:
            return candidate
    raise KeyError(f"unknown provider {name!r}; one of {', '.join(_PROVIDERS)}")


def queue_for(settings: Settings, source: str) -> str:
    """The Celery queue of ``source``'s events: ``IMS_WORKER_QUEUE_ROUTES``, else the provider's default."""
    if source in settings.queue_routes:
        return settings.queue_routes[source]
    spec = _PROVIDERS.get(source)
    return spec.queue if spec is not None else UNKNOWN


def dedupe_ttl(settings: Settings, source: str) -> int:
    """Seconds an event id of ``source`` stays a duplicate: the setting, else the provider's default."""
    if source in settings.dedupe_ttl_seconds:
        return settings.dedupe_ttl_seconds[source]
    spec = _PROVIDERS.get(source)
    if spec is not None:
        return spec.dedupe_ttl_seconds
    return settings.dedupe_ttl_seconds.get(UNKNOWN, UNKNOWN_DEDUPE_TTL_SECONDS)
