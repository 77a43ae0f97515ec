"""Redis bytes per event and per body byte: today's task messages against the two earlier forms, same run.

Each case is a request body as a provider sends it. It is normalized and published through the real publish
script onto a private redis-server (no persistence) ``COPIES`` times under distinct event ids, and the growth
of ``INFO memory``'s ``used_memory`` is divided by the copies: what one request costs in Redis (queue entry,
outbox record, dedupe marker, outbox deadline). Baselines, rebuilt here and published the same way:

- *whole copy*: the message carries the event (``TaskMessageBuilder``) and the outbox keeps a whole second
  copy of it, as before messages referred to their event by id;
- *before 13*: the same, with the event's ``data`` and ``raw`` both (for RTC the whole message in every
  event), base64 in the body and every protocol-2 header: the naive encoding.

Worst cases: the most events one request may carry with the smallest items, the largest header the fan-out
rule lets through, a body made of JSON escapes, and the smallest body.

    .venv/bin/python -m bench.redis_bytes [--copies 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from worker import keyspace
from worker.delivery.publish import Publisher
from worker.delivery.taskmessage import TaskMessageBuilder, new_task_id, task_argsrepr
from worker.devtools.demo import load_samples
from worker.devtools.embedded import free_port, redis_server_binary
from worker.errors import TooManyEvents
from worker.events import Event
from worker.events.fanout import DEFAULT_MAX_EVENTS, check_fanout
from worker.providers import normalize, queue_for
from worker.settings import Settings

_dumps = json.encoder.encode_basestring


# The publish script of the releases that kept a whole copy of each message (KEYS, ARGV: at its top).
_WHOLE_COPY_SCRIPT = (Path(__file__).resolve().parent / "baselines" / "whole_copy_publish.lua").read_text()


def original_message(event: Event, queue: str) -> bytes:
    """The message as the release before issue 13 built it (taskmessage at 3723a07): the event with ``data``,
    base64 in the body, every protocol-2 header."""
    body = b"[[" + event.__pydantic_serializer__.to_json(event) + b"], {}, "
    body += b'{"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'
    tid = new_task_id()
    return (
        f'{{"body": "{base64.b64encode(body).decode()}", "content-encoding": "utf-8", '
        f'"content-type": "application/json", "headers": {{"lang": "py", "task": {_dumps(event.type)}, '
        f'"id": "{tid}", "shadow": null, "eta": null, "expires": null, "group": null, "group_index": null, '
        f'"retries": 0, "timelimit": [null, null], "root_id": "{tid}", "parent_id": null, '
        f'"argsrepr": {_dumps(task_argsrepr(event))}, "kwargsrepr": "{{}}", "origin": "gen1234@benchhost", '
        f'"ignore_result": false, "replaced_task_nesting": 0, "stamped_headers": null, "stamps": {{}}}}, '
        f'"properties": {{"correlation_id": "{tid}", "reply_to": "", "delivery_mode": 2, '
        f'"delivery_info": {{"exchange": "", "routing_key": {_dumps(queue)}}}, "priority": 0, '
        f'"body_encoding": "base64", "delivery_tag": "{new_task_id()}"}}}}'
    ).encode()


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    body: bytes


def sample_cases() -> list[Case]:
    return [Case(s.name, s.source, s.body.encode()) for s in load_samples()]


def _rtc(items: int, header: dict[str, Any], item: dict[str, Any]) -> bytes:
    return json.dumps({"MsgId": "m", **header, "Contents": [item] * items}, separators=(",", ":")).encode()


def worst_cases() -> list[Case]:
    tiny = {"Event": "ChannelEvent", "ChannelEvent": {"EventTag": "", "Timestamp": 0}}
    fanout = _rtc(DEFAULT_MAX_EVENTS, {}, tiny)
    # The largest header the fan-out rule accepts with 100 of the smallest items.
    pad = 0
    while True:
        try:
            check_fanout("rtc", json.loads(_rtc(DEFAULT_MAX_EVENTS, {"P": "x" * (pad + 1)}, tiny)), 100, 100)
        except TooManyEvents:
            break
        pad += 1
    padded = _rtc(DEFAULT_MAX_EVENTS, {"P": "x" * pad}, tiny)
    base = json.loads(next(s.body for s in load_samples() if s.name == "ims/ProduceMediaComplete.json"))
    escapes = {**base, "S": '"' * 20_000}  # each becomes \" on the wire, and \\\" inside the task body
    return [
        Case("worst: RTC, 100 smallest items", "rtc", fanout),
        Case("worst: RTC, 100 items, largest header", "rtc", padded),
        Case("worst: IMS, 40 KB of JSON escapes", "ims", json.dumps(escapes).encode()),
        Case(
            "worst: smallest body (live-record)",
            "live.record",
            b'{"domain":"d","app":"a","stream":"s","event":"x"}',
        ),
    ]


def padded_cases() -> list[Case]:
    """One IMS event at growing sizes: the slope is what each further body byte costs."""
    base = json.loads(next(s.body for s in load_samples() if s.name == "ims/ProduceMediaComplete.json"))
    return [
        Case(f"slope: IMS + {n} B field", "ims", json.dumps({**base, "Extra": "y" * n}).encode())
        for n in (0, 4096, 16384)
    ]


class Measure:
    def __init__(self, url: str, copies: int) -> None:
        self.client = redis.Redis.from_url(url)
        # The encoding compared without the event journal (its own writes), then the default with it.
        self.settings = Settings(broker_url=url, journal_enabled=False)
        self.publisher = Publisher(self.settings)
        self.journaling = Publisher(Settings(broker_url=url))
        self.whole_copy_script = self.client.register_script(_WHOLE_COPY_SCRIPT)
        self.copies = copies

    def _used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def _per_request(self, publish: Callable[[int], object]) -> float:
        self.client.flushall()
        time.sleep(0.05)
        before = self._used()
        for k in range(self.copies):
            publish(k)
        return (self._used() - before) / self.copies

    def ours(self, case: Case, *, journal: bool = False) -> tuple[int, float]:
        events = normalize(case.source, case.body)
        publisher = self.journaling if journal else self.publisher

        def publish(k: int) -> None:
            publisher.publish([e.model_copy(update={"id": f"{e.id}:{k}"}) for e in events])

        return len(events), self._per_request(publish)

    def floor(self, case: Case) -> dict[str, Any]:
        """Where one small event's bytes go (``MEMORY USAGE`` of each structure, per event)."""
        _, total = self.ours(case)  # its keys stay for the look below
        queues = [k for k in self.client.scan_iter() if self.client.type(k) == b"list"]
        marker = next(self.client.scan_iter(keyspace.dedupe("*")))

        def usage(key: Any) -> float:
            return float(self.client.memory_usage(key, samples=0) or 0)

        parts: dict[str, Any] = {
            "case": f"floor: {case.name}",
            "task message": round(sum(usage(q) for q in queues) / self.copies),
            "outbox record (the event)": round(usage(keyspace.OUTBOX) / self.copies),
            "outbox deadline": round(usage(keyspace.OUTBOX_DUE) / self.copies),
            "dedupe marker": round(usage(marker)),
        }
        # What no key reports: the keyspace's own tables (a bucket and an expiry entry per marker).
        parts["keyspace tables"] = round(total - sum(v for k, v in parts.items() if k != "case"))
        return parts

    def whole_copy(self, case: Case, render: Callable[[Event, str], bytes], *, fanout: bool = False) -> float:
        """A message with the event inside, enqueued and copied whole into the outbox (the releases before
        by-reference messages). ``fanout``: every event of a fan-out carries the whole message (before 13)."""
        whole = json.loads(case.body)
        events = normalize(case.source, case.body, max_events=None if fanout else DEFAULT_MAX_EVENTS)
        if fanout:
            events = [e.model_copy(update={"raw": whole}) for e in events]
        deadline = int((time.time() + 3600) * 1000)

        def publish(k: int) -> None:
            keys: list[str] = []
            args: list[Any] = [deadline]
            for e in events:
                queue = queue_for(self.settings, e.source)
                keys += (keyspace.dedupe(f"{e.id}:{k}"), queue)
                args += (new_task_id(), 86400, render(e, queue))
            self.whole_copy_script(keys=[*keys, keyspace.OUTBOX, keyspace.OUTBOX_DUE], args=args)

        return self._per_request(publish)


def run(copies: int) -> list[dict[str, Any]]:
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.3)
        measure = Measure(f"redis://127.0.0.1:{port}/0", copies)
        builder = TaskMessageBuilder(origin="gen1234@benchhost")
        rows = []
        measure.ours(sample_cases()[0])  # warm-up: the first writes also grow Redis's own tables
        for case in [*sample_cases(), *padded_cases(), *worst_cases()]:
            count, ours = measure.ours(case)
            _, journaled = measure.ours(case, journal=True)
            whole = measure.whole_copy(case, lambda e, q: builder.build(e, q).payload)
            original = measure.whole_copy(case, original_message, fanout=True)
            size = len(case.body)
            rows.append(
                {
                    "case": case.name,
                    "body": size,
                    "events": count,
                    "ours": round(ours),
                    "journal": round(journaled),
                    "whole_copy": round(whole),
                    "original": round(original),
                    "ours_x": round(ours / size, 2),
                    "whole_copy_x": round(whole / size, 2),
                    "original_x": round(original / size, 2),
                }
            )
        rows.append(measure.floor(worst_cases()[-1]))
        measure.publisher.close()
        measure.journaling.close()
        return rows
    finally:
        server.terminate()
        server.wait()


def report(rows: Sequence[dict[str, Any]]) -> str:
    floor = rows[-1]
    rows = rows[:-1]
    lines = [
        "| case | body B | events | now: B/request | x body | B/event | with journal | x body "
        "| whole copy: B/request | x body | before 13: B/request | x body |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['body']} | {r['events']} | {r['ours']} | {r['ours_x']} | "
            f"{r['ours'] // r['events']} | {r['journal']} | {r['journal'] / r['body']:.2f} | "
            f"{r['whole_copy']} | {r['whole_copy_x']} | {r['original']} | {r['original_x']} |"
        )
    slope = [r for r in rows if r["case"].startswith("slope")]

    def per_byte(column: str) -> float:
        return float((slope[-1][column] - slope[0][column]) / (slope[-1]["body"] - slope[0]["body"]))

    parts = ", ".join(f"{name} {size} B" for name, size in floor.items() if name != "case")
    lines.append(f"\n{floor['case']}: {parts}.")
    lines.append(
        f"Per further body byte: now {per_byte('ours'):.2f} B, whole copy {per_byte('whole_copy'):.2f} B, "
        f"before 13 {per_byte('original'):.2f} B."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--json")
    options = parser.parse_args()
    rows = run(options.copies)
    print(report(rows))
    if options.json:
        with open(options.json, "w") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
