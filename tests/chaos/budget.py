"""Seeds, durations and where results go: everything a chaos run takes from its environment.

* ``IMS_WORKER_CHAOS_SEED``: the base seed (default ``DEFAULT_SEED``). Each scenario derives its own random
  generator from it and its name, and prints the seed, so a failing run can be replayed with the same
  workload and the same fault schedule (process timing still differs from run to run).
* ``IMS_WORKER_SOAK_MINUTES``: unset for the CI version (``make chaos``, about 2 minutes in all); N makes the
  load phases add up to about N minutes (``make soak MINUTES=N``).
* ``IMS_WORKER_CHAOS_RESULTS``: the directory for the per-scenario JSON summaries (default
  ``bench/results/chaos``, which git ignores).
"""

from __future__ import annotations

import os
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEED = 20240611
REPO_ROOT = Path(__file__).resolve().parents[2]
# Load seconds per load scenario in the CI version; the rest of a scenario is start-up and draining.
CI_LOAD_SECONDS = 8.0
LOAD_SCENARIOS = 6
# Of a soak's minutes, the share spent sending load (the rest: start-up, draining, checks, security tests).
SOAK_LOAD_SHARE = 0.85


def base_seed() -> int:
    raw = os.environ.get("IMS_WORKER_CHAOS_SEED", "").strip()
    return int(raw) if raw else DEFAULT_SEED


def soak_minutes() -> float | None:
    raw = os.environ.get("IMS_WORKER_SOAK_MINUTES", "").strip()
    return float(raw) if raw else None


@dataclass(frozen=True)
class Budget:
    seed: int
    load_seconds: float
    soak_minutes: float | None

    @property
    def mode(self) -> str:
        return "chaos" if self.soak_minutes is None else f"soak{self.soak_minutes:g}m"

    def rng(self, scenario: str) -> random.Random:
        return random.Random(self.scenario_seed(scenario))

    def scenario_seed(self, scenario: str) -> int:
        return self.seed * 1_000_003 + zlib.crc32(scenario.encode())

    def scale(self, ci_value: int) -> int:
        """A count sized for the CI version, grown with the load time of a soak."""
        return int(ci_value * max(1.0, self.load_seconds / CI_LOAD_SECONDS))

    def command(self) -> str:
        env = f"IMS_WORKER_CHAOS_SEED={self.seed}"
        if self.soak_minutes is None:
            return f"{env} make chaos"
        return f"{env} make soak MINUTES={self.soak_minutes:g}"


def current_budget() -> Budget:
    minutes = soak_minutes()
    load = CI_LOAD_SECONDS if minutes is None else minutes * 60 * SOAK_LOAD_SHARE / LOAD_SCENARIOS
    return Budget(seed=base_seed(), load_seconds=max(CI_LOAD_SECONDS, load), soak_minutes=minutes)


def results_dir() -> Path:
    raw = os.environ.get("IMS_WORKER_CHAOS_RESULTS", "").strip()
    path = Path(raw) if raw else REPO_ROOT / "bench" / "results" / "chaos"
    path.mkdir(parents=True, exist_ok=True)
    return path
