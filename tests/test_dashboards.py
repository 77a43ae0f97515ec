"""Every metric the Grafana dashboard and the alert rules in deploy/ use is exported by a real process, and
the metrics reference (docs/metrics.md) lists exactly the ``ims_worker_*`` metrics the processes export.

The consumer (``ims-worker consume`` against the MNS emulator), the shim (uvicorn) and a Celery worker run for
real; their /metrics are scraped after one event went through each path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.celery_worker import RECORDER, REPO_ROOT, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.consumer_run import consumer_env, running_consumer
from tests.mns_emulator import DEFAULT_QUEUE, running_emulator
from tests.servers import free_port
from tests.shim_server import serving
from worker.settings import load_settings
from worker.shim import ENDPOINTS, create_app, sign_request

pytestmark = pytest.mark.integration

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "ims-event-worker.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "ims-worker-alerts.yml"
METRICS_DOC = REPO_ROOT / "docs" / "metrics.md"
_NAME = re.compile(r"\bims_worker_[a-z0-9_]+\b")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load(RULES.read_text())
    found += [r["expr"] for group in rules["groups"] for r in group["rules"]]
    return found


def referenced() -> set[str]:
    return {name for expr in expressions() for name in _NAME.findall(expr)}


def exported(text: str) -> dict[str, float]:
    """Every sample name the exposition allows a query to use, with the sum of its samples."""
    names: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for suffix in _SUFFIXES:
            names.setdefault(family.name + suffix, 0.0)
        for sample in family.samples:
            names[sample.name] = names.get(sample.name, 0.0) + sample.value
    return names


def families(url: str) -> set[str]:
    """The ``ims_worker_*`` metric families a process exports, as documented: counters with ``_total``."""
    text = httpx.get(url, timeout=5).text
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
        # The parser gives prometheus_client's `_created` samples families of their own; they are not metrics.
        if family.name.startswith("ims_worker_") and not family.name.endswith("_created")
    }


def documented() -> set[str]:
    return set(re.findall(r"`(ims_worker_[a-z0-9_]+)`", METRICS_DOC.read_text()))


def scrape(url: str) -> dict[str, float]:
    answer = httpx.get(url, timeout=5)
    assert answer.status_code == 200, url
    return exported(answer.text)


def dated(name: str, event_time: str) -> bytes:
    payload = json.loads((SAMPLES_DIR / "ims" / f"{name}.json").read_text())
    payload["EventTime"] = event_time
    return json.dumps(payload).encode()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def ims_body() -> Iterator[bytes]:
    yield dated("ProduceMediaComplete", now_iso())


def test_the_files_parse_and_name_metrics() -> None:
    assert len(expressions()) >= 20
    assert {
        "ims_worker_queue_backlog",
        "ims_worker_mns_last_successful_poll_timestamp_seconds",
    } <= referenced()


def test_every_metric_the_dashboard_and_the_rules_use_is_exported(redis_url: str, ims_body: bytes) -> None:
    worker_port, consumer_port, shim_port = free_port(), free_port(), free_port()
    settings = load_settings(
        broker_url=redis_url, shim_public_url=f"http://127.0.0.1:{shim_port}", ims_callback_key="k"
    )
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": RECORDER,
        "IMS_WORKER_WORKER_METRICS_PORT": str(worker_port),
    }
    with (
        running_emulator() as mns,
        running_worker(env) as worker,
        serving(create_app(settings), shim_port) as shim_base,
    ):
        cenv = consumer_env(
            mns, redis_url, DEFAULT_QUEUE, IMS_WORKER_CONSUMER_METRICS_PORT=str(consumer_port)
        )
        with running_consumer(cenv) as consumer:
            headers, query, body = sign_request("ims", ims_body, settings)
            answer = httpx.post(shim_base + ENDPOINTS["ims"], content=body, headers=headers, params=query)
            assert answer.status_code == 200
            # A signed event dated year 1 once added 6.4e10 s to the latency sum: it is counted apart instead.
            headers, query, body = sign_request(
                "ims", dated("CreateAuditComplete", "0001-01-01T00:00:00Z"), settings
            )
            answer = httpx.post(shim_base + ENDPOINTS["ims"], content=body, headers=headers, params=query)
            assert answer.status_code == 200
            mns.send(DEFAULT_QUEUE, [dated("FileUploadComplete", now_iso()).decode()])
            metrics = f"http://127.0.0.1:{worker_port}/metrics"

            def all_handled() -> bool:
                try:
                    return scrape(metrics).get("ims_worker_events_handled_total", 0) == 3
                except httpx.HTTPError:
                    return False

            try:
                wait_until(all_handled, timeout=30)
            except TimeoutError:
                pytest.fail(f"worker:\n{worker.output()[-2000:]}\nconsumer:\n{consumer.output()[-2000:]}")
            names = {
                **scrape(f"http://127.0.0.1:{consumer_port}/metrics"),
                **scrape(f"{shim_base}/metrics"),
            }
            from_worker = scrape(metrics)
            every = set().union(
                *(families(f"{base}/metrics") for base in (f"http://127.0.0.1:{consumer_port}", shim_base)),
                families(metrics),
            )
    names.update(from_worker)
    missing = sorted(referenced() - set(names))
    assert missing == [], f"used by deploy/ but exported by no process: {missing}"
    assert sorted(every - documented()) == [], "exported but not in docs/metrics.md"
    assert sorted(documented() - every) == [], "in docs/metrics.md but exported by no process"
    assert from_worker["ims_worker_receipt_to_handled_seconds_count"] == 3
    assert from_worker["ims_worker_event_to_handled_seconds_count"] == 2
    assert from_worker["ims_worker_event_to_handled_seconds_sum"] < 3600
    assert from_worker["ims_worker_event_time_implausible_total"] == 1
    assert from_worker["ims_worker_queue_backlog"] == 0
    assert from_worker["ims_worker_redis_up"] == 1
    assert from_worker["ims_worker_journal_events"] == 3
