"""Property tests: whatever arrives, normalize() returns events or raises InvalidPayload, nothing else."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.errors import InvalidPayload
from worker.events import SOURCES, Event
from worker.providers import detect_source, normalize

SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"
SAMPLE_PAYLOADS = [
    (detect_source(p.read_bytes()), json.loads(p.read_bytes())) for p in sorted(SAMPLES.glob("*/*.json"))
]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
# Values that trip the coercions: numbers as strings, comma lists, JSON inside strings, type names.
tricky = json_values | st.sampled_from(
    ["", "1,2,3", "314", 314, "{}", "[]", "{not json", '{"a": 1}', "UserEvent", "record_started", -1, 1e300]
)


def check(source: str, raw: Any) -> None:
    try:
        events = normalize(source, raw)
    except InvalidPayload as exc:
        assert str(exc)  # always a reason
        return
    assert events
    for event in events:
        assert event.id and event.type.split(".")[0] in {"ims", "live", "rtc", "tencent", "unknown"}
        assert Event.model_validate(json.loads(json.dumps(event.model_dump(mode="json")))) == event


@PROPERTY
@given(source=st.sampled_from(SOURCES), value=json_values)
def test_arbitrary_json_values(source: str, value: Any) -> None:
    check(source, value if isinstance(value, dict) else json.dumps(value))
    check(source, json.dumps(value).encode())


@PROPERTY
@given(source=st.sampled_from(SOURCES), raw=st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_bytes_and_text(source: str, raw: bytes | str) -> None:
    check(source, raw)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if isinstance(value, dict | list) and value else []
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        found += _containers(child, (*path, key))
    return found


@st.composite
def mutated_samples(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    source, original = draw(st.sampled_from(SAMPLE_PAYLOADS))
    payload = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_containers(payload) or [()]))
        target: Any = payload
        for key in path:
            target = target[key]
        if not isinstance(target, dict | list) or not target:
            continue
        key = draw(st.sampled_from(list(target.keys()) if isinstance(target, dict) else range(len(target))))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(tricky)
    return draw(st.sampled_from([source, *SOURCES])), payload


@PROPERTY
@given(case=mutated_samples())
def test_mutated_samples(case: tuple[str, dict[str, Any]]) -> None:
    source, payload = case
    check(source, payload)
    check(source, json.dumps(payload))


@pytest.mark.parametrize(("source", "payload"), SAMPLE_PAYLOADS)
def test_every_sample_under_every_source(source: str, payload: dict[str, Any]) -> None:
    for other in SOURCES:
        check(other, payload)
