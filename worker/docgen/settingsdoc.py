"""The settings reference (``docs/settings.md``), generated from ``Settings``: each field's variable, when it
is required, its meaning and real default.

``python -m worker.docgen.settingsdoc`` rewrites the table in docs/settings.md between the two marker
comments; ``--check`` exits 1 if it is stale (``tests/test_docs.py`` runs the same check). A new setting
needs a meaning: ``Field(description=...)`` in ``worker/settings/`` (preferred), or an entry in ``MEANINGS``
below; the default is always read from the model, never written by hand. When a setting is required comes
from the commands that refuse to start without it (``required()``), not from prose.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import SecretStr

from worker.cli.preflight import MNS_REQUIRED
from worker.docgen import begin_marker, end_marker, replace_between
from worker.docgen import main as generate
from worker.providers import providers
from worker.settings import Settings
from worker.settings.errors import env_name

COMMAND = "python -m worker.docgen.settingsdoc"
BEGIN = begin_marker("settings-table", COMMAND)
END = end_marker("settings-table")
PATH = "docs/settings.md"

# Meanings for fields whose Field(description=...) is missing or too terse for the reference.
MEANINGS: dict[str, str] = {
    "broker_url": "Celery broker: `redis://`, `rediss://`, `sentinel://`, `amqp://`…; `ims-worker run` "
    "starts an embedded Redis when unset",
    "redis_url": "dedupe markers, dead letters, handler ledger (`redis://`, `rediss://`, `unix://`, "
    "`sentinel://`); required when the broker is not Redis, else the broker URL",
    "redis_tls_ca_file": "for every `rediss://` URL (broker and store): CA bundle; unset: the system's CAs",
    "redis_tls_cert_file": "client certificate for `rediss://` (mutual TLS; goes with the key file)",
    "redis_tls_key_file": "the client certificate's key (goes with the certificate file)",
    "redis_tls_check_hostname": "the server certificate must name the host in the URL",
    "redis_sentinel_master": "the master name the Sentinels in a `sentinel://` URL monitor (required with "
    "such a URL)",
    "redis_sentinel_password": "password of the Sentinels themselves (the master's goes in the URL)",
    "redis_wait_replicas": "publish returns only once this many replicas have the batch (`WAIT` after the "
    "script), else the publish fails and upstream retries; unset: 1 with a `sentinel://` broker (a failover "
    "without it loses acknowledged events), else 0",
    "redis_wait_timeout_ms": "how long that `WAIT` may take",
    "broker_visibility_timeout": "seconds a Redis-broker message stays leased to a worker whose heartbeat "
    "stopped (live workers renew theirs); bounds crash recovery (`docs/guarantees.md`)",
    "mns_endpoint": "`https://<account>.mns.<region>.aliyuncs.com`; `ims-worker run` starts the emulator "
    "when unset",
    "mns_access_key_id": "MNS AccessKey id; wins over the default credentials chain (docs/operations.md)",
    "mns_access_key_secret": "MNS AccessKey secret",
    "mns_security_token": "a static STS token with the pair: it expires (1 h by default) and nothing "
    "refreshes it; prefer the default chain",
    "mns_queues": "comma-separated queue names (IMS uses `ice-callback*`)",
    "mns_pollers_per_queue": "poller threads per queue, each with its own SDK client",
    "mns_batch_size": "messages per batch receive (MNS allows at most 16)",
    "mns_wait_seconds": "long-poll wait (0-30)",
    "mns_socket_timeout": "socket timeout of MNS calls; must exceed the long-poll wait",
    "mns_max_dequeue_count": "a message received more often than this is dead-lettered",
    "consumer_grace_seconds": "time to finish the batch in hand on SIGTERM",
    "consumer_metrics_host": "address of the consumer's `/healthz` and `/metrics`",
    "consumer_metrics_port": "port of the consumer's `/healthz` and `/metrics`; 0 turns them off",
    "handler_modules": "extra handler modules, comma-separated (importable: installed or on `PYTHONPATH`)",
    "task_max_attempts": "attempts of an event's task (a failing handler fails the attempt; handlers that "
    "already succeeded are skipped on the next) before dead-lettering",
    "retry_backoff_seconds": "first delay of the exponential backoff (with jitter) between attempts",
    "retry_backoff_max_seconds": "longest delay between attempts",
    "task_soft_time_limit": "seconds a task may run before it is interrupted (and retried); async handlers "
    "are cut just before",
    "task_time_limit": "seconds after which the worker process running a task is killed",
    "handler_claim_seconds": "in-progress claim per (event, handler)",
    "handler_done_ttl_seconds": "how long a handler's success per event id is remembered",
    "shim_host": "shim bind address",
    "shim_port": "shim port",
    "shim_public_url": "public base URL providers call (signatures cover it); unset: taken from the request",
    "shim_max_body_bytes": "webhook body limit (413 above it)",
    "shim_read_timeout_seconds": "time to receive a whole webhook body (408 after it)",
    "shim_publish_timeout_seconds": "longer than this to confirm the enqueue answers 503 + `Retry-After`; "
    "IMS gives up after 3 tries in 3 s",
    "shim_access_log": "one structured line per webhook request",
    "signature_window_seconds": "accepted clock skew for signed timestamps",
    "ims_callback_key": "IMS callback signing keys, comma-separated for rotation; an endpoint is served "
    "only when its key is set (or its provider is in `IMS_WORKER_SHIM_ALLOW_UNSIGNED`)",
    "live_auth_key": "ApsaraVideo Live (recording) auth keys, comma-separated",
    "rtc_app_key": "Live RTC app keys, comma-separated",
    "tencent_callback_key": "Tencent CSS callback keys, comma-separated",
    "caster_token": "production studio callback tokens (`?token=`), comma-separated",
    "log_format": "`json` or `console`; unset: console on a terminal, else JSON",
    "log_level": "log level (logs go to stderr)",
    "state_dir": "where `ims-worker run` keeps embedded Redis data and `embedded.env`",
    "run_grace_seconds": "how long `ims-worker run` waits for its children on SIGTERM; unset: consumer "
    "grace + 5 s",
    "embedded_redis_port": "port of `ims-worker run`'s embedded Redis; 0: a free port",
    "embedded_mns_port": "port of `ims-worker run`'s MNS emulator; 0: a free port",
    "worker_concurrency": "Celery worker concurrency (processes, or threads in the `io` profile), also "
    "for `ims-worker run`; unset: the profile's (CPU count for `cpu`, 32 for `io`)",
    "flower_host": "Flower's address under `ims-worker run --flower`",
    "flower_port": "Flower's port under `ims-worker run --flower`",
}


# Required under a condition the settings validators enforce (worker/settings/__init__.py, exit 2 at load).
CONDITIONAL: dict[str, str] = {
    "broker_url": "production: the default is a Redis on this host",
    "redis_url": "when the broker is not Redis",
    "redis_sentinel_master": "with a `sentinel://` URL",
    "mns_access_key_id": "no: unset, the Alibaba Cloud default credentials chain signs; set, with its secret",
    "mns_access_key_secret": "with `IMS_WORKER_MNS_ACCESS_KEY_ID`",
}


def required() -> dict[str, str]:
    """Setting -> when it is required: what ``consume`` and ``shim`` refuse to start without."""
    when = dict(CONDITIONAL)
    for field in (*MNS_REQUIRED, "mns_queues"):  # worker.cli.preflight.require_mns
        when[field] = "**yes** for `consume`"
    for spec in providers():  # worker.shim.arming: the shim serves only providers with a key
        key = spec.auth.key_setting
        if key is not None and key in Settings.model_fields:  # a plugin provider's keys: PROVIDER_KEYS
            when[key] = "`shim`: at least one provider's key (or `IMS_WORKER_SHIM_ALLOW_UNSIGNED`)"
    return when


def meaning(field: str) -> str:
    info = Settings.model_fields[field]
    text = MEANINGS.get(field) or info.description
    if not text:
        raise LookupError(
            f"setting {field!r} has no description: add Field(description=...) in worker/settings/ "
            "(or an entry in worker/docgen/settingsdoc.MEANINGS), "
            "then run `python -m worker.docgen.settingsdoc`"
        )
    return text.replace("|", "\\|")


def shown_default(field: str) -> str:
    value: Any = Settings.model_fields[field].get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "unset" if not value.get_secret_value() else "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        return "empty" if not value else f"`{','.join(map(str, value))}`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{json.dumps(value)}`"
    return f"`{value}`"


def table() -> str:
    when = required()
    rows = ["| variable | required | meaning | default |", "|---|---|---|---|"]
    rows += [
        f"| `{env_name(f)}` | {when.get(f, '')} | {meaning(f)} | {shown_default(f)} |"
        for f in Settings.model_fields
    ]
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` with the text between the markers replaced by the current table."""
    return replace_between(text, BEGIN, END, table(), where=PATH)


def main(argv: list[str] | None = None) -> int:
    return generate(argv, prog=COMMAND, doc=__doc__, default_path=PATH, render=render)


if __name__ == "__main__":
    sys.exit(main())
