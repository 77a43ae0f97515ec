"""Sizes and durations of one benchmark session: the full run (``make bench``) or the smoke run (CI)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchConfig:
    workdir: Path
    smoke: bool = False
    # 1. consumer: messages preloaded into the emulator; (processes, pollers per queue) settings tried
    consumer_messages: int = 20_000
    naive_messages: int = 20_000
    consumer_settings: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (1, 4), (2, 2))
    drain_timeout_s: float = 240.0
    # 2. shim: wrk connections, duration and warm-up; process counts tried for shim and ceiling
    connections: int = 32
    wrk_threads: int = 2
    shim_seconds: float = 20.0  # per server, split into interleaved segments
    shim_segments: int = 4
    warmup_seconds: float = 3.0
    processes: tuple[int, ...] = (1, 2)
    # 3. end to end: steady rate and duration, per entry (MNS and webhook)
    e2e_rate: float = 50.0
    e2e_seconds: float = 20.0
    # 4. task overhead: tasks per variant, and the worker's pool and concurrency (same for both)
    tasks: int = 4_000
    pool: str = "prefork"
    concurrency: int = 2
    # 7. inbox: handler calls per variant (split into alternating rounds)
    inbox_events: int = 5_000
    inbox_rounds: int = 10
    # 8. worker profiles: events preloaded per variant; today's 40/s variants drain only the first ones
    profile_events: int = 4_000
    profile_baseline_events: int = 1_000
    profile_cpu_events: int = 1_500
    profile_cpu_loops: int = 60_000  # pure-Python iterations per CPU-bound event (~5-10 ms)

    @classmethod
    def full(cls, workdir: Path) -> BenchConfig:
        return cls(workdir=workdir)

    @classmethod
    def smoke_run(cls, workdir: Path) -> BenchConfig:
        # About ten seconds of measuring in all: every code path runs, no number is meaningful.
        return cls(
            workdir=workdir,
            smoke=True,
            consumer_messages=600,
            naive_messages=150,
            consumer_settings=((1, 2),),
            drain_timeout_s=60.0,
            shim_seconds=1.0,
            shim_segments=1,
            warmup_seconds=0.0,
            processes=(1,),
            e2e_rate=50.0,
            e2e_seconds=1.0,
            tasks=150,
            inbox_events=100,
            inbox_rounds=2,
            profile_events=60,
            profile_baseline_events=20,
            profile_cpu_events=20,
            profile_cpu_loops=1_000,
        )
