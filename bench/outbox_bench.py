"""``python -m bench.outbox_bench [--queued N] [--overdue N] [--lost N] [--naive-calls N]``: the outbox sweep
with a deep backlog, ours against the naive LPOS sweep (the one before the bounded sweep), same Redis, same
data, same run.

The state (issue 14: workers down for an hour): ``--queued`` real task messages (``TaskMessageBuilder``,
unique IMS events) wait in one queue; the oldest ``--overdue`` of them have outbox copies past their deadline
(oldest first at the tail BRPOP takes from), ``--lost`` of those copies have no message left in the queue
(taken by a BRPOP whose reply was lost), and every queued message has a deadline in the outbox's sorted set.
Messages that are not overdue keep no hash copy here (neither sweep reads them; it saves gigabytes).

Measured per sweep: every script call's wall time (client side, so including the loopback round trip), how
many calls, what was re-enqueued, and a PING sent every millisecond on another connection the whole time
(p50 / p99 / max ms): what every other Redis client sees while the sweep runs. The naive sweep is stopped
after ``--naive-calls`` calls (each scans the million-long list up to 100 times); its per-call figures are
measured, its whole-sweep time is extrapolated and marked so.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.procs import Stack, wait_for_port
from worker import keyspace
from worker.delivery.outbox import SWEEP_BATCH, UNACKED_KEY, Outbox
from worker.delivery.taskmessage import TaskMessageBuilder
from worker.devtools.embedded import free_port, redis_server_binary
from worker.events import Event
from worker.providers import normalize

QUEUE = "ims"
SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples" / "ims"
DEADLINE_SECONDS = 60

# The sweep before the windowed one: LPOS over the whole queue for every copy (KEYS, ARGV: at its top).
NAIVE_SWEEP = (Path(__file__).resolve().parent / "baselines" / "naive_sweep.lua").read_text()


def _ping_loop(url: str, stop: Any, out: Any) -> None:
    client = redis.Redis.from_url(url, socket_timeout=600)  # the naive sweep blocks Redis for long
    samples: list[tuple[float, float]] = []
    while not stop.is_set():
        sent, began = time.time(), time.perf_counter()
        client.ping()
        samples.append((sent, (time.perf_counter() - began) * 1000))
        time.sleep(0.001)
    out.send(samples)
    client.close()


class PingSampler:
    """PING every millisecond from another process (no GIL shared with the sweep); keeps every latency."""

    def __init__(self, url: str) -> None:
        self._stop = multiprocessing.Event()
        self._recv, send = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(target=_ping_loop, args=(url, self._stop, send), daemon=True)

    def start(self) -> None:
        self._process.start()
        time.sleep(0.3)  # connected and sampling before the sweep starts

    def stop(self, began: float, ended: float) -> dict[str, float]:
        """Latencies of the PINGs sent between ``began`` and ``ended`` (wall clock): during the sweep."""
        self._stop.set()
        samples: list[tuple[float, float]] = self._recv.recv()
        self._process.join()
        ordered = sorted(ms for sent, ms in samples if began <= sent <= ended) or [0.0]
        return {
            "pings": len(ordered),
            "p50_ms": round(statistics.median(ordered), 3),
            "p99_ms": round(ordered[int(len(ordered) * 0.99)], 3),
            "max_ms": round(ordered[-1], 3),
        }


def server_call_ms(client: redis.Redis) -> list[float]:
    """Each EVALSHA's execution time as Redis measured it (the slow log logs every command here)."""
    entries = client.slowlog_get(1_000_000)
    return [
        e["duration"] / 1000
        for e in entries
        if str(e.get("command", b"")).upper().startswith(("EVAL", "B'EVAL"))
    ]


def _events() -> list[Event]:
    return [normalize("ims", path.read_bytes())[0] for path in sorted(SAMPLES.glob("*.json"))]


def fill(client: redis.Redis, queued: int, overdue: int, lost: int) -> None:
    """The backlog, oldest first."""
    builder, samples = TaskMessageBuilder(origin="bench"), _events()
    now = int(time.time() * 1000)
    oldest = now - DEADLINE_SECONDS * 1000 - 3_600_000  # the backlog began an hour ago
    spacing = 3_600_000 / (queued + lost)  # published evenly over that hour
    pipe = client.pipeline(transaction=False)
    for i in range(queued + lost):
        event = samples[i % len(samples)].model_copy(update={"id": f"bench-{i}"})
        message = builder.build(event, QUEUE)
        # The lost copies are the oldest of all: taken from the tail before the reply was lost.
        if i >= lost:
            pipe.lpush(QUEUE, message.payload)  # as the publisher: the oldest end up at the tail
        # The lost ones were taken 10 s of publishing before the oldest still queued (the workers went on
        # consuming that long before they stopped): more than the sweep's clock margin.
        at = oldest + int(i * spacing) + (0 if i < lost else 10_000)
        deadline = at if i < overdue else now + 3_600_000 + i
        pipe.zadd(keyspace.OUTBOX_DUE, {message.task_id: deadline})
        if i < overdue:
            pipe.hset(keyspace.OUTBOX, message.task_id, QUEUE.encode() + b"\n" + message.payload)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    if client.llen(QUEUE) != queued:
        raise RuntimeError("backlog not filled")


def ours(client: redis.Redis, url: str) -> dict[str, Any]:
    outbox = Outbox(client, DEADLINE_SECONDS, grace_seconds=0)  # the lost ones were found nowhere before
    calls: list[float] = []
    pushed, cursor = 0, ("-inf", 0)
    sampler = PingSampler(url)
    sampler.start()
    client.slowlog_reset()
    began, wall = time.perf_counter(), time.time()
    while True:
        t = time.perf_counter()
        step = outbox.sweep_once(cursor)
        calls.append((time.perf_counter() - t) * 1000)
        pushed += step.pushed
        cursor = step.cursor
        if step.seen < SWEEP_BATCH:
            break
    total = time.perf_counter() - began
    pings = sampler.stop(wall, time.time())
    return _result(calls, server_call_ms(client), pushed, total, pings, complete=True)


def naive(client: redis.Redis, url: str, max_calls: int, overdue: int) -> dict[str, Any]:
    script = client.register_script(NAIVE_SWEEP)
    keys = [keyspace.OUTBOX, keyspace.OUTBOX_DUE, UNACKED_KEY]
    calls: list[float] = []
    pushed = 0
    sampler = PingSampler(url)
    sampler.start()
    client.slowlog_reset()
    began, wall = time.perf_counter(), time.time()
    now = int(time.time() * 1000)
    while len(calls) < max_calls:
        t = time.perf_counter()
        pushed += int(script(keys=keys, args=[now, now + DEADLINE_SECONDS * 1000, SWEEP_BATCH]))
        calls.append((time.perf_counter() - t) * 1000)
        if not client.zcount(keyspace.OUTBOX_DUE, "-inf", now):
            break
    total = time.perf_counter() - began
    complete = len(calls) * SWEEP_BATCH >= overdue
    pings = sampler.stop(wall, time.time())
    result = _result(calls, server_call_ms(client), pushed, total, pings, complete=complete)
    if not result["complete"]:
        whole = -(-overdue // SWEEP_BATCH)
        result["extrapolated_sweep_s"] = round(statistics.mean(calls) * whole / 1000, 1)
    return result


def _result(
    calls: list[float],
    server: list[float],
    pushed: int,
    total: float,
    pings: dict[str, float],
    complete: bool,
) -> dict[str, Any]:
    return {
        "calls": len(calls),
        "max_call_ms_server": round(max(server), 3) if server else None,
        "p50_call_ms_server": round(statistics.median(server), 3) if server else None,
        "max_call_ms_client": round(max(calls), 3),
        "sweep_s": round(total, 3),
        "re_enqueued": pushed,
        "complete": complete,
        "ping_during_sweep": pings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=1_000_000)
    parser.add_argument("--overdue", type=int, default=10_000)
    parser.add_argument("--lost", type=int, default=100)
    parser.add_argument("--naive-calls", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp, Stack(Path(tmp)) as stack:
        port = free_port()
        # No AOF: a gigabyte-sized backlog is written to memory only; persistence is not what is measured.
        argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", tmp]  # fmt: skip
        stack.start("redis", argv)
        wait_for_port(port)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, socket_timeout=600)  # the naive sweep blocks Redis for long
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 100_000)
        began = time.perf_counter()
        fill(client, args.queued, args.overdue + args.lost, args.lost)
        info = client.info("memory")
        setup = {
            "queued": client.llen(QUEUE),
            "overdue_copies": client.zcount(keyspace.OUTBOX_DUE, "-inf", int(time.time() * 1000)),
            "lost": args.lost,
            "redis_used_memory_mb": round(int(info["used_memory"]) / 2**20),
            "fill_s": round(time.perf_counter() - began, 1),
        }
        print(json.dumps({"setup": setup}), flush=True)
        result_ours = ours(client, url)
        print(json.dumps({"ours": result_ours}), flush=True)
        for _ in range(result_ours["re_enqueued"]):
            client.rpop(QUEUE)  # the same state for the baseline: the lost ones are lost again
        result_naive = naive(client, url, args.naive_calls, args.overdue + args.lost)
        print(json.dumps({"naive": result_naive}), flush=True)
        client.close()
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    report = {"setup": setup, "ours": result_ours, "naive": result_naive}
    (out / "outbox.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
