"""One typed definition per event source (``ProviderSpec``) and what is derived from them.

Built-in providers: ``ims``, ``live.record``, ``live.caster``, ``rtc``, ``tencent`` (one module each here).
A new provider is one module that calls ``register(ProviderSpec(...))``, loaded through
``IMS_WORKER_PROVIDER_MODULES`` or the ``ims_worker.providers`` entry-point group (see ``registry``).
Imports point one way: this package uses ``worker.events`` and ``worker.settings``, never the reverse.
"""

from __future__ import annotations

from worker.providers.keys import business_keys
from worker.providers.parsing import detect_source, normalize
from worker.providers.registry import (
    ENTRY_POINT_GROUP,
    active,
    dedupe_ttl,
    get,
    load,
    providers,
    queue_for,
    register,
)
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "AuthSpec",
    "BusinessKey",
    "ProviderSpec",
    "active",
    "business_keys",
    "dedupe_ttl",
    "detect_source",
    "get",
    "load",
    "normalize",
    "providers",
    "queue_for",
    "register",
]
