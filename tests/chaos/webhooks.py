"""Providers calling the shim: signed webhooks of every provider at once, retried the way providers retry.

A producer thread makes jobs at a steady rate for a bounded time; sender threads POST them. A job is retried
(with a fresh signature, as providers re-sign each try) while the answer is a 5xx or no answer at all (shim
killed, Redis down); any other answer is final and must be the expected one: 200 with the event ids for good
events, the exact 4xx and error code for bad ones, and 200 with ``"dead_lettered": true`` for a request that
passed its provider's check but cannot be parsed or validated (its body must then be in the dead-letter store
exactly once, reason ``invalid_request``). Some jobs are POSTed several times, some of those at the
same moment: the shim must answer the repeats as duplicates and enqueue the event once.

What was accepted becomes the scenario's expectations (``Sent``); every signature value computed (good or
forged) is kept for the secret scan of the logs.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.ledger import Sent
from tests.chaos.payloads import id_choices, invalid_for, oversize, unique_payload
from worker.shim import ENDPOINTS, sign_request
from worker.shim.rejects import REASON as DEAD_LETTER_REASON

SEQ_BASE = 1_000_000  # webhook payloads never share a sequence number with MNS bodies
SOURCE_WEIGHTS = {"ims": 4, "live.record": 2, "live.caster": 2, "rtc": 1, "tencent": 2}
RETRY_PAUSE = (0.1, 0.4)
# Bad requests and the answer each must get (status, error code). Caster has no timestamp: "stale" is forged.
# ``DEAD_LETTERED``: authenticated, then failed to parse or validate: answered 200 and kept as a dead letter.
DEAD_LETTERED = (200, "dead_lettered")
NEGATIVE = {
    "forged": (401, "bad_signature"),
    "stale": (401, "stale"),
    "missing": (401, "missing"),
    "invalid": DEAD_LETTERED,
    "malformed": DEAD_LETTERED,
    "oversize": (413, "payload_too_large"),
    "content-type": (415, "unsupported_media_type"),
}


@dataclass
class Job:
    seq: int
    source: str
    kind: str  # valid | one of NEGATIVE
    payload: dict[str, Any]
    body: bytes
    poison: str | None = None
    repeats: int = 1
    concurrent: bool = False
    content_type: str = "application/json"


@dataclass
class Attempt:
    t0: float
    t1: float
    status: int | None
    answer: dict[str, Any] | None = None
    body: bytes = b""  # as POSTed (Tencent's signature is inside the body, so each try's differs)


@dataclass
class WebhookStats:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    signatures: set[str] = field(default_factory=set)


class WebhookTraffic:
    def __init__(
        self,
        base_url: str,
        keys: dict[str, str],
        *,
        seed: int,
        sent: Sent,
        lock: threading.Lock,
        rate: float,
        seconds: float,
        max_body: int,
        window: int,
        negative_rate: float = 0.12,
        duplicate_rate: float = 0.10,
        poison_rate: float = 0.03,
        senders: int = 3,
        give_up_after: float = 120.0,
    ) -> None:
        self.base_url = base_url
        self.keys = keys
        self.rng = random.Random(seed)
        self.sent, self.lock = sent, lock
        self.rate, self.seconds = rate, seconds
        self.max_body, self.window = max_body, window
        self.negative_rate, self.duplicate_rate, self.poison_rate = negative_rate, duplicate_rate, poison_rate
        self.give_up_after = give_up_after
        self.stats = WebhookStats()
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._stats_lock = threading.Lock()
        self._threads = [threading.Thread(target=self._produce, name="webhook-producer", daemon=True)]
        self._threads += [
            threading.Thread(target=self._send_loop, name=f"webhook-sender-{i}", daemon=True)
            for i in range(senders)
        ]
        self._senders = senders
        self.error: BaseException | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats.counts[key] += n

    def _problem(self, text: str) -> None:
        with self._stats_lock:
            self.stats.problems.append(text)

    # --- producing -----------------------------------------------------------------------------------------
    def _produce(self) -> None:
        try:
            seq, carry, tick = SEQ_BASE, 0.0, 0.1
            stop_at = time.monotonic() + self.seconds
            while time.monotonic() < stop_at:
                carry += self.rate * tick
                while carry >= 1:
                    carry -= 1
                    self._jobs.put(self._job(seq))
                    seq += 1
                time.sleep(tick)
        except BaseException as exc:
            self.error = exc
        finally:
            for _ in range(self._senders):
                self._jobs.put(None)

    def _job(self, seq: int) -> Job:
        rng = self.rng
        source = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
        if rng.random() < self.negative_rate:
            return self._negative(seq, source, rng.choice(list(NEGATIVE)))
        poison = rng.choice(["retry", "permanent"]) if rng.random() < self.poison_rate else None
        payload = unique_payload(source, seq, poison=poison)
        job = Job(seq, source, "valid", payload, json.dumps(payload).encode(), poison=poison)
        if rng.random() < self.duplicate_rate:
            job.repeats = rng.randint(2, 4)
            job.concurrent = rng.random() < 0.5
        return job

    def _negative(self, seq: int, source: str, kind: str) -> Job:
        payload = unique_payload(source, seq)
        body = json.dumps(payload).encode()
        job = Job(seq, source, kind, payload, body)
        if kind == "invalid":
            broken = invalid_for(source, payload)
            if broken is None:  # this provider's payloads have no required field: break the IMS one
                job.source, broken = "ims", invalid_for("ims", unique_payload("ims", seq))
            assert broken is not None
            job.payload, job.body = broken, json.dumps(broken).encode()
        elif kind == "malformed":
            job.body = body[: len(body) // 2]
        elif kind == "oversize":
            job.body = json.dumps(oversize(payload, self.max_body)).encode()
        elif kind == "content-type":
            job.content_type = "text/plain"
        elif kind == "stale" and source == "live.caster":
            job.kind = "forged"  # the caster's token carries no time
        return job

    # --- sending -------------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                try:
                    self._run(client, job)
                except Exception as exc:  # a bug in the generator itself: report it, keep sending
                    self._problem(f"job {job.seq} ({job.source} {job.kind}): {type(exc).__name__}: {exc}")

    def _run(self, client: httpx.Client, job: Job) -> None:
        if job.repeats > 1 and job.concurrent:
            results: list[list[Attempt]] = []
            threads = [
                threading.Thread(target=lambda: results.append(self._deliver_fresh(job)), daemon=True)
                for _ in range(job.repeats)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            results = [self._deliver(client, job) for _ in range(job.repeats)]
        self._count(f"jobs_{job.kind}")
        if job.repeats > 1:
            self._count("repeated_jobs")
            self._count("repeat_posts", job.repeats - 1)
        for attempts in results:
            self._settle(job, attempts)

    def _deliver_fresh(self, job: Job) -> list[Attempt]:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            return self._deliver(client, job)

    def _deliver(self, client: httpx.Client, job: Job) -> list[Attempt]:
        attempts: list[Attempt] = []
        give_up = time.monotonic() + self.give_up_after
        rng = random.Random(job.seq)
        while True:
            attempt = self._attempt(client, job)
            attempts.append(attempt)
            if attempt.status is not None and attempt.status < 500:
                return attempts
            self._count("retried_posts")
            if attempt.status is not None:
                self._count(f"answers_{attempt.status}")
            if time.monotonic() > give_up:
                return attempts
            time.sleep(rng.uniform(*RETRY_PAUSE))

    def _attempt(self, client: httpx.Client, job: Job) -> Attempt:
        key: str | None = self.keys[job.source]
        now = None
        if job.kind == "forged":
            key = f"forged-{key}"
        elif job.kind == "missing":
            key = None
        elif job.kind == "stale":
            now = time.time() - self.window - 700  # also past Tencent's 10-minute expiry
        signed = sign_request(
            job.source, job.body, key=key, public_url=self.base_url, now=now, content_type=job.content_type
        )
        self._remember_signatures(job.source, signed.headers, signed.query, signed.body)
        t0 = time.time()
        self._count("posts")
        try:
            response = client.post(
                ENDPOINTS[job.source], content=signed.body, headers=signed.headers, params=signed.query
            )
        except httpx.HTTPError:
            return Attempt(t0, time.time(), None, body=signed.body)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else None
        return Attempt(t0, time.time(), response.status_code, answer, signed.body)

    def _remember_signatures(
        self, source: str, headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> None:
        found = [v for k, v in headers.items() if k.lower().endswith("signature")] + list(query.values())
        if source == "tencent":
            try:
                sign = json.loads(body).get("sign")
            except (ValueError, AttributeError):
                sign = None
            if isinstance(sign, str):
                found.append(sign)
        with self._stats_lock:
            self.stats.signatures.update(found)

    def _expect_dead_letter(self, attempts: list[Attempt]) -> None:
        """The answered body is kept exactly once; a try whose answer was lost may have been kept too (only
        a different body, i.e. Tencent's re-signed one, can make a second entry)."""
        with self.lock:
            for lost in attempts[:-1]:
                if lost.status is None or lost.status == 503:
                    self.sent.allow_dead_body(lost.body.decode(), DEAD_LETTER_REASON)
            self.sent.expect_dead_body(attempts[-1].body.decode(), DEAD_LETTER_REASON)

    # --- settling ------------------------------------------------------------------------------------------
    def _settle(self, job: Job, attempts: list[Attempt]) -> None:
        final = attempts[-1]
        label = f"job {job.seq} ({job.source} {job.kind})"
        if final.status is None or final.status >= 500:
            self._problem(f"{label}: no final answer after {len(attempts)} tries (last {final.status})")
            return
        if job.kind != "valid":
            self._count(f"rejected_{final.status}")
            expected = NEGATIVE[job.kind]
            if job.source == "live.caster" and job.kind == "forged":
                expected = (401, "bad_token")  # the caster's credential is a token, not a signature
            if job.source == "tencent" and job.kind == "malformed":
                # Tencent signs inside the JSON body: a body that is no JSON cannot be authenticated.
                expected = (400, "invalid_json")
            answer = final.answer or {}
            code = "dead_lettered" if answer.get("dead_lettered") is True else answer.get("error")
            got = (final.status, code)
            if got != expected:
                self._problem(f"{label}: answered {got}, expected {expected}")
            elif expected == DEAD_LETTERED:
                self._expect_dead_letter(attempts)
            return
        if final.status != 200:
            self._problem(f"{label}: answered {final.status} {final.answer}")
            return
        self._count("accepted")
        choices = id_choices(job.source, job.payload, [final.t0, final.t1])
        answered = [e for e in (final.answer or {}).get("events", [])] if job.source != "tencent" else []
        self._count("duplicate_answers", sum(1 for e in answered if e.get("duplicate")))
        with self.lock:
            for index, choice in enumerate(choices):
                if answered:
                    given = answered[index]["id"]
                    if given not in choice:
                        self._problem(f"{label}: the shim answered id {given}, normalize gives {choice}")
                    self.sent.expect({given: choice.get(given, answered[index]["type"])}, job.poison)
                else:
                    self.sent.expect(choice, job.poison)
            for lost in attempts[:-1]:  # tries whose answer never came may have been enqueued anyway
                if lost.status is None or lost.status == 503:
                    for choice in id_choices(job.source, job.payload, [lost.t0, lost.t1]):
                        self.sent.allow(choice, job.poison)
