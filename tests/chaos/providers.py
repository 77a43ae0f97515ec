"""Providers sending webhooks the way their documentation says they do, through two shim replicas.

* IMS ("Callback events overview", "Callback judgment and retry"): a callback counts as delivered only on an
  HTTP 200 within 3 s; otherwise it is tried twice more, 1 s apart, and then **discarded**.
* RTC event subscription (CreateEventSub, "Callback retry"): retried after 1, 2, 5, 10, 60, 120 and 300 s.

Each try goes to the next replica in turn; a refused connection goes to the other replica at once (what a load
balancer does with a backend that is down), within the same try. Every event is sent once and retried only
by its policy: an event whose every try failed is "given up", as the provider would. What was answered 200
becomes the ledger's expectations (``Sent``); a try that failed may still have landed (``Sent.allow``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.chaos.ledger import Sent
from tests.chaos.payloads import id_choices, unique_payload
from worker.shim import ENDPOINTS, sign_request


@dataclass(frozen=True)
class Policy:
    name: str
    timeout: float  # an answer later than this is a failed try
    pauses: tuple[float, ...]  # seconds before each retry; len + 1 tries


IMS = Policy("ims", timeout=3.0, pauses=(1.0, 1.0))
RTC = Policy("rtc", timeout=3.0, pauses=(1.0, 2.0, 5.0, 10.0, 60.0, 120.0, 300.0))
POLICIES = {"ims": IMS, "rtc": RTC}
SEQ_BASE = 5_000_000  # never shared with the other generators' sequence numbers


@dataclass
class Delivery:
    seq: int
    source: str
    tries: list[tuple[float, float, int | None]] = field(default_factory=list)  # (t0, t1, status)
    delivered: bool = False
    spooled: bool = False


@dataclass
class ProviderStats:
    counts: Counter[str] = field(default_factory=Counter)
    given_up: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class ProviderSimulator:
    def __init__(
        self,
        replicas: list[str],
        keys: dict[str, str],
        public_url: str,
        *,
        sent: Sent,
        lock: threading.Lock,
        rate: float,
        seconds: float,
        seed: int,
        rtc_share: float = 0.2,
    ) -> None:
        self.replicas = replicas
        self.keys = keys
        self.public_url = public_url
        self.sent, self.lock = sent, lock
        self.rate, self.seconds = rate, seconds
        self.rng = random.Random(seed)
        self.rtc_share = rtc_share
        self.stats = ProviderStats()
        self.deliveries: list[Delivery] = []
        self._stats_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="provider")
        self._thread = threading.Thread(target=self._produce, name="provider-producer", daemon=True)
        self._turn = 0
        # One client for every sender thread (making one per event costs the machine more than the shims do);
        # a new connection per callback, as a provider's callback sender opens one.
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=0)
        self._client = httpx.Client(limits=limits, timeout=IMS.timeout)
        self._healthy: set[str] = set(replicas)
        self._stopped = threading.Event()
        self._health = threading.Thread(target=self._health_checks, name="provider-lb-health", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._health.start()
        self._thread.start()

    def join(self) -> None:
        """Until every event is delivered or given up (the RTC policy may take its full 8 minutes)."""
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._stopped.set()
        self._health.join(timeout=5)
        self._client.close()

    def _produce(self) -> None:
        try:
            started = time.monotonic()
            for n in range(int(self.rate * self.seconds)):
                time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
                source = "rtc" if self.rng.random() < self.rtc_share else "ims"
                delivery = Delivery(SEQ_BASE + n, source)
                self.deliveries.append(delivery)
                self._pool.submit(self._deliver, delivery)
        except BaseException as exc:  # reported by the scenario
            self.error = exc

    def _deliver(self, delivery: Delivery) -> None:
        try:
            policy = POLICIES[delivery.source]
            payload = unique_payload(delivery.source, delivery.seq)
            body = json.dumps(payload).encode()
            for attempt in range(len(policy.pauses) + 1):
                if attempt:
                    time.sleep(policy.pauses[attempt - 1])
                answer = self._try(self._client, delivery, body)
                if answer is not None and answer.status_code == 200:
                    delivery.delivered = True
                    delivery.spooled = bool(_json(answer).get("spooled"))
                    break
            self._settle(delivery, payload)
        except Exception as exc:  # a bug of the simulator: reported, never hidden
            with self._stats_lock:
                self.stats.problems.append(f"event {delivery.seq}: {type(exc).__name__}: {exc}")

    def _order(self) -> list[str]:
        """The load balancer: round robin over the replicas whose ``/readyz`` passed, the others last."""
        with self._stats_lock:
            first = self._turn % len(self.replicas)
            self._turn += 1
        turn = self.replicas[first:] + self.replicas[:first]
        return [r for r in turn if r in self._healthy] + [r for r in turn if r not in self._healthy]

    def _health_checks(self) -> None:
        """Every 0.5 s, as a load balancer's health check: a replica answering ``/readyz`` 200 is in."""
        with httpx.Client(timeout=1.0) as client:
            while not self._stopped.is_set():
                for replica in self.replicas:
                    try:
                        ok = client.get(replica + "/readyz").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        self._healthy.add(replica)
                    elif replica in self._healthy:
                        self._healthy.discard(replica)
                        self._count("replica_taken_out")
                self._stopped.wait(0.5)

    def _try(self, client: httpx.Client, delivery: Delivery, body: bytes) -> httpx.Response | None:
        policy = POLICIES[delivery.source]
        started = time.time()
        answer = None
        for replica in self._order():  # a refused connection goes to the next replica, in the same try
            key = self.keys[delivery.source]
            signed = sign_request(delivery.source, body, key=key, public_url=self.public_url)
            remaining = policy.timeout - (time.time() - started)
            if remaining <= 0:
                break
            try:
                answer = client.post(
                    replica + ENDPOINTS[delivery.source],
                    content=signed.body,
                    headers=signed.headers,
                    params=signed.query,
                    timeout=remaining,
                )
                break
            except httpx.ConnectError:
                self._count("connections_refused")
                continue
            except httpx.HTTPError:
                self._count("timeouts")
                break  # a try that got no answer within its time: failed
        status = answer.status_code if answer is not None else None
        delivery.tries.append((started, time.time(), status))
        self._count(f"answers_{status}")
        return answer

    def _settle(self, delivery: Delivery, payload: dict[str, object]) -> None:
        label = f"{delivery.source} event {delivery.seq}"
        with self.lock:
            for t0, t1, status in delivery.tries:
                choices = id_choices(delivery.source, payload, [t0, t1])
                for choice in choices:
                    if status == 200:
                        self.sent.expect(choice)
                    else:  # a try whose answer was lost or refused may have been enqueued
                        self.sent.allow(choice)
        self._count("delivered" if delivery.delivered else "given_up")
        if delivery.spooled:
            self._count("delivered_from_spool")
        if not delivery.delivered:
            with self._stats_lock:
                self.stats.given_up.append(f"{label}: tries {[s for _, _, s in delivery.tries]}")

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats.counts[key] += 1


def _json(answer: httpx.Response) -> dict[str, object]:
    try:
        value = answer.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
