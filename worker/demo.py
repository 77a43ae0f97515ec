"""``ims-worker run --demo``: every documented sample event, delivered the way its provider delivers it.

The 29 IMS samples go onto the emulator's ``ice-callback-demo`` queue through the real aliyun-mns-sdk; the
webhook samples (production studio, recording, RTC, Tencent CSS) are POSTed to the shim, signed with the
demo keys. That is 43 events. The demo's handler plugin (``worker.demo_ledger``) records each event it
handles, and ``--exit-when-done`` waits for all of them: every sample has a distinct event type, so "all 43
types recorded since the demo started" is exactly "every seeded event was handled".
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import redis
import structlog

from worker.demo_ledger import handled, reset
from worker.embedded import DEMO_QUEUE
from worker.events import normalize
from worker.inject import post_webhook, send_to_mns
from worker.redisconn import sync_client
from worker.settings import Settings

log = structlog.get_logger(__name__)

# worker/samples/<dir> -> the source that sends such payloads.
SAMPLE_SOURCES: dict[str, str] = {
    "ims": "ims",
    "live-caster": "live.caster",
    "live-record": "live.record",
    "rtc": "rtc",
    "tencent-css": "tencent",
}
LEDGER_MODULE = "worker.demo_ledger"

# Webhook checks stay on in the demo: the requests are signed, and the shim verifies them.
DEMO_KEYS: dict[str, str] = {
    "IMS_WORKER_IMS_CALLBACK_KEY": "demo-ims-callback-key",
    "IMS_WORKER_LIVE_AUTH_KEY": "demo-live-auth-key",
    "IMS_WORKER_RTC_APP_KEY": "demo-rtc-app-key",
    "IMS_WORKER_TENCENT_CALLBACK_KEY": "demo-tencent-callback-key",
    "IMS_WORKER_CASTER_TOKEN": "demo-caster-token",
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
    for variable, value in DEMO_KEYS.items():
        field = variable.removeprefix("IMS_WORKER_").lower()
        if field not in settings.model_fields_set:
            env[variable] = value
    return env


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
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = sync_client(self.settings.effective_redis_url)
        return self._client

    def seed(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Clear the ledger, put the IMS samples on the queue and POST the webhook samples to the shim."""
        reset(self.client)
        ims = [s for s in self.samples if s.source == "ims"]
        ids = send_to_mns(self.settings, DEMO_QUEUE, [s.body for s in ims])
        log.info("demo seeded mns queue", queue=DEMO_QUEUE, messages=len(ids))
        if not wait_for_http(f"{self.shim_url}/readyz", self.timeout, should_stop):
            raise DemoFailed(f"the shim at {self.shim_url} did not become ready within {self.timeout}s")
        for sample in self.samples:
            if sample.source == "ims":
                continue
            answer = post_webhook(self.settings, self.shim_url, sample.source, sample.body.encode())
            if answer.status != 200:
                raise DemoFailed(f"{sample.name}: the shim answered {answer.status} {answer.body}")
            log.info("demo posted webhook", sample=sample.name, url=answer.url, status=answer.status)

    def missing(self) -> dict[str, str]:
        """Expected event types not handled yet -> their sample."""
        seen = {str(entry.get("type")) for entry in handled(self.client).values()}
        return {t: name for t, name in sorted(self.expected.items()) if t not in seen}

    def wait_until_handled(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, str]:
        """Poll the ledger until every expected type is in it or the timeout passes; return the missing."""
        deadline = time.monotonic() + self.timeout
        missing = self.missing()
        while missing and time.monotonic() < deadline and not should_stop():
            time.sleep(0.25)
            missing = self.missing()
        return missing

    def report(self, missing: dict[str, str]) -> str:
        done = len(self.expected) - len(missing)
        if not missing:
            return f"demo: all {len(self.expected)} events handled"
        lines = [f"demo: {done} of {len(self.expected)} events handled; missing:"]
        lines += [f"  {event_type}  (from {sample})" for event_type, sample in missing.items()]
        return "\n".join(lines)

    def summary(self) -> str:
        """Handled events counted by source and transport, e.g. ``ims via mns: 29``."""
        counts = Counter(f"{e.get('source')} via {e.get('transport')}" for e in handled(self.client).values())
        return "\n".join(f"  {key}: {count}" for key, count in sorted(counts.items()))
