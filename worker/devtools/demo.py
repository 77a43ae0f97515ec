"""``ims-worker run --demo``: every documented sample event, delivered the way its provider delivers it.

The 29 IMS samples go onto the emulator's ``ice-callback-demo`` queue through the real aliyun-mns-sdk; the
webhook samples (production studio, recording, RTC, Tencent CSS) are POSTed to the shim, signed with the
demo keys. That is 43 events, each of a distinct event type.

"Handled" is read from Redis, not guessed: the demo's handler plugin (``worker.devtools.demo_ledger``)
records the id of each event it sees, and the event counts as handled once the task wrapper's done marker
exists for every handler subscribed to its type (built-in ones and ``IMS_WORKER_HANDLER_MODULES``
included). An event that was dead-lettered since the demo started is reported with the reason, without waiting
for the timeout.
"""

from __future__ import annotations

import secrets
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import redis
import structlog

from worker import keyspace
from worker.delivery.deadletter import DeadLetterFilter, DeadLetterStore
from worker.devtools.demo_record import handled, reset
from worker.devtools.embedded import DEMO_QUEUE, free_port
from worker.devtools.inject import post_webhook, send_to_mns
from worker.execution.registry import REGISTRY, discover
from worker.providers import normalize, providers
from worker.redisconn import store_client
from worker.settings import Settings

log = structlog.get_logger(__name__)

# worker/samples/<dir> -> the source that sends such payloads (from the provider definitions).
SAMPLE_SOURCES: dict[str, str] = {spec.samples: spec.name for spec in providers() if spec.samples}
LEDGER_MODULE = "worker.devtools.demo_ledger"


def demo_keys() -> dict[str, str]:
    """A fresh random key per built-in webhook provider: the demo's requests are signed and verified."""
    return {
        f"IMS_WORKER_{spec.auth.key_setting.upper()}": secrets.token_urlsafe(24)
        for spec in providers()
        if spec.samples and spec.auth.key_setting is not None
    }


@dataclass(frozen=True)
class Sample:
    name: str  # "<dir>/<file>", for messages
    source: str
    body: str
    types: tuple[str, ...]  # the event types it normalizes to (RTC: one per item of Contents)


class DemoFailed(Exception):
    """Raised when a demo delivery was refused (the message says which sample and why)."""


def load_samples() -> list[Sample]:
    """Every sample shipped in ``worker/samples``, with the event types it stands for."""
    root = resources.files("worker") / "samples"
    samples: list[Sample] = []
    for directory, source in SAMPLE_SOURCES.items():
        for entry in sorted((root / directory).iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".json"):
                continue
            body = entry.read_text(encoding="utf-8")
            types = tuple(event.type for event in normalize(source, body))
            samples.append(Sample(f"{directory}/{entry.name}", source, body, types))
    return samples


def expected_types(samples: list[Sample]) -> dict[str, str]:
    """Event type -> the sample that carries it."""
    return {event_type: sample.name for sample in samples for event_type in sample.types}


def demo_environment(settings: Settings) -> dict[str, str]:
    """Variables the demo adds for the children: its ledger plugin and demo webhook keys where none is set."""
    env = {"IMS_WORKER_HANDLER_MODULES": ",".join(dict.fromkeys([*settings.handler_modules, LEDGER_MODULE]))}
    for variable, value in demo_keys().items():
        field = variable.removeprefix("IMS_WORKER_").lower()
        if field not in settings.model_fields_set:
            env[variable] = value
    return env


# What the demo's children listen on. Fixed defaults (8080, 9101, 9102, 5555) are often taken on a developer's
# machine; the demo must not depend on them, so each one not set explicitly gets a free port.
DEMO_PORTS = ("shim_port", "consumer_metrics_port", "worker_metrics_port", "flower_port")


def demo_ports(settings: Settings) -> dict[str, str]:
    """A free port for every listening setting the user did not set (a setting given, even 0, is kept)."""
    return {
        f"IMS_WORKER_{field.upper()}": str(free_port())
        for field in DEMO_PORTS
        if field not in settings.model_fields_set
    }


def wait_for_http(url: str, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not should_stop():
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own shim's URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Demo:
    """Seeds the demo events, then (optionally) waits until every one was handled.

    ``settings`` must be the children's view (embedded endpoints and demo keys included).
    """

    def __init__(self, settings: Settings, *, shim_url: str, timeout: float = 120.0) -> None:
        self.settings = settings
        self.shim_url = shim_url.rstrip("/")
        self.timeout = timeout
        self.samples = load_samples()
        self.expected = expected_types(self.samples)
        self.started_at = datetime.now(UTC)
        self._client: redis.Redis | None = None
        self._handlers: dict[str, list[str]] = {}

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = store_client(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def handler_names(self, event_type: str) -> list[str]:
        """The handlers the Celery worker runs for ``event_type`` (same discovery, same settings)."""
        if not self._handlers:
            discover(self.settings.handler_modules)
            self._handlers = {t: [s.name for s in REGISTRY.handlers_for(t)] for t in self.expected}
        return self._handlers[event_type]

    def seed(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Clear the ledger, put the IMS samples on the queue and POST the webhook samples to the shim."""
        if DEMO_QUEUE not in self.settings.mns_queues:
            # Never seed someone's production queue: the demo has its own, which the consumer must read.
            raise DemoFailed(
                f"the demo seeds the MNS queue {DEMO_QUEUE!r}, which is not in IMS_WORKER_MNS_QUEUES: create "
                "it and add it there, or unset IMS_WORKER_MNS_ENDPOINT to use the bundled emulator"
            )
        self.started_at = datetime.now(UTC)
        reset(self.client)
        ims = [s for s in self.samples if s.source == "ims"]
        ids = send_to_mns(self.settings, DEMO_QUEUE, [s.body for s in ims])
        log.info("demo.mns_seeded", queue=DEMO_QUEUE, messages=len(ids))
        if not wait_for_http(f"{self.shim_url}/readyz", self.timeout, should_stop):
            raise DemoFailed(f"the shim at {self.shim_url} did not become ready within {self.timeout}s")
        for sample in self.samples:
            if sample.source == "ims":
                continue
            answer = post_webhook(self.settings, self.shim_url, sample.source, sample.body.encode())
            if answer.status != 200:
                raise DemoFailed(f"{sample.name}: the shim answered {answer.status} {answer.body}")
            log.debug("demo.webhook_posted", sample=sample.name, url=answer.url, status=answer.status)

    def outstanding(self) -> tuple[dict[str, str], dict[str, str]]:
        """(pending, failed): expected types not handled yet, and those dead-lettered; each -> why."""
        ids_by_type: dict[str, list[str]] = {}
        for event_id, entry in handled(self.client).items():
            ids_by_type.setdefault(str(entry.get("type")), []).append(event_id)
        store = DeadLetterStore(self.client)
        dead = {e.event_type: e for e in store.iter(DeadLetterFilter(since=self.started_at)) if e.event_type}
        pending: dict[str, str] = {}
        failed: dict[str, str] = {}
        for event_type, sample in sorted(self.expected.items()):
            if event_type in dead:
                letter = dead[event_type]
                failed[event_type] = f"dead-lettered ({letter.reason}: {letter.error}) [from {sample}]"
                continue
            ids = ids_by_type.get(event_type)
            if not ids:
                pending[event_type] = f"not handled [from {sample}]"
                continue
            names = self.handler_names(event_type)
            not_done = [n for n in names if not any(self.client.exists(keyspace.done(i, n)) for i in ids)]
            if not_done:
                pending[event_type] = f"handlers not done: {', '.join(not_done)} [from {sample}]"
        return pending, failed

    def wait_until_handled(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, str]:
        """Poll until each expected event is handled or dead-lettered, or the timeout; return the failures."""
        deadline = time.monotonic() + self.timeout
        pending, failed = self.outstanding()
        while pending and time.monotonic() < deadline and not should_stop():
            time.sleep(0.25)
            pending, failed = self.outstanding()
        return {**failed, **pending}

    def report(self, missing: dict[str, str]) -> str:
        done = len(self.expected) - len(missing)
        if not missing:
            return f"demo: all {len(self.expected)} events handled"
        lines = [f"demo: {done} of {len(self.expected)} events handled; not handled:"]
        lines += [f"  {event_type}: {why}" for event_type, why in sorted(missing.items())]
        return "\n".join(lines)

    def counts(self) -> dict[str, int]:
        """Handled events counted by source and transport, e.g. ``{"ims via mns": 29}``."""
        counts = Counter(f"{e.get('source')} via {e.get('transport')}" for e in handled(self.client).values())
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        return "\n".join(f"  {key}: {count}" for key, count in self.counts().items())
