"""Checks a command makes before it starts serving: handlers load, required settings, free ports.

Each raises ``ConfigurationError`` with the real cause, so ``ims-worker`` exits 2 with one clear message
instead of starting a process that would crash-loop (or, worse, acknowledge events nobody can handle).
"""

from __future__ import annotations

from worker import ports
from worker.errors import ConfigurationError
from worker.execution.registry import REGISTRY, HandlerImportError, discover
from worker.settings import Settings
from worker.settings.errors import missing

# Credentials are not required settings: without an AccessKey the default credentials chain is asked.
MNS_REQUIRED = ("mns_endpoint",)


def load_handlers(settings: Settings) -> list[str]:
    """Import built-in, configured and entry-point handler modules; raise with the module that failed."""
    try:
        return discover(settings.handler_modules)
    except HandlerImportError as exc:
        raise ConfigurationError(
            f"cannot load handlers: {exc}\n"
            "  (a module in IMS_WORKER_HANDLER_MODULES must be importable: installed, or on PYTHONPATH)"
        ) from exc
    except ConfigurationError as exc:  # the module imported; a registration in it is wrong
        raise ConfigurationError(f"cannot load handlers: {exc}") from exc


def handler_count() -> int:
    return len(REGISTRY.subscriptions)


def require_mns(settings: Settings, *, queues_given: bool = False) -> None:
    """Every MNS setting ``consume`` needs, all missing ones named at once. The AccessKey is not one of them
    (without it the default credentials chain signs), but half a pair or a placeholder secret is refused."""
    fields = [*MNS_REQUIRED, *([] if queues_given else ["mns_queues"])]
    if settings.mns_access_key_id or settings.mns_access_key_secret is not None:
        fields += ["mns_access_key_id", "mns_access_key_secret"]  # an explicit pair: both, and real
    problem = missing(settings, fields, "by ims-worker consume")
    if problem is not None:
        raise problem


def require_free_port(
    host: str, port: int, what: str, setting: str = "IMS_WORKER_SHIM_PORT / --port"
) -> None:
    """Fail now, naming the port and its setting, when ``port`` is taken (the server would exit with a
    traceback and be restarted forever)."""
    ports.require_free_port(host, port, what, setting)
