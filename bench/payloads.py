"""Benchmark traffic built from the bundled provider samples, each copy made unique.

Every identifier-looking field (keys ending in ``Id``/``ID``) gets a per-message suffix, so whatever the
dedupe id is derived from differs between messages: a benchmark measures real work, never duplicates.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import worker

SAMPLES = Path(worker.__file__).resolve().parent / "samples"


@cache
def ims_samples() -> tuple[dict[str, Any], ...]:
    """The 29 IMS samples, sorted by event type."""
    return tuple(json.loads(path.read_text()) for path in sorted((SAMPLES / "ims").glob("*.json")))


def sample(source_dir: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / source_dir / f"{name}.json").read_text())
    return loaded


def _is_id_key(key: str) -> bool:
    return key.endswith(("Id", "ID")) and key not in {"UserId", "AppId"}


def uniquify(value: Any, tag: str) -> Any:
    """A deep copy with ``-<tag>`` appended to every string identifier (nested objects and lists too)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if _is_id_key(key) and isinstance(item, str):
                out[key] = f"{item}-{tag}"
            else:
                out[key] = uniquify(item, tag)
        return out
    if isinstance(value, list):
        return [uniquify(item, tag) for item in value]
    return copy.copy(value)


def with_sent_at(payload: dict[str, Any], sent_at: float) -> dict[str, Any]:
    """Embed the send time in the IMS ``MessageBody.UserData`` (a JSON string, as IMS sends it)."""
    out = dict(payload)
    body = dict(out.get("MessageBody") or {})
    body["UserData"] = json.dumps({"bench_sent_at": sent_at})
    out["MessageBody"] = body
    return out


def sent_at_of(raw: dict[str, Any]) -> float | None:
    """The embedded send time, read back by the bench handler; None if absent."""
    body = raw.get("MessageBody")
    if not isinstance(body, dict):
        return None
    user_data = body.get("UserData")
    try:
        parsed = json.loads(user_data) if isinstance(user_data, str) else user_data
    except ValueError:
        return None
    if isinstance(parsed, dict) and isinstance(parsed.get("bench_sent_at"), int | float):
        return float(parsed["bench_sent_at"])
    return None


def ims_messages(count: int, run_tag: str) -> list[str]:
    """``count`` unique IMS event bodies (JSON text), cycling through the 29 types."""
    samples = ims_samples()
    return [
        json.dumps(uniquify(samples[i % len(samples)], f"{run_tag}-{i}"), separators=(",", ":"))
        for i in range(count)
    ]
