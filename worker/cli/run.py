"""``ims-worker run``: the consumer, the shim, a Celery worker (and Flower) as one supervised process tree.

With nothing configured it starts what is missing (``worker.devtools.embedded``): a private Redis under the
state
directory and the MNS emulator with an ``ice-callback-demo`` queue. ``--demo`` then delivers every sample
event the way its provider would; ``--exit-when-done`` exits 0 once all were handled, non-zero otherwise.
The children are the same commands as the Procfile's process types, started with this Python.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO, cast

import structlog

from worker.cli.preflight import load_handlers, require_free_port
from worker.devtools.demo import Demo, demo_environment, demo_ports
from worker.devtools.demorun import Announcer, DemoRunner
from worker.devtools.embedded import EmbeddedServices
from worker.devtools.runview import RunView, ViewStream, json_line, status_printer
from worker.devtools.supervisor import ChildSpec, Supervisor
from worker.logging import configure_logging
from worker.redact import redact_url
from worker.settings import Settings, load_settings
from worker.shim.arming import NothingArmed
from worker.shim.arming import check as check_arming

log = structlog.get_logger(__name__)

GRACE_MARGIN_SECONDS = 5.0
# Every ims-worker command, and the Celery worker when its handlers cannot load, exits 2 on a configuration
# error: restarting cannot fix that, so the supervisor stops everything instead of crash-looping.
FATAL_EXIT_CODES = frozenset({2})
FLOWER_PORT_SETTING = "IMS_WORKER_FLOWER_PORT / --flower-port"


def readable_view(settings: Settings) -> RunView | None:
    """On a terminal, unless a log format was asked for: one console view of every process."""
    if settings.log_format is not None or not sys.stdout.isatty():
        return None
    return RunView(level=settings.log_level, colors=True, width=len("consumer"))


def not_for_production(embedded: EmbeddedServices) -> str | None:
    started = [
        *(["an embedded Redis (data in " + str(embedded.redis.workdir) + ")"] if embedded.redis else []),
        *(["the bundled MNS emulator"] if embedded.emulator else []),
    ]
    if not started:
        return None
    return (
        f"*** ims-worker run is using {' and '.join(started)}: for trying it out, NOT for production "
        "(set IMS_WORKER_BROKER_URL and IMS_WORKER_MNS_ENDPOINT) ***"
    )


def grace_seconds(settings: Settings) -> float:
    """How long the children get after SIGTERM: longer than the consumer needs to finish its batch."""
    if settings.run_grace_seconds is not None:
        return settings.run_grace_seconds
    return settings.consumer_grace_seconds + GRACE_MARGIN_SECONDS


def child_commands(
    settings: Settings, *, flower: bool, shim: bool = True, python: str = sys.executable
) -> dict[str, list[str]]:
    """Process type -> argv. The same commands as the Procfile, with the interpreter we run under."""
    cli = [python, "-m", "worker.cli"]
    celery = [python, "-m", "celery", "-A", "worker.app"]
    # --quiet: no 60-line banner; what it says (queues, concurrency) is in the "ims-worker run" line.
    worker = [*celery, "--quiet", "worker", "-E", "--loglevel", settings.log_level.upper()]
    if settings.worker_concurrency:
        worker += ["--concurrency", str(settings.worker_concurrency)]
    commands = {"consumer": [*cli, "consume"]}
    if shim:
        commands["shim"] = [*cli, "shim", "--host", settings.shim_host, "--port", str(settings.shim_port)]
    commands["worker"] = worker
    if flower:
        commands["flower"] = [
            *celery,
            "flower",
            f"--address={settings.flower_host}",
            f"--port={settings.flower_port}",
        ]
    return commands


def serves_webhooks(settings: Settings) -> bool:
    """Whether any webhook endpoint is armed; a bad key stops ``run`` (exit 2) before any child starts."""
    try:
        check_arming(settings)
    except NothingArmed as exc:
        log.warning("run.shim.skipped", detail=str(exc))
        return False
    return True


def child_specs(
    settings: Settings, environ: dict[str, str], *, flower: bool, shim: bool = True
) -> list[ChildSpec]:
    specs = []
    for name, argv in child_commands(settings, flower=flower, shim=shim).items():
        env = dict(environ)
        if name == "flower" and settings.flower_basic_auth is not None:
            # Through the environment, not argv: command lines are visible to every user of the host.
            env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth.get_secret_value()
        specs.append(ChildSpec(name, argv, env=env))
    return specs


def json_lines_wanted(settings: Settings, view: RunView | None) -> bool:
    """No terminal view and no console format asked for: every line ``run`` writes is a JSON object."""
    return view is None and settings.log_format != "console"


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    view = readable_view(settings)
    if view is None:
        configure_logging(settings)
    else:  # the supervisor's own lines go through the view too: one format for every process
        as_json = settings.model_copy(update={"log_format": "json"})
        configure_logging(as_json, stream=cast(TextIO, ViewStream(view, "run", sys.stderr)))
    announcer = Announcer(json_lines=json_lines_wanted(settings, view))
    # Refuse to start rather than run inputs that acknowledge events beside a worker that cannot handle them.
    load_handlers(settings)
    with EmbeddedServices(settings, demo=args.demo) as embedded:
        overrides = dict(embedded.env)
        if args.demo:
            overrides.update(demo_environment(settings))
            overrides.update(demo_ports(settings))
        overrides["PYTHONUNBUFFERED"] = "1"  # children's lines reach the prefixed output as they happen
        if view is not None:
            overrides["IMS_WORKER_LOG_FORMAT"] = "json"  # parsed, counted and rendered by the view
        warning = not_for_production(embedded)
        if warning:
            announcer.say("run.embedded", warning, level="warning")
        os.environ.update(overrides)  # the children inherit it, and our own settings now see the same
        settings = load_settings()
        shim = serves_webhooks(settings)
        require_free_ports(settings, shim=shim, flower=args.flower)
        supervisor = Supervisor(
            child_specs(settings, dict(os.environ), flower=args.flower, shim=shim),
            grace_seconds=grace_seconds(settings),
            fatal_codes=FATAL_EXIT_CODES,
            render=view.render if view else (json_line if announcer.json_lines else None),
        )
        if view is not None:
            supervisor.on_tick = status_printer(view, supervisor.write_line)
        shim_url = f"http://{_connect_host(settings.shim_host)}:{settings.shim_port}"
        addresses = served_addresses(settings, shim=shim, flower=args.flower)
        log.info(
            "run.started",
            broker=redact_url(settings.broker_url),
            mns_endpoint=settings.mns_endpoint,
            queues=settings.mns_queues,
            **addresses,
            embedded=sorted(k for k in embedded.env if not k.endswith("SECRET")),
        )
        if args.demo:  # the ports were chosen free for this run: say where everything listens
            listening = {name: url for name, url in addresses.items() if url}
            text = "demo: " + ", ".join(f"{name.replace('_', ' ')} {url}" for name, url in listening.items())
            announcer.say("run.listening", text, fields=listening)
        runner = None
        if args.demo:
            demo = Demo(settings, shim_url=shim_url, timeout=args.timeout)
            runner = DemoRunner(demo, supervisor, exit_when_done=args.exit_when_done, announcer=announcer)
            runner.thread.start()
        code = supervisor.run()
        if runner is not None:
            runner.thread.join(timeout=5)
        if view is not None:
            print(view.stats.summary(), flush=True)
        if supervisor.fatal is not None:
            name, child_code = supervisor.fatal
            announcer.say(
                "run.fatal",
                f"ims-worker run: the {name} exited {child_code} (a configuration error, see its lines "
                "above); stopped everything instead of restarting it",
                level="error",
                fields={"child": name, "code": child_code},
            )
            return 2
        if runner is not None and args.exit_when_done:
            return runner.code or code
    return code


def require_free_ports(settings: Settings, *, shim: bool, flower: bool) -> None:
    """The ports only ``run`` chooses for its children (the consumer and the worker check their own)."""
    if shim:
        require_free_port(settings.shim_host, settings.shim_port, "ims-worker run: the shim")
    if flower:
        require_free_port(
            settings.flower_host, settings.flower_port, "ims-worker run: Flower", FLOWER_PORT_SETTING
        )


def served_addresses(settings: Settings, *, shim: bool, flower: bool) -> dict[str, str | None]:
    """Where each child listens: the shim, the consumer's and the worker's /metrics, Flower (None: not)."""

    def url(host: str, port: int, path: str = "") -> str | None:
        return f"http://{_connect_host(host)}:{port}{path}" if port else None

    return {
        "shim": url(settings.shim_host, settings.shim_port) if shim else None,
        "consumer_metrics": url(settings.consumer_metrics_host, settings.consumer_metrics_port, "/metrics"),
        "worker_metrics": url(settings.worker_metrics_host, settings.worker_metrics_port, "/metrics"),
        "flower": url(settings.flower_host, settings.flower_port) if flower else None,
    }


def _connect_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind  # noqa: S104 - comparing, not binding


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run consumer, shim and Celery worker (and Flower) under one supervisor",
        description="Start and supervise the MNS consumer, the webhook shim and a Celery worker; restart a "
        "child that dies (with backoff); stop all on SIGTERM/SIGINT. Without IMS_WORKER_BROKER_URL a private "
        "Redis is started; without IMS_WORKER_MNS_ENDPOINT the bundled MNS emulator.",
    )
    parser.add_argument("--flower", action="store_true", help="also run Flower (task events are on)")
    parser.add_argument("--flower-port", type=int, default=None, help="Flower port (IMS_WORKER_FLOWER_PORT)")
    parser.add_argument(
        "--demo", action="store_true", help="deliver every sample event (MNS and signed webhooks)"
    )
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="with --demo: exit 0 once every demo event was handled, 1 listing the missing ones on timeout",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds --exit-when-done waits (default 120)"
    )
    parser.set_defaults(func=_checked_run)


def _checked_run(args: argparse.Namespace) -> int:
    if args.exit_when_done and not args.demo:
        print("ims-worker run: --exit-when-done needs --demo", file=sys.stderr)
        return 2
    if args.flower_port is not None:
        os.environ["IMS_WORKER_FLOWER_PORT"] = str(args.flower_port)
    return _run(args)
