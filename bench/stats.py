"""Percentiles, medians over runs, and the result table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Metrics = dict[str, float]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported figure was actually observed)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def medians(runs: Sequence[Mapping[str, float]]) -> Metrics:
    """Per-metric median over runs (a metric missing from a run is skipped for that run)."""
    keys = sorted({key for run in runs for key in run})
    out: Metrics = {}
    for key in keys:
        values = [run[key] for run in runs if key in run and not math.isnan(run[key])]
        out[key] = statistics.median(values) if values else math.nan
    return out


@dataclass(frozen=True)
class Row:
    """One line of the table: ours beside the baseline, the ratio, and the target it is held to."""

    bench: str
    metric: str
    ours: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    run: Callable[[Any], tuple[Metrics, dict[str, Any]]]  # one run -> (metrics, facts such as settings)
    rows: Callable[[Metrics, dict[str, Any]], list[Row]]  # medians -> table rows


def fmt(value: float, digits: int = 0, unit: str = "") -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def ratio(ours: float, baseline: float) -> float:
    if math.isnan(ours) or math.isnan(baseline) or baseline == 0:
        return math.nan
    return ours / baseline


def check(value: float, target: float, *, at_least: bool) -> bool | None:
    if math.isnan(value):
        return None
    return value >= target if at_least else value <= target


def table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    header = ("benchmark", "metric", "ours", "baseline", "ratio", "target", "met")
    body = [
        (
            r.bench,
            r.metric,
            r.ours,
            r.baseline,
            r.ratio,
            r.target,
            {True: "yes", False: "NO", None: ""}[r.met],
        )
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(cells[i]) for cells in body)) if body else len(h) for i, h in enumerate(header)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in body]
    return "\n".join(out)


def results_dir() -> Path:
    return Path(__file__).resolve().parent / "results"
