"""A configured port that another process holds: found before serving, reported in one line.

A server that finds its port taken only when it binds fails deep inside uvicorn, prometheus_client or
http.server, with a traceback; under a supervisor it is then restarted forever. Every process checks its
configured ports first and exits 2 (a configuration error: the supervisor does not restart it) with one line
that names the port and the setting that chose it.
"""

from __future__ import annotations

import contextlib
import errno
import socket

from worker.errors import ConfigurationError


class PortTaken(ConfigurationError):
    """The configured port is held by another process."""


def port_taken(host: str, port: int) -> bool:
    """True when binding ``host:port`` fails because another socket holds it (0: never)."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        # As uvicorn and http.server do: a port in TIME_WAIT from our own previous run is not "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise ConfigurationError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from exc
    return False


def taken_message(what: str, host: str, port: int, setting: str) -> str:
    return (
        f"{what}: port {port} on {host} is already in use by another process; "
        f"stop that process or choose another port with {setting}"
    )


def require_free_port(host: str, port: int, what: str, setting: str) -> None:
    """Raise ``PortTaken`` (one line: the port and ``setting``) when another process holds ``host:port``."""
    if port_taken(host, port):
        raise PortTaken(taken_message(what, host, port, setting))


def is_taken_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
