"""Render the per-scenario JSON summaries of one run as the Markdown table RELIABILITY.md keeps.

python -m tests.chaos.report            # the CI version's summaries (chaos-*.json)
python -m tests.chaos.report soak15m    # a 15-minute soak's (soak15m-*.json)
python -m tests.chaos.report recovery   # the recovery table: scenario x broker (summaries with a "broker")

A recovery summary (``tests/chaos/recovery.py``; any scenario may write one) has ``scenario``, ``broker``,
``events_sent``, ``events_handled``, ``events_dead_lettered``, ``reruns_after_crash``, ``lost`` and
``recovery_seconds`` (``None`` when the scenario measures none): one row per (scenario, broker).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.chaos.budget import results_dir

ORDER = ["mixed-load", "kill-9", "redis-restart", "mns-faults", "duplicates", "poison"]


def _faults(summary: dict[str, Any]) -> str:
    injected = {k: v for k, v in summary["faults_injected"].items() if v}
    return ", ".join(f"{k} {v}" for k, v in sorted(injected.items())) or "none"


def _duplicates(events: dict[str, Any]) -> str:
    d = events["duplicates_absorbed"]
    total = d["mns_publish"] + d["shim_publish"] + d["worker_tasks_skipping_done_handlers"]
    return (
        f"{total} (MNS publish {d['mns_publish']}, shim {d['shim_publish']}, worker "
        f"{d['worker_tasks_skipping_done_handlers']}; MNS redeliveries {d['mns_redeliveries']})"
    )


def row(summary: dict[str, Any]) -> str:
    e = summary["events"]
    sent = (
        f"{e['sent_distinct']} events ({e['mns_messages']} MNS messages, {e['webhook_posts']} webhook POSTs)"
    )
    rejected = sum(e["rejected_4xx"].values())
    dead = (
        f"{e['dead_letters']} ({e['dead_lettered_events']} poison events, "
        f"{e['dead_lettered_bodies']} bad bodies)"
    )
    result = summary["result"]
    if e["reruns_after_crash"]:
        result += f", {e['reruns_after_crash']} re-runs after a crash"
    if summary.get("known_defects"):
        result += f", known defects {summary['known_defects']}"
    cells = [
        summary["scenario"],
        sent,
        str(e["handled"]),
        dead,
        str(rejected),
        _duplicates(e),
        _faults(summary),
        result,
        f"{summary['seconds']['load']:.0f} s",
    ]
    return "| " + " | ".join(cells) + " |"


def table(mode: str) -> str:
    summaries = {}
    for path in sorted(results_dir().glob(f"{mode}-*.json")):
        data = json.loads(path.read_text())
        if data.get("scenario") in ORDER:  # the recovery and broker summaries share the prefix
            summaries[data["scenario"]] = data
    header = (
        "| scenario | sent | handled once per handler | dead-lettered | rejected 4xx | duplicates absorbed | "
        "faults injected | result | load |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = [row(summaries[name]) for name in ORDER if name in summaries]
    seeds = sorted({(s["seed"], s["command"]) for s in summaries.values()})
    footer = "\n".join(f"Seed {seed}: `{command}`" for seed, command in seeds)
    return "\n".join([header, *rows, "", footer])


RECOVERY_HEADER = (
    "| scenario | broker | sent | handled once | dead-lettered (poison, expected) | re-runs | lost "
    "| recovery time |\n|---|---|---|---|---|---|---|---|"
)


def recovery_row(summary: dict[str, Any]) -> str:
    seconds = summary.get("recovery_seconds")
    cells = [
        summary["scenario"],
        summary["broker"],
        str(summary["events_sent"]),
        str(summary["events_handled"]),
        str(summary["events_dead_lettered"]),
        str(summary.get("reruns_after_crash", summary.get("ledger", {}).get("reruns_after_crash", "?"))),
        str(summary["lost"]),
        f"{seconds:.1f} s" if seconds is not None else "n/a",
    ]
    return "| " + " | ".join(cells) + " |"


def recovery_table(mode: str = "chaos") -> str:
    rows = []
    for path in sorted(results_dir().glob(f"{mode}-*.json")):
        data = json.loads(path.read_text())
        if "broker" in data and "events_sent" in data:
            rows.append((data["scenario"], data["broker"], recovery_row(data)))
    return "\n".join([RECOVERY_HEADER, *(r for _, _, r in sorted(rows))])


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["recovery"]:
        print(recovery_table(args[1] if len(args) > 1 else "chaos"))
    else:
        print(table(args[0] if args else "chaos"))
