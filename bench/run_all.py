"""``python -m bench.run_all [--smoke] [--only NAME ...] [--runs N]``: run, take medians, print, save.

Each benchmark runs ``--runs`` times (default 3, smoke 1) with its baseline inside the same run; the table
shows per-metric medians. Results go to ``bench/results/latest.json`` (git-ignored). The exit status is 1 if
any benchmark failed to run (a missed target is reported, not an error: benchmarks are not tests).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.stats import Benchmark, Metrics, Row, medians, results_dir, table

MODULES = ("consumer", "shim", "e2e", "tasks", "flow", "journal", "inbox", "profiles")
MODULE_PATHS = {
    "consumer": "bench.consumer_bench",
    "shim": "bench.shim_bench",
    "e2e": "bench.e2e_bench",
    "tasks": "bench.task_bench",
    "journal": "bench.journal_bench",
    "flow": "bench.flow_bench",
    "inbox": "bench.inbox_bench",
    "profiles": "bench.profile_bench",
}


def load(name: str) -> Benchmark:
    benchmark: Benchmark = importlib.import_module(MODULE_PATHS[name]).BENCHMARK
    return benchmark


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_benchmark(benchmark: Benchmark, config: BenchConfig, runs: int) -> dict[str, Any]:
    per_run: list[Metrics] = []
    facts: dict[str, Any] = {}
    load: list[float] = []  # 1-minute load average at each run's start: how busy the shared machine was
    for index in range(runs):
        load.append(round(os.getloadavg()[0], 2))
        started = time.monotonic()
        print(f"[bench] {benchmark.name}: run {index + 1}/{runs} ...", file=sys.stderr, flush=True)
        metrics, facts = benchmark.run(config)
        per_run.append(metrics)
        print(
            f"[bench] {benchmark.name}: run {index + 1} done in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    summary = medians(per_run)
    return {"title": benchmark.title, "runs": per_run, "median": summary, "facts": facts, "loadavg": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one run: checks the benchmarks work"
    )
    parser.add_argument(
        "--only", action="append", choices=MODULES, help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per benchmark (default 3, smoke 1)")
    parser.add_argument(
        "--output", type=Path, default=None, help="JSON results (default bench/results/latest.json)"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.smoke else 3)
    names = args.only or list(MODULES)
    output: Path = args.output or results_dir() / ("smoke.json" if args.smoke else "latest.json")

    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run_all", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "runs": runs,
        "smoke": args.smoke,
        "benchmarks": {},
    }
    failed: list[str] = []
    all_rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ims-bench-") as tmp:
        config = (BenchConfig.smoke_run if args.smoke else BenchConfig.full)(Path(tmp))
        for name in names:
            benchmark = load(name)
            try:
                outcome = run_benchmark(benchmark, config, runs)
            except Exception as exc:
                traceback.print_exc()
                failed.append(name)
                results["benchmarks"][name] = {
                    "title": benchmark.title,
                    "error": f"{type(exc).__name__}: {exc}",
                }
                continue
            results["benchmarks"][name] = outcome
            all_rows += benchmark.rows(outcome["median"], outcome["facts"])

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, sort_keys=True, default=str))
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} cpus ({m['cpu']}), Python {m['python']}; medians of {runs} run(s)")
    print(table(all_rows))
    # The same table in Markdown beside the JSON, ready for BENCHMARKS.md.
    markdown = output.with_suffix(".md")
    markdown.write_text(
        f"`{results['command']}` on {m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"medians of {runs} run(s)\n\n{table(all_rows, markdown=True)}\n"
    )
    print(f"\nresults: {output} and {markdown}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
