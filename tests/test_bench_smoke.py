"""The benchmarks must keep working: run ``python -m bench.run_all --smoke`` (~30 s) and check its output.

Numbers are not checked (a smoke run is too short to mean anything); what is checked is that every benchmark
ran its baseline and ours, produced every metric as a finite number, and left no process behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import SPOOL_DIR_VAR

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.timeout(180)
def test_smoke_run_produces_every_metric(tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    names = ["consumer", "shim", "e2e", "tasks", "journal"]
    if shutil.which("wrk") is None:  # the shim and journal benchmarks need wrk (apt-get install wrk); CI: yes
        names.remove("shim")
        names.remove("journal")
    args = [sys.executable, "-m", "bench.run_all", "--smoke", "--output", str(output)]
    args += [arg for name in names for arg in ("--only", name)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_") or k == SPOOL_DIR_VAR}
    before = _descendants()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    results = json.loads(output.read_text())
    assert results["smoke"] is True
    assert sorted(results["benchmarks"]) == sorted(names)
    for name, outcome in results["benchmarks"].items():
        assert "error" not in outcome, f"{name}: {outcome.get('error')}"
        assert outcome["median"], name
        for metric, value in outcome["median"].items():
            assert math.isfinite(value), f"{name}.{metric} = {value}"
    assert "baseline" in done.stdout  # the table was printed
    assert _descendants() <= before, "the benchmark left processes running"


@pytest.mark.timeout(180)
def test_the_inbox_benchmark_runs(tmp_path: Path) -> None:
    output = tmp_path / "inbox.json"
    args = [sys.executable, "-m", "bench.run_all", "--smoke", "--only", "inbox", "--output", str(output)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
    before = _descendants()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    outcome = json.loads(output.read_text())["benchmarks"]["inbox"]
    assert {"added_median_ms", "throughput_ratio", "repeat_median_ms", "journal_note_ms"} <= set(
        outcome["median"]
    )
    assert all(math.isfinite(value) for value in outcome["median"].values())
    assert _descendants() <= before, "the benchmark left processes running"


@pytest.mark.timeout(150)
def test_the_profiles_smoke_run_produces_its_metrics(tmp_path: Path) -> None:
    # Its own run (three worker starts, ~35 s): not in the time budget of the first smoke test.
    output = tmp_path / "profiles.json"
    args = [sys.executable, "-m", "bench.run_all", "--smoke", "--only", "profiles", "--output", str(output)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
    before = _descendants()
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=140, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    median = json.loads(output.read_text())["benchmarks"]["profiles"]["median"]
    for variant in ("today_sync", "io_async", "cpuprofile_cpu"):
        assert median[f"{variant}_events_per_s"] > 0 and median[f"{variant}_rss_mb"] > 0, median
        assert math.isfinite(median[f"{variant}_cpu_ms_per_event"]), median
    assert _descendants() <= before, "the benchmark left processes running"
