"""Checks a command makes before it starts serving: handlers load, required settings, a free port.

Each raises ``ConfigurationError`` with the real cause, so ``ims-worker`` exits 2 with one clear message
instead of starting a process that would crash-loop (or, worse, acknowledge events nobody can handle).
"""

from __future__ import annotations

import contextlib
import errno
import socket

from worker.errors import ConfigurationError
from worker.registry import REGISTRY, discover
from worker.settings import Settings
from worker.settingserrors import missing

MNS_CREDENTIALS = ("mns_endpoint", "mns_access_key_id", "mns_access_key_secret")


def load_handlers(settings: Settings) -> list[str]:
    """Import built-in, configured and entry-point handler modules; raise with the module that failed."""
    try:
        return discover(settings.handler_modules)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"cannot load handlers: {exc}\n"
            "  (a module in IMS_WORKER_HANDLER_MODULES must be importable: installed, or on PYTHONPATH)"
        ) from exc


def handler_count() -> int:
    return len(REGISTRY.subscriptions)


def require_mns(settings: Settings, *, queues_given: bool = False) -> None:
    """Every MNS setting ``consume`` needs, all missing ones named at once."""
    fields = [*MNS_CREDENTIALS, *([] if queues_given else ["mns_queues"])]
    problem = missing(settings, fields, "by ims-worker consume")
    if problem is not None:
        raise problem


def require_free_port(host: str, port: int, what: str) -> None:
    """Fail now, with the address, when ``port`` is taken (uvicorn would exit and be restarted forever)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        # The same option uvicorn sets: a port in TIME_WAIT from our own previous run is not "busy".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigurationError(
                    f"{what}: port {port} on {host} is already in use (another process listens there); "
                    f"stop it or choose another port (IMS_WORKER_SHIM_PORT / --port)"
                ) from exc
            raise ConfigurationError(f"{what}: cannot bind {host}:{port}: {exc.strerror or exc}") from exc
