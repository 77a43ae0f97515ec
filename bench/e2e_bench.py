"""3. End-to-end latency at a light steady load: MNS SendMessage (and webhook POST) -> start of the handler.

The whole pipeline runs as in production: emulator, ``ims-worker consume`` (default long poll), ``ims-worker
shim``, ``celery -A worker.app worker``, with ``bench.plugin`` loaded as a handler module. Each IMS event
carries its send time (``time.time()`` just before the SendMessage or POST) in ``UserData``; the handler
records ``now - sent`` as it starts. The two entries are measured one after the other, each at the set rate.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from mns.queue import Message

from bench.config import BenchConfig
from bench.mnsutil import Emulator, start_emulator
from bench.payloads import ims_samples, uniquify, with_sent_at
from bench.plugin import COUNTER_KEY, LATENCY_KEY
from bench.procs import Stack, tool, wait_for_port
from bench.stats import Benchmark, Metrics, Row, check, fmt, percentile
from worker.devtools.embedded import free_port
from worker.shim.signing import sign_request

PUBLIC_URL = "http://bench.invalid"
IMS_KEY = "bench-ims-callback-key"
QUEUE = "ice-callback-bench"


def _body(index: int, tag: str) -> bytes:
    samples = ims_samples()
    payload = with_sent_at(uniquify(samples[index % len(samples)], f"{tag}-{index}"), time.time())
    return json.dumps(payload, separators=(",", ":")).encode()


def _paced(rate: float, seconds: float, send: Callable[[int], None]) -> int:
    """Call ``send(i)`` on a fixed schedule (not back to back): i / rate seconds after the start."""
    count = max(1, int(rate * seconds))
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)
    return count


def _send_mns(emulator: Emulator, rate: float, seconds: float, tag: str) -> int:
    queue = emulator.queue(QUEUE)
    return _paced(rate, seconds, lambda i: queue.send_message(Message(_body(i, tag).decode())))


def _send_http(port: int, rate: float, seconds: float, tag: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(i: int) -> None:
        signed = sign_request("ims", _body(i, tag), key=IMS_KEY, public_url=PUBLIC_URL)
        conn.request("POST", "/webhooks/ims", body=signed.body, headers=signed.headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"shim answered {response.status} to an e2e POST")

    try:
        return _paced(rate, seconds, send)
    finally:
        conn.close()


def _collect(client: redis.Redis, expected: int, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and int(client.llen(LATENCY_KEY)) < expected:
        time.sleep(0.05)
    raw: list[bytes] = client.lrange(LATENCY_KEY, 0, -1)  # type: ignore[assignment]
    entries = [item.decode().split() for item in raw]
    if len(entries) < expected:
        raise RuntimeError(f"only {len(entries)} of {expected} events reached the handler")
    return [float(seconds) * 1000 for _, seconds in entries]


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    metrics: Metrics = {}
    with Stack(config.workdir / f"e2e-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        emulator = start_emulator(stack)
        emulator.create_queue(QUEUE, visibility_timeout=30)
        shim_port = free_port()
        env = {
            **emulator.env(QUEUE),
            "IMS_WORKER_BROKER_URL": redis_url,
            "IMS_WORKER_HANDLER_MODULES": "bench.plugin",
            "BENCH_REDIS_URL": redis_url,
            "IMS_WORKER_SHIM_PUBLIC_URL": PUBLIC_URL,
            "IMS_WORKER_IMS_CALLBACK_KEY": IMS_KEY,
            "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
            "IMS_WORKER_LOG_FORMAT": "json",
        }
        stack.start("consumer", [tool("ims-worker"), "consume"], env=env)
        shim = stack.start("shim", [tool("ims-worker"), "shim", "--port", str(shim_port)], env=env)
        stack.start(
            "worker",
            [
                tool("celery"),
                "-A",
                "worker.app",
                "worker",
                "-P",
                config.pool,
                "-c",
                str(config.concurrency),
                "--loglevel",
                "INFO",
            ],
            env=env,
        )
        wait_for_port(shim_port, proc=shim)
        client = redis.Redis.from_url(redis_url)
        tag = uuid.uuid4().hex[:8]
        # Warm-up: every process has started and handled one event of each entry before the clock runs.
        _send_mns(emulator, 10, 0.5, f"warm-mns-{tag}")
        _send_http(shim_port, 10, 0.5, f"warm-http-{tag}")
        _collect(client, 10, timeout=60)
        for entry in ("mns", "http"):
            client.delete(LATENCY_KEY, COUNTER_KEY)
            if entry == "mns":
                sent = _send_mns(emulator, config.e2e_rate, config.e2e_seconds, f"{entry}-{tag}")
            else:
                sent = _send_http(shim_port, config.e2e_rate, config.e2e_seconds, f"{entry}-{tag}")
            latencies = _collect(client, sent, timeout=30)
            metrics[f"{entry}_p50_ms"] = percentile(latencies, 50)
            metrics[f"{entry}_p99_ms"] = percentile(latencies, 99)
            metrics[f"{entry}_max_ms"] = max(latencies)
            metrics[f"{entry}_events"] = float(len(latencies))
        client.close()
    facts = {
        "rate": config.e2e_rate,
        "seconds": config.e2e_seconds,
        "pool": config.pool,
        "concurrency": config.concurrency,
    }
    return metrics, facts


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    out = []
    for entry, label in (("mns", "MNS SendMessage"), ("http", "webhook POST")):
        out.append(
            Row(
                "e2e",
                f"{label} -> handler, p50 / p99 / max ms at {facts['rate']:.0f}/s",
                f"{fmt(m[f'{entry}_p50_ms'], 1)} / {fmt(m[f'{entry}_p99_ms'], 1)} / "
                f"{fmt(m[f'{entry}_max_ms'], 1)}",
                target="p99 <= 250",
                met=check(m[f"{entry}_p99_ms"], 250, at_least=False),
            )
        )
    return out


BENCHMARK = Benchmark("e2e", "End-to-end latency at light load", run, rows)
