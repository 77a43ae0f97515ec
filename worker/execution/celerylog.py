"""Celery's and Flower's own output through ``worker.logging``: every line JSON (or console) and redacted.

- The worker: ``worker.app`` answers Celery's ``setup_logging`` signal with ``configure_logging``, which
  also stops Celery from redirecting stdout/stderr into its logger; ``celeryd_after_setup`` restores that
  redirection (a handler's ``print`` becomes a log line) and, when lines are JSON, turns the ASCII banner
  off (Celery prints it to the real stdout, outside any logger).
- Any ``celery`` command (worker, Flower, inspect) configures our logging as soon as ``worker.app`` is
  imported: the worker logs before ``setup_logging`` (``worker_init`` loads the handlers), and Flower sends
  no Celery signal at all (tornado installs its own root handler only when the root logger has none).
  Flower's own access log is already off (``tornado.access`` goes to a NullHandler).
- Flower refuses to start (exit 2, one line) when its basic auth (``FLOWER_BASIC_AUTH``, or ``--basic-auth``
  / ``--basic_auth`` on its command line, which wins over the variable) holds a password that is a placeholder
  (``ops:change-me`` as shipped in deploy/) or shorter than ``FLOWER_MIN_PASSWORD_LENGTH`` (``ops:a`` was
  served with); and when there is none while Flower listens beyond loopback (its default address is every
  interface): a missing secret must not leave the task history open to the network.
- The worker's shutdown notices (``worker: Warm shutdown (MainProcess)``) are written from signal handlers
  with ``os.write``, outside logging; in JSON mode they are written as JSON lines the same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import celery.apps.worker as celery_worker_app
import orjson
import structlog
from celery import signals

from worker.logging import configure_logging, use_json
from worker.settings import Settings
from worker.settings.placeholders import is_placeholder

log = structlog.get_logger(__name__)


def celery_command(argv: list[str] | None = None) -> str | None:
    """``worker``, ``flower``, ``inspect``... when this process is the ``celery`` command line, else None."""
    args = sys.argv if argv is None else argv
    program = Path(args[0]) if args else Path()
    # `celery ...`, or `python -m celery ...` (argv[0]: celery/__main__.py) as `ims-worker run` starts it
    if program.name != "celery" and not (program.name == "__main__.py" and program.parent.name == "celery"):
        return None
    return next((arg for arg in args[1:] if arg in _COMMANDS), "celery")


_COMMANDS = ("worker", "flower", "inspect", "beat", "events", "status", "control", "purge", "shell")


FLOWER_MIN_PASSWORD_LENGTH = 12


def check_flower_auth(value: str | None, address: str) -> None:
    """Exit 2 when Flower's basic auth is weak, or missing while Flower listens beyond loopback."""
    if value is None:
        if address not in LOOPBACK:
            log.error(
                "flower.auth.refused",
                detail=f"FLOWER_BASIC_AUTH is not set and Flower would listen on "
                f"{address or 'every interface'}: set user:password, or pass --address=127.0.0.1 for a local "
                "Flower",
            )
            raise SystemExit(2)
        return
    pairs = [pair for pair in value.split(",") if pair.strip()]
    passwords = [pair.split(":", 1)[1] if ":" in pair else "" for pair in pairs]
    weak = [p for p in passwords if len(p.strip()) < FLOWER_MIN_PASSWORD_LENGTH or is_placeholder(p)]
    if not pairs or weak:
        log.error(
            "flower.auth.refused",
            detail="Flower's basic auth has a password that is a placeholder (change-me...) or shorter than "
            f"{FLOWER_MIN_PASSWORD_LENGTH} characters: set user:password with a real password, or leave it "
            "out for a local Flower",
        )
        raise SystemExit(2)


def flower_auth(argv: list[str]) -> str | None:
    """Flower's basic auth: ``--basic-auth`` / ``--basic_auth`` on its command line (tornado's options, which
    override the environment), else ``FLOWER_BASIC_AUTH``."""
    for index, arg in enumerate(argv):
        for flag in ("--basic-auth", "--basic_auth"):
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
            if arg == flag and index + 1 < len(argv):
                return argv[index + 1]
    return os.environ.get("FLOWER_BASIC_AUTH")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def flower_address(argv: list[str]) -> str:
    """The address Flower will listen on: ``--address`` on its command line, else FLOWER_ADDRESS, else ''."""
    for index, arg in enumerate(argv):
        if arg.startswith("--address="):
            return arg.split("=", 1)[1]
        if arg == "--address" and index + 1 < len(argv):
            return argv[index + 1]
    return os.environ.get("FLOWER_ADDRESS", "")


def _json_say(process_name: str) -> Any:
    def say(msg: str, f: Any = None) -> None:
        line = {
            "event": msg.strip(),
            "level": "warning",
            "logger": "celery.apps.worker",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "process_name": process_name,
        }
        with contextlib.suppress(OSError):  # stderr gone: nothing else to do from a signal handler
            os.write(2, orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    return say


def install(settings: Settings) -> None:
    """Connect the receivers (idempotent: Celery keeps one connection per receiver)."""

    def after_setup(sender: Any = None, instance: Any = None, **_: Any) -> None:
        if instance is None:
            return
        if use_json(settings, sys.stdout):
            instance.quiet = True
        if getattr(instance, "redirect_stdouts", False):
            instance.app.log.redirect_stdouts(getattr(instance, "redirect_stdouts_level", "WARNING"))

    signals.celeryd_after_setup.connect(after_setup, weak=False, dispatch_uid="ims-worker-after-setup")
    command = celery_command()
    if command is None:
        return
    configure_logging(settings, process_name=command)
    if command == "flower":
        check_flower_auth(flower_auth(sys.argv), flower_address(sys.argv))
    if command == "worker" and use_json(settings, sys.stderr):
        celery_worker_app.safe_say = _json_say(command)
