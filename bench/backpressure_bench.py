"""MNS is the buffer, not Redis, at default settings: 100,000 messages in MNS and no worker running.

The consumer (``ims-worker consume``, default pollers, batch size and high/low-water marks) drains MNS until
its Celery queues reach the high-water mark and then stops receiving; the benchmark watches the queues for a
while (their peak must stay within the mark plus one batch per poller) and reads Redis's memory. Then a
Celery worker starts; the consumer resumes below the low-water mark, pausing again as needed, until every
event has been handled, each once (``bench.plugin`` counts handler runs; after the drain the count must stay
at the total, with every queue and the outbox empty).

    flock /work/heavy.lock .venv/bin/python -m bench.backpressure_bench [--messages 100000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench.mnsutil import start_emulator
from bench.payloads import ims_messages
from bench.plugin import COUNTER_KEY
from bench.procs import Stack, tool
from worker import keyspace
from worker.settings import Settings

QUEUES = ("ims", "unknown")
WATCH_SECONDS = 15.0


def _backlog(client: redis.Redis) -> int:
    return sum(int(client.llen(queue)) for queue in QUEUES)


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _log_events(path: Path, prefix: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if str(entry.get("event", "")).startswith(prefix):
                found.append(entry)
    return found


def run(total: int, workdir: Path, high_water: int | None = None) -> dict[str, Any]:
    marks = (
        {}
        if high_water is None
        else {"consumer_high_water": high_water, "consumer_low_water": high_water // 2}
    )
    defaults = Settings(**marks)  # type: ignore[arg-type]
    bound = defaults.consumer_high_water + defaults.mns_pollers_per_queue * defaults.mns_batch_size
    with Stack(workdir) as stack:
        redis_url = stack.redis()
        emulator = start_emulator(stack)
        queue = f"ims-backpressure-{uuid.uuid4().hex[:6]}"
        emulator.create_queue(queue)
        emulator.preload(queue, ims_messages(total, queue))
        client = redis.Redis.from_url(redis_url)
        base_memory = int(client.info("memory")["used_memory"])
        env = {
            **emulator.env(queue),
            "IMS_WORKER_BROKER_URL": redis_url,
            "IMS_WORKER_HANDLER_MODULES": "bench.plugin",
            "BENCH_REDIS_URL": redis_url,
            "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
            "IMS_WORKER_LOG_FORMAT": "json",
            **{f"IMS_WORKER_{name.upper()}": str(value) for name, value in marks.items()},
        }
        consumer = stack.start("consumer", [tool("ims-worker"), "consume"], env=env)
        started = time.monotonic()
        _wait(lambda: _log_events(consumer.log_path, "mns.backpressure.paused"), 300, "the consumer to pause")
        paused_after = time.monotonic() - started
        peak = 0
        watch_end = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < watch_end:
            peak = max(peak, _backlog(client))
            time.sleep(0.05)
        memory = int(client.info("memory")["used_memory"])
        stats = emulator.stats(queue)
        figures: dict[str, Any] = {
            "messages": total,
            "high_water": defaults.consumer_high_water,
            "low_water": defaults.consumer_low_water,
            "bound": bound,
            "paused_after_s": round(paused_after, 1),
            "peak_backlog": peak,
            "left_in_mns": stats["total"],
            "redis_used_mb": round(memory / 2**20, 1),
            "redis_growth_bytes_per_queued": round((memory - base_memory) / max(peak, 1)),
        }
        print(json.dumps(figures), flush=True)
        drain_started = time.monotonic()
        stack.start(
            "worker",
            [
                tool("celery"),
                "-A",
                "worker.app",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "--loglevel",
                "WARNING",
            ],
            env=env,
        )
        _wait(
            lambda: int(client.get(COUNTER_KEY) or 0) >= total and emulator.stats(queue)["total"] == 0,
            3600,
            "every event to be handled",
            interval=1.0,
        )
        drained = time.monotonic() - drain_started
        time.sleep(5)  # anything run twice would show up now
        figures.update(
            {
                "drain_s": round(drained, 1),
                "handled": int(client.get(COUNTER_KEY) or 0),
                "queued_after": _backlog(client),
                "outbox_after": int(client.hlen(keyspace.OUTBOX)),
                "pauses": len(_log_events(consumer.log_path, "mns.backpressure.paused")),
                "resumes": len(_log_events(consumer.log_path, "mns.backpressure.resumed")),
            }
        )
        client.close()
    figures["ok"] = (
        figures["peak_backlog"] <= bound
        and figures["handled"] == total
        and figures["queued_after"] == 0
        and figures["outbox_after"] == 0
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--high-water", type=int, help="default: the setting's default (10,000)")
    parser.add_argument("--json")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-backpressure-") as tmp:
        figures = run(options.messages, Path(tmp), options.high_water)
    print(json.dumps(figures, indent=1))
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=1))
    if not figures["ok"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
