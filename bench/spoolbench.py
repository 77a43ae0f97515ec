"""The shim benchmark's spool figures (``bench/shim_bench.py`` runs these targets in its 1-process group).

* **nospool**: the same shim with ``IMS_WORKER_SHIM_SPOOL_ENABLED=false``. With Redis healthy a request never
  reaches the spool, but the fast path now publishes under the spool budget (a shielded publish and a timeout
  per request); ``shim / nospool`` in the same interleaved minutes is what that costs.
* **spooled**: the shim with its broker URL on a port where nothing listens: every request is answered from
  the spool (a durable SQLite append, fsync'd; appends of one event-loop iteration share a commit). Its
  p50/p99 at 32 connections is the answer time a provider sees during a Redis outage.
"""

from __future__ import annotations

from bench.stats import Metrics, Row, check, fmt
from worker.devtools.embedded import free_port

TARGETS = ("nospool", "spooled")


def environment(target: str) -> dict[str, str]:
    if target == "nospool":
        return {"IMS_WORKER_SHIM_SPOOL_ENABLED": "false"}
    if target == "spooled":
        return {"IMS_WORKER_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}  # Redis "down"
    return {}


def ratios(m: Metrics) -> Metrics:
    return {
        "ratio_spool_fast_rps_1": m["shim_1_rps"] / m["nospool_1_rps"],
        "ratio_spool_fast_p99_1": m["shim_1_p99_ms"] / m["nospool_1_p99_ms"],
    }


def _latency(m: Metrics, key: str) -> str:
    return f"{fmt(m[key + '_p50_ms'], 1)} / {fmt(m[key + '_p99_ms'], 1)}"


def rows(m: Metrics) -> list[Row]:
    if "ratio_spool_fast_rps_1" not in m:
        return []
    return [
        Row(
            "shim",
            "req/s, 1 process, Redis healthy: spool on vs off (the fast path, same minutes)",
            "{} / {}".format(fmt(m["shim_1_rps"]), fmt(m["nospool_1_rps"])),
            "",
            fmt(m["ratio_spool_fast_rps_1"], 2, "x"),
            ">= 0.95x",
            check(m["ratio_spool_fast_rps_1"], 0.95, at_least=True),
        ),
        Row(
            "shim",
            "p99 ms, 1 process, Redis healthy: spool on vs off",
            "{} / {}".format(fmt(m["shim_1_p99_ms"], 1), fmt(m["nospool_1_p99_ms"], 1)),
            "",
            fmt(m["ratio_spool_fast_p99_1"], 2, "x"),
            "<= 1.05x",
            check(m["ratio_spool_fast_p99_1"], 1.05, at_least=False),
        ),
        Row(
            "shim",
            "Redis down, every request spooled, 1 process: req/s; p50 / p99 ms; errors",
            f"{fmt(m['spooled_1_rps'])}; {_latency(m, 'spooled_1')}; {fmt(m['spooled_1_errors'])}",
            "",
            "",
            "p99 < 500",
            check(m["spooled_1_p99_ms"], 500, at_least=False),
        ),
    ]
