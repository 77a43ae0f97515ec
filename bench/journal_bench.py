"""5. The journal's cost: consumer and shim with the journal on vs off (same run, interleaved), and the Redis
bytes one journaled event takes.

* consumer: ``ims-worker consume`` (1 process x 2 pollers) drains its own preloaded queue of unique IMS
  events, journal on, off, off, on (both meet the same minutes of a shared machine); msgs/s, CPU per message.
* shim: two ``ims-worker shim`` processes side by side, one with ``IMS_WORKER_JOURNAL_ENABLED=false``,
  measured in rotating wrk segments as in the shim benchmark; req/s and server CPU per request.
* Redis bytes: ``used_memory`` after publishing N unique IMS events (the 29 types in turn) with the journal
  off and on; then, journal on, the worker's steps for each (the real ledger scripts: a first-attempt begin,
  three handler successes, finish) with and without the payload kept for replay, the pipeline's own keys
  (queue, outbox, markers) deleted: the growth over N is what the journal keeps per event.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis

from bench import wrk
from bench.config import BenchConfig
from bench.consumer_bench import CELERY_QUEUE, _drain
from bench.mnsutil import Emulator, start_emulator
from bench.payloads import ims_messages
from bench.procs import Stack, tool, wait_for_port
from bench.shim_bench import CASTER_TOKEN, PUBLIC_URL, RTC_KEY, _segment, _Target
from bench.stats import Benchmark, Metrics, Row, check, fmt, ratio
from worker.delivery.publish import Publisher
from worker.devtools.embedded import free_port
from worker.events import Event
from worker.execution.ledger import HandlerLedger
from worker.journal.config import JournalConfig
from worker.journal.stats import attempt_stats
from worker.providers import normalize
from worker.settings import load_settings

HANDLERS = ("bench:a", "bench:b", "bench:c")


def _consumer(
    stack: Stack, emulator: Emulator, redis_url: str, count: int, journal: bool, timeout: float
) -> dict[str, float]:
    queue = f"ims-journal-{'on' if journal else 'off'}-{uuid.uuid4().hex[:6]}"
    emulator.create_queue(queue)
    emulator.preload(queue, ims_messages(count, queue))
    redis.Redis.from_url(redis_url).flushall()
    env = {
        **emulator.env(queue),
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_MNS_POLLERS_PER_QUEUE": "2",
        "IMS_WORKER_MNS_WAIT_SECONDS": "1",
        "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
        # Nothing drains the Celery queue here: the backpressure high-water mark must not pause the drain.
        "IMS_WORKER_CONSUMER_HIGH_WATER": str(count + 10_000),
        "IMS_WORKER_LOG_FORMAT": "json",
        "IMS_WORKER_JOURNAL_ENABLED": "true" if journal else "false",
    }
    service = stack.start(f"consumer-journal-{queue}", [tool("ims-worker"), "consume"], env=env)
    try:
        return _drain(
            emulator, stack.service("emulator"), redis_url, queue, [service], count, CELERY_QUEUE, timeout
        )
    finally:
        service.stop()


def _consumers(stack: Stack, redis_url: str, config: BenchConfig) -> Metrics:
    emulator = start_emulator(stack)
    count = max(100, config.consumer_messages // 2)
    sums = {True: [0.0, 0.0, 0.0], False: [0.0, 0.0, 0.0]}  # messages, seconds, cpu
    for journal in (True, False, False, True):
        result = _consumer(stack, emulator, redis_url, count, journal, config.drain_timeout_s)
        sums[journal][0] += count
        sums[journal][1] += result["seconds"]
        sums[journal][2] += result["cpu_s_per_1k"] * count / 1000
    out: Metrics = {}
    for journal, (messages, seconds, cpu) in sums.items():
        side = "on" if journal else "off"
        out[f"consumer_{side}_msgs_per_s"] = messages / seconds
        out[f"consumer_{side}_cpu_s_per_1k"] = cpu / messages * 1000
    out["consumer_ratio"] = out["consumer_on_msgs_per_s"] / out["consumer_off_msgs_per_s"]
    return out


def _start_shim(stack: Stack, redis_url: str, journal: bool) -> _Target:
    port = free_port()
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_SHIM_PUBLIC_URL": PUBLIC_URL,
        "IMS_WORKER_RTC_APP_KEY": RTC_KEY,
        "IMS_WORKER_CASTER_TOKEN": CASTER_TOKEN,
        "IMS_WORKER_LOG_FORMAT": "json",
        "IMS_WORKER_JOURNAL_ENABLED": "true" if journal else "false",
    }
    name = "shim" if journal else "shimoff"
    service = stack.start(f"journal-{name}", [tool("ims-worker"), "shim", "--port", str(port)], env=env)
    wait_for_port(port, timeout=30, proc=service)
    return _Target(name, service, f"http://127.0.0.1:{port}")


def _shims(stack: Stack, redis_url: str, config: BenchConfig) -> Metrics:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    targets = [_start_shim(stack, redis_url, True), _start_shim(stack, redis_url, False)]
    segment = config.shim_seconds / config.shim_segments / 2
    try:
        for index in range(config.shim_segments * 2):
            for target in targets[index % 2 :] + targets[: index % 2]:
                _segment(target, config, segment, client, stack.workdir)
    finally:
        for target in targets:
            target.service.stop()
        client.close()
    out: Metrics = {}
    for target, side in zip(targets, ("on", "off"), strict=True):
        metrics = target.metrics()
        out[f"shim_{side}_rps"] = metrics["rps"]
        out[f"shim_{side}_cpu_ms_per_req"] = metrics["cpu_ms_per_req"]
        out[f"shim_{side}_p99_ms"] = metrics["p99_ms"]
        out[f"shim_{side}_errors"] = metrics["errors"]
    out["shim_ratio"] = out["shim_on_rps"] / out["shim_off_rps"]
    return out


def _events(count: int) -> list[Event]:
    return [e for body in ims_messages(count, uuid.uuid4().hex[:6]) for e in normalize("ims", body)]


def _memory(redis_url: str, events: list[Event], **settings: Any) -> float:
    """Bytes per event: used_memory grown by publishing ``events`` (and, with ``worker``, running them)."""
    worker = settings.pop("worker", False)
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    config = load_settings(broker_url=redis_url, **settings)
    publisher = Publisher(config)
    for i in range(0, len(events), 64):
        publisher.publish(events[i : i + 64])
    publisher.close()
    if worker:
        ledger = HandlerLedger(
            client, claim_seconds=60, done_ttl_seconds=600, outbox_deadline_seconds=600,
            journal=JournalConfig.from_settings(config),
        )  # fmt: skip
        for n, event in enumerate(events):
            task = f"bench-task-{n}"
            ledger.begin(event.id, task, HANDLERS, redelivered=False, event=event)
            for name in HANDLERS:
                ledger.mark_done(event.id, task, name, ms=1.234)
            stats = attempt_stats(event, handled=True, failed=False)
            ledger.finish(event.id, task, [], failed=False, handled=True, stats=stats)
        for name in HANDLERS:  # what the journal adds, not the ledger's own done markers
            client.delete(*[f"ims-worker:done:{e.id}:{name}" for e in events])
        client.delete(*[f"ims-worker:dedupe:{e.id}" for e in events])
        client.delete("ims", "ims-worker:outbox", "ims-worker:outbox:due")
    grown = (int(client.info("memory")["used_memory"]) - before) / len(events)
    client.close()
    return grown


def _bytes(redis_url: str, count: int) -> Metrics:
    events = _events(count)
    off = _memory(redis_url, events, journal_enabled=False)
    received = _memory(redis_url, events)
    life = _memory(redis_url, events, worker=True, journal_payload_seconds=0)
    with_payload = _memory(redis_url, events, worker=True)
    return {
        "bytes_publish_off": off,
        "bytes_journal_received": received - off,
        "bytes_journal_payload": with_payload - life,
        "bytes_journal_life_no_payload": life,
        "bytes_journal_life": with_payload,
    }


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    if not wrk.available():
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    metrics: Metrics = {}
    with Stack(config.workdir / f"journal-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        metrics.update(_bytes(redis_url, 290 if config.smoke else 2900))
        metrics.update(_consumers(stack, redis_url, config))
        metrics.update(_shims(stack, redis_url, config))
    return metrics, {"consumer_messages": max(100, config.consumer_messages // 2) * 2}


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    name = "journal"
    return [
        Row(
            name,
            "consumer msgs/s (1x2), journal on vs off",
            fmt(m["consumer_on_msgs_per_s"]),
            fmt(m["consumer_off_msgs_per_s"]),
            fmt(m["consumer_ratio"], 2, "x"),
            ">= 0.90x",
            check(m["consumer_ratio"], 0.9, at_least=True),
        ),
        Row(
            name,
            "consumer CPU s per 1,000 msgs, journal on vs off",
            fmt(m["consumer_on_cpu_s_per_1k"], 3),
            fmt(m["consumer_off_cpu_s_per_1k"], 3),
            fmt(ratio(m["consumer_on_cpu_s_per_1k"], m["consumer_off_cpu_s_per_1k"]), 2, "x"),
        ),
        Row(
            name,
            "shim req/s (1 process), journal on vs off",
            fmt(m["shim_on_rps"]),
            fmt(m["shim_off_rps"]),
            fmt(m["shim_ratio"], 2, "x"),
            ">= 0.90x",
            check(m["shim_ratio"], 0.9, at_least=True),
        ),
        Row(
            name,
            "shim server CPU ms per request; p99 ms, journal on vs off",
            f"{fmt(m['shim_on_cpu_ms_per_req'], 3)}; {fmt(m['shim_on_p99_ms'], 1)}",
            f"{fmt(m['shim_off_cpu_ms_per_req'], 3)}; {fmt(m['shim_off_p99_ms'], 1)}",
        ),
        Row(
            name,
            "Redis bytes/event: publish without journal (queue, outbox, marker)",
            fmt(m["bytes_publish_off"]),
        ),
        Row(
            name, "Redis bytes/event: journal at receipt (entries, indexes)", fmt(m["bytes_journal_received"])
        ),
        Row(
            name,
            "Redis bytes/event: the event kept for replay (IMS samples)",
            fmt(m["bytes_journal_payload"]),
        ),
        Row(
            name,
            "Redis bytes/event: journal for a whole life (received..handled, 3 handlers), with payload",
            fmt(m["bytes_journal_life"]),
        ),
        Row(name, "Redis bytes/event: the same without payload", fmt(m["bytes_journal_life_no_payload"])),
    ]


BENCHMARK = Benchmark("journal", "Journal cost (consumer, shim, Redis bytes)", run, rows)


def _main(timings: bool = True) -> None:
    """``python -m bench.journal_bench [--bytes]``: Redis bytes per event and (unless ``--bytes``) the
    publish path's cost per event, without consumer or shim processes (timings: under the heavy lock)."""
    import tempfile  # noqa: PLC0415
    import time  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from worker.delivery.publish import _Batch  # noqa: PLC0415

    with Stack(Path(tempfile.mkdtemp(prefix="journal-bench-"))) as stack:
        redis_url = stack.redis()
        for key, value in _bytes(redis_url, 2900).items():
            print(f"{key}: {value:,.0f}")
        if not timings:
            return
        events = _events(8000)
        client = redis.Redis.from_url(redis_url)
        for journal in (False, True, False, True):
            client.flushall()
            settings = load_settings(broker_url=redis_url, journal_enabled=journal)
            publisher = Publisher(settings)
            started = time.perf_counter()
            for i in range(0, len(events), 16):
                _Batch(settings, events[i : i + 16], False)
            build = time.perf_counter() - started
            before = client.info("cpu")
            started = time.perf_counter()
            for i in range(0, len(events), 16):
                publisher.publish(events[i : i + 16])
            wall = time.perf_counter() - started
            after = client.info("cpu")
            cpu = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys"))
            per = 1e6 / len(events)
            print(
                f"journal={'on ' if journal else 'off'}  build {build * per:5.1f} us/event  "
                f"publish {wall * per:5.1f} us/event  redis-server CPU {cpu * per:5.1f} us/event"
            )
            publisher.close()
        client.close()


if __name__ == "__main__":
    import sys

    _main(timings="--bytes" not in sys.argv[1:])
