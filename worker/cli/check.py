"""``ims-worker check``: everything a start would need, checked without starting anything.

Settings (all problems at once), every handler module and entry point, the broker, Redis and (when an endpoint
is configured) each MNS queue; prints each subscription. Exit 0 only when all passed, 1 on any problem
(2 for invalid settings, like every command).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from worker.cli.handlers import format_subscription, profile_warnings, subscription_rows
from worker.cli.preflight import load_handlers
from worker.errors import ConfigurationError
from worker.execution.registry import REGISTRY
from worker.providers.registry import load as load_providers
from worker.redact import redact_text, redact_url
from worker.redisconn import sync_client
from worker.settings import Settings, load_settings

CONNECT_TIMEOUT_SECONDS = 5.0


def _ping_redis(url: str, settings: Settings) -> str:
    client = sync_client(url, settings)  # TLS and Sentinel settings apply, as in the worker
    try:
        client.ping()
        return "answers PING"
    finally:
        client.close()


def _connect_broker(url: str) -> str:
    from kombu import Connection  # type: ignore[attr-defined]  # noqa: PLC0415 - non-Redis broker only

    with Connection(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_SECONDS)
    return "connected"


def _mns_credentials(settings: Settings) -> str:
    """Which source signs (never a secret); fails when no source has credentials."""
    from worker.mns.credentials import credentials_for  # noqa: PLC0415 - only when MNS is configured

    snapshot = credentials_for(settings).current()
    kind = "temporary (STS token)" if snapshot.temporary else "long-lived AccessKey"
    if snapshot.expiration is not None:
        kind += f", expires {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(snapshot.expiration))}"
    return f"{snapshot.source}, {kind}"


def _mns_queue(settings: Settings, name: str) -> str:
    """GetQueueAttributes (harmless: reads, changes nothing); a refusal as one line saying what to do."""
    from mns.mns_exception import MNSExceptionBase  # noqa: PLC0415

    from worker.devtools.inject import close_queue  # noqa: PLC0415 - the SDK only when MNS is configured
    from worker.mns.client import open_queue  # noqa: PLC0415
    from worker.mns.explain import explain_for  # noqa: PLC0415

    queue = open_queue(settings, name)
    try:
        attributes = queue.get_attributes()
    except MNSExceptionBase as exc:
        raise ConfigurationError(
            explain_for(settings, exc, queue=name, operation="GetQueueAttributes")
        ) from exc
    finally:
        close_queue(queue)
    return f"exists ({attributes.active_messages} messages waiting)"


class Checklist:
    def __init__(self) -> None:
        self.failed = 0

    def run(self, what: str, check: Callable[[], str]) -> None:
        try:
            detail = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a check is reported, not raised
            self.failed += 1
            message = str(exc) or type(exc).__name__
            if isinstance(getattr(exc, "message", None), str):  # the MNS SDK's errors: code and message
                message = f"{getattr(exc, 'type', type(exc).__name__)}: {getattr(exc, 'message', '')}"
            print(f"FAIL  {what}: {redact_text(str(message))}", flush=True)
        else:
            print(f"ok    {what}: {detail}", flush=True)


def _check(args: argparse.Namespace) -> int:
    settings = load_settings()  # invalid settings: exit 2 with every problem listed (worker.cli.main)
    print("ok    settings", flush=True)
    checks = Checklist()

    def handlers() -> str:
        modules = load_handlers(settings)
        return f"{len(modules)} modules, {len(REGISTRY.subscriptions)} subscriptions"

    checks.run("providers", lambda: "sources " + ", ".join(load_providers(settings)))
    checks.run("handlers", handlers)
    for row in subscription_rows(REGISTRY.subscriptions):
        print("        " + format_subscription(row))
    for warning in profile_warnings(settings, REGISTRY.subscriptions):
        print(f"warn  profile {settings.worker_profile}: {warning}", flush=True)
    broker = redact_url(settings.broker_url)
    if settings.broker_is_redis:
        checks.run(f"broker {broker}", lambda: _ping_redis(settings.broker_url, settings))
    else:
        checks.run(f"broker {broker}", lambda: _connect_broker(settings.broker_url))
    if settings.effective_redis_url != settings.broker_url or not settings.broker_is_redis:
        url = settings.effective_redis_url
        checks.run(f"redis {redact_url(url)}", lambda: _ping_redis(url, settings))
    serves = _check_shim(settings, checks)
    if settings.mns_endpoint:
        if not settings.mns_queues:
            checks.run("mns", _no_queues)
        checks.run("mns credentials", lambda: _mns_credentials(settings))
        for name in settings.mns_queues:
            checks.run(f"mns queue {name} at {settings.mns_endpoint}", lambda n=name: _mns_queue(settings, n))  # type: ignore[misc]
    else:
        print("skip  mns: IMS_WORKER_MNS_ENDPOINT is not set", flush=True)
    receives = serves or bool(settings.mns_endpoint and settings.mns_queues)
    if not receives:
        print(
            "warn  inputs: this configuration receives nothing: no MNS queue (IMS_WORKER_MNS_ENDPOINT, "
            "IMS_WORKER_MNS_QUEUES) and no webhook endpoint armed (a provider key); fine for a host that "
            "only runs Celery workers",
            flush=True,
        )
    if checks.failed:
        print(f"{checks.failed} check(s) failed", flush=True)
    else:
        print("all checks passed" + ("" if receives else ", but nothing would be received"), flush=True)
    return 1 if checks.failed else 0


def _check_shim(settings: Settings, checks: Checklist) -> bool:
    """Whether the shim would serve an endpoint."""
    from worker.shim.arming import NothingArmed  # noqa: PLC0415 - the shim's rules, only here
    from worker.shim.arming import check as check_arming  # noqa: PLC0415

    try:
        arming = check_arming(settings)
    except NothingArmed as exc:
        print(f"skip  shim: {exc}", flush=True)
        return False
    except ConfigurationError as exc:
        message = str(exc)
        checks.run("shim keys", lambda: _raise(message))
        return False
    served = [*arming.armed, *(f"{name} (unsigned)" for name in arming.unsigned)]
    checks.run("shim keys", lambda: "endpoints served: " + ", ".join(served))
    from worker.shim.spoolcheck import report  # noqa: PLC0415 - the shim's spool, only here

    checks.run("shim spool", lambda: report(settings))
    return True


def _raise(message: str) -> str:
    raise ConfigurationError(message)


def _no_queues() -> str:
    raise ConfigurationError("IMS_WORKER_MNS_ENDPOINT is set but IMS_WORKER_MNS_QUEUES is empty")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate settings, load every handler, reach broker, Redis and MNS; exit non-zero on a problem",
    )
    parser.set_defaults(func=_check)
