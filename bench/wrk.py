"""wrk with a generated Lua script: signed POSTs rotating over several payloads, each body made unique.

A body template holds the marker ``__UNIQ__``; per request the script replaces it with ``<thread>-<counter>``
(``unique=True``), so every request is a new provider event and the shim does the full work. With
``unique=False`` the bodies repeat and the shim answers duplicates. The ``done`` hook prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

UNIQ = "__UNIQ__"


@dataclass(frozen=True)
class WrkRequest:
    path: str  # with query string
    headers: Mapping[str, str]
    body: str  # may contain UNIQ


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx_or_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _lua_string(text: str) -> str:
    # A JSON string literal of ASCII text is a valid Lua string literal (\uXXXX escapes would not be).
    if not text.isascii():
        raise ValueError("wrk payloads must be ASCII (escape them in the JSON)")
    return json.dumps(text)


def script(requests: Sequence[WrkRequest], *, unique: bool, nonce: str) -> str:
    """``nonce`` goes into every unique marker: a second wrk run never repeats the bodies of the first."""
    entries = []
    for req in requests:
        headers = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in req.headers.items())
        entries.append(
            f"  {{path = {_lua_string(req.path)}, headers = {{{headers}}}, body = {_lua_string(req.body)}}}"
        )
    table = ",\n".join(entries)
    marker = f'"{nonce}-" .. tid .. "-" .. counter' if unique else '"fixed"'
    replace = f'r.body:gsub("{UNIQ}", {marker})'
    return f"""
local reqs = {{
{table}
}}
local next_tid = 1
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
local counter = 0
function request()
  counter = counter + 1
  local r = reqs[(counter % #reqs) + 1]
  local body = ({replace})
  return wrk.format("POST", r.path, r.headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    requests: Sequence[WrkRequest],
    *,
    seconds: float,
    connections: int,
    threads: int,
    unique: bool,
    workdir: Path,
) -> WrkResult:
    lua = workdir / f"wrk-{'unique' if unique else 'dup'}.lua"
    lua.write_text(script(requests, unique=unique, nonce=uuid.uuid4().hex[:8]))
    duration = f"{max(1, round(seconds))}s"
    args = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        duration,
        "--timeout",
        "5s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        non_2xx_or_errors=data["errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )
