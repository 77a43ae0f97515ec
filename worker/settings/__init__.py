"""One typed Settings object, read once from the environment (prefix ``IMS_WORKER_``) and a ``.env`` file.

Components take a ``Settings`` in their constructor; nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from worker.settings.errors import SettingsInvalid, describe_errors

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"

# URL schemes that name a Redis server (the ledger, dead letters and dedupe markers need one) and those
# Celery accepts as a broker. Anything else (a typo, a bare host) is refused, never replaced by localhost.
REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
BROKER_SCHEMES = (*REDIS_SCHEMES, "amqp", "amqps", "pyamqp", "sqs", "memory", "filesystem")

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _json_object(value: Any) -> Any:
    # Decoded here rather than by pydantic-settings, which stops at the first bad value with a SettingsError;
    # a ValueError becomes one entry among all the other problems.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f'must be a JSON object, e.g. {{"rtc": "realtime"}}: {exc}') from exc
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")  # noqa: TRY004 - pydantic collects only ValueError
    return value


def _scheme(url: str) -> str:
    return urlsplit(url.split(";", 1)[0]).scheme.lower() if "://" in url else ""


# A JSON object setting (``{"rtc": "realtime"}``): use for every new dict-valued setting.
JsonStrDict = Annotated[dict[str, str], NoDecode, BeforeValidator(_json_object)]
JsonIntDict = Annotated[dict[str, int], NoDecode, BeforeValidator(_json_object)]


def _split_keys(value: Any) -> Any:
    # Unset or "" is no key; anything else is split and empty items are kept (" " and " , " are empty keys):
    # the shim refuses them rather than silently arming nothing.
    if isinstance(value, str):
        return [item.strip() for item in value.split(",")] if value else []
    return value


class Settings(BaseSettings):
    """Every knob of the service. Secrets are ``SecretStr`` so that they never print."""

    model_config = SettingsConfigDict(
        env_prefix="IMS_WORKER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # --- broker and Redis -------------------------------------------------------------------------------
    broker_url: str = DEFAULT_BROKER_URL
    redis_url: str | None = Field(
        default=None, description="dedupe markers, dead letters, handler ledger; defaults to the broker URL"
    )
    # TLS for every rediss:// URL (broker and store); certificates are verified, hostnames checked.
    redis_tls_ca_file: str | None = Field(default=None, description="CA bundle; default: the system's")
    redis_tls_cert_file: str | None = Field(default=None, description="client certificate (mutual TLS)")
    redis_tls_key_file: str | None = Field(default=None, description="the client certificate's key")
    redis_tls_check_hostname: bool = True
    # sentinel://host:26379;sentinel://host2:26379/0 URLs (broker and store) name the monitored master here.
    redis_sentinel_master: str | None = None
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="for the Sentinels themselves; the master's is in the URL"
    )
    # Unset: 1 with a sentinel:// broker (a failover without it loses acknowledged events: RELIABILITY.md),
    # else 0. See ``wait_replicas``.
    redis_wait_replicas: int | None = Field(
        default=None, ge=0, le=16, description="publish waits until this many replicas have each batch (WAIT)"
    )
    redis_wait_timeout_ms: int = Field(default=1000, ge=1, le=60_000)
    broker_quorum_queues: bool = Field(
        default=True, description="amqp:// brokers: declare the task queues as RabbitMQ quorum queues"
    )

    # --- MNS consumer -----------------------------------------------------------------------------------
    mns_endpoint: str | None = None
    mns_access_key_id: str | None = None
    mns_access_key_secret: SecretStr | None = None
    mns_security_token: SecretStr | None = None
    mns_queues: CommaList = Field(default_factory=list)
    mns_pollers_per_queue: int = Field(default=2, ge=1, le=64)
    mns_batch_size: int = Field(default=16, ge=1, le=16)
    mns_wait_seconds: int = Field(default=20, ge=0, le=30)
    mns_socket_timeout: float = Field(default=45.0, gt=0, description="must exceed mns_wait_seconds")
    mns_max_dequeue_count: int = Field(default=10, ge=1)
    consumer_grace_seconds: float = Field(default=25.0, gt=0)
    consumer_metrics_host: str = "127.0.0.1"
    consumer_metrics_port: int = Field(default=9101, ge=0, le=65535, description="0 disables")
    consumer_health_file: str | None = Field(
        default=None, description="touched after every successful poll (liveness probe)"
    )
    consumer_high_water: int = Field(
        default=10_000, ge=1, description="queued task messages at which the consumer stops receiving"
    )
    consumer_low_water: int = Field(default=5_000, ge=0, description="queued task messages to resume below")
    consumer_backlog_check_ms: int = Field(
        default=500, ge=10, description="how often the pollers' shared backlog check asks Redis (LLEN)"
    )
    redis_memory_high_ratio: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="of maxmemory: above it the shim answers 503 and the consumer pauses",
    )

    # --- processing -------------------------------------------------------------------------------------
    handler_modules: CommaList = Field(default_factory=list)
    provider_modules: CommaList = Field(
        default_factory=list, description="modules that register extra providers (worker.providers)"
    )
    queue_routes: JsonStrDict = Field(
        default_factory=dict,
        description='JSON, e.g. {"rtc": "realtime"}: source -> Celery queue; default: the provider\'s queue',
    )
    task_max_attempts: int = Field(default=5, ge=1)
    retry_backoff_seconds: float = Field(default=2.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=300.0, gt=0)
    task_soft_time_limit: float = Field(default=300.0, gt=0)
    task_time_limit: float = Field(default=330.0, gt=0)
    max_redeliveries: int = Field(
        default=5, ge=1, description="times one task message may be redelivered after a worker loss"
    )
    broker_visibility_timeout: int = Field(
        default=60,
        ge=2,
        description="seconds a Redis-broker message held by a worker whose heartbeat stopped stays invisible",
    )
    handler_claim_seconds: int = Field(default=600, ge=1)
    handler_done_ttl_seconds: int = Field(default=14 * 86400, ge=60)
    flow_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        description="@handler(key=, concurrency=) holds: renewed every third of this while the handler runs, "
        "lost this long after its worker dies",
    )
    flow_busy_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        description="a run whose key is busy or whose concurrency cap is full comes back "
        "after about this long (jittered 50-150%)",
    )
    dedupe_ttl_seconds: JsonIntDict = Field(
        default_factory=dict,
        description="JSON: source -> seconds an event id stays a duplicate; default: the provider's TTL",
    )

    # --- webhook shim -----------------------------------------------------------------------------------
    shim_host: str = "127.0.0.1"
    shim_port: int = Field(default=8080, ge=0, le=65535)
    shim_public_url: str | None = None
    shim_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="largest provider sample is 3.3 KB; 100 RTC items about 25 KB"
    )
    max_events_per_request: int = Field(
        default=100, ge=1, description="events one request or MNS message may fan out to (RTC Contents)"
    )
    shim_workers: int = Field(default=1, ge=1, le=64, description="uvicorn worker processes")
    shim_read_timeout_seconds: float = Field(default=10.0, gt=0, description="to receive a whole body")
    shim_publish_timeout_seconds: float = Field(
        default=2.0, gt=0, description="for Redis to confirm; IMS gives up after 3 tries in 3 s"
    )
    shim_access_log: bool = True
    # Bounds that hold before any authentication (worker/shim/server.py, worker/shim/inflight.py).
    shim_max_inflight_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="request-body bytes held at once, all requests (503 above)",
    )
    shim_max_connections: int = Field(default=1000, ge=1, description="open connections per process")
    shim_header_timeout_seconds: float = Field(
        default=5.0, gt=0, description="to send the request line and headers, else the connection is closed"
    )
    shim_max_header_bytes: int = Field(
        default=32 * 1024, ge=1024, description="request line + headers, bytes per request (431 above)"
    )
    shim_max_header_lines: int = Field(default=100, ge=8, description="header lines per request (431 above)")
    signature_window_seconds: int = Field(default=300, ge=1)
    ims_callback_key: SecretList = Field(default_factory=list)
    live_auth_key: SecretList = Field(default_factory=list)
    rtc_app_key: SecretList = Field(default_factory=list)
    tencent_callback_key: SecretList = Field(default_factory=list)
    caster_token: SecretList = Field(default_factory=list)
    provider_keys: Annotated[dict[str, SecretList], NoDecode] = Field(
        default_factory=dict, description='JSON: keys of plugin providers, e.g. {"acme": "k1,k2"}'
    )
    shim_allow_unsigned: CommaList = Field(
        default_factory=list, description="providers whose unsigned requests are knowingly accepted"
    )
    shim_allowed_networks: CommaList = Field(
        default_factory=list, description="CIDRs unsigned requests must come from (empty: any)"
    )
    shim_trusted_proxy_hops: int = Field(
        default=0, ge=0, le=10, description="X-Forwarded-For entries appended by proxies you run"
    )
    # The durable local spool (worker/shim/spool.py): authenticated requests Redis cannot take in time.
    shim_spool_enabled: bool = Field(
        default=True,
        description="keep authenticated requests on local disk when Redis cannot take them in time "
        "(false: answer 503 instead)",
    )
    shim_spool_dir: str | None = Field(
        default=None,
        description="where each shim process keeps its spool file; default: <state_dir>/shim-spool",
    )
    shim_spool_after_ms: int = Field(
        default=500, ge=10, le=2500, description="a publish not confirmed within this is spooled instead"
    )
    shim_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=64 * 1024, description="spooled bytes per shim process (503 above)"
    )
    shim_spool_drain_per_second: int = Field(
        default=200, ge=1, description="events per second each shim process re-publishes from its spool"
    )

    # --- event journal (worker.journal: `ims-worker trace`, `events recent`, `replay`) -------------------
    journal_enabled: bool = Field(
        default=True, description="keep every event's history (`trace`, `events recent`, `replay`)"
    )
    journal_retention_seconds: int = Field(
        default=3 * 86400, ge=60, description="how long an event's history is kept"
    )
    deadletter_max_entries_per_source: int = Field(
        default=10_000, ge=10, description="dead letters kept per source at most (more: the event stays put)"
    )
    deadletter_max_bytes_per_source: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="bytes of dead letters kept per source at most (more: the event stays put)",
    )
    journal_max_events: int = Field(
        default=100_000, ge=100, description="events kept at most (oldest dropped)"
    )
    journal_max_entries_per_event: int = Field(
        default=64, ge=4, description="history lines per event at most"
    )
    journal_max_events_per_key: int = Field(default=1000, ge=1, description="events per business-key value")
    journal_payload_seconds: int = Field(
        default=86400, ge=0, description="the event kept for replay (0: not kept); at most the retention"
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="address of the Celery worker's `/metrics` (main process)"
    )
    worker_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="the worker's /metrics (main process); 0 disables"
    )
    worker_progress_file: str = Field(
        default="/tmp/ims-worker-progress.json",  # noqa: S108 - written by the worker, read by its probe
        description="where a worker's main process records its progress, for `ims-worker probe` (Redis "
        "brokers); one file per worker on a host",
    )
    worker_stall_seconds: float = Field(
        default=120.0,
        ge=10,
        description="`ims-worker probe` fails when messages wait and the worker has taken none this long",
    )

    # --- operations -------------------------------------------------------------------------------------
    log_format: Literal["json", "console"] | None = None
    log_level: str = "INFO"
    state_dir: str = ".ims-worker"

    # --- ims-worker run (supervisor, embedded services, Flower) ----------------------------------------
    run_grace_seconds: float | None = Field(
        default=None, gt=0, description="SIGTERM -> SIGKILL for run's children; default consumer grace + 5 s"
    )
    embedded_redis_port: int = Field(default=0, ge=0, le=65535, description="0: a free port")
    embedded_mns_port: int = Field(default=0, ge=0, le=65535, description="0: a free port")
    worker_concurrency: int | None = Field(
        default=None, ge=1, description="Celery -c; default: the worker profile's (CPU count, or 32 threads)"
    )
    worker_profile: Literal["io", "cpu"] = Field(
        default="cpu",
        description="pool of `celery -A worker.app worker` without pool flags: `io` (threads, 32: handlers "
        "that wait on the network, async ones overlap) or `cpu` (prefork, one process per CPU)",
    )
    flower_host: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_basic_auth: SecretStr | None = Field(
        default=None, description="user:password[,user:password]; also turns on Flower's HTTP API"
    )

    @field_validator(
        "ims_callback_key",
        "live_auth_key",
        "rtc_app_key",
        "tencent_callback_key",
        "caster_token",
        mode="before",
    )
    @classmethod
    def _comma_separated_keys(cls, value: Any) -> Any:
        return _split_keys(value)

    @field_validator(
        "mns_queues",
        "handler_modules",
        "provider_modules",
        "shim_allow_unsigned",
        "shim_allowed_networks",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if _scheme(value) not in BROKER_SCHEMES:
            raise ValueError(f"must be a broker URL ({', '.join(s + '://' for s in BROKER_SCHEMES[:5])}…)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and _scheme(value) not in REDIS_SCHEMES:
            raise ValueError(f"must be a Redis URL ({', '.join(s + '://' for s in REDIS_SCHEMES)})")
        return value or None

    @field_validator("provider_keys", mode="before")
    @classmethod
    def _comma_separated_values(cls, value: Any) -> Any:
        value = _json_object(value)
        if isinstance(value, dict):
            return {name: _split_keys(keys) for name, keys in value.items()}
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        problems = []
        if self.mns_socket_timeout <= self.mns_wait_seconds:
            problems.append(
                f"IMS_WORKER_MNS_SOCKET_TIMEOUT ({self.mns_socket_timeout}) must be longer than "
                f"IMS_WORKER_MNS_WAIT_SECONDS ({self.mns_wait_seconds}, the long poll)"
            )
        if self.consumer_low_water >= self.consumer_high_water:
            problems.append(
                f"IMS_WORKER_CONSUMER_LOW_WATER ({self.consumer_low_water}) must be below "
                f"IMS_WORKER_CONSUMER_HIGH_WATER ({self.consumer_high_water})"
            )
        if self.task_time_limit <= self.task_soft_time_limit:
            problems.append(
                f"IMS_WORKER_TASK_TIME_LIMIT ({self.task_time_limit}) must be longer than "
                f"IMS_WORKER_TASK_SOFT_TIME_LIMIT ({self.task_soft_time_limit})"
            )
        if bool(self.redis_tls_cert_file) != bool(self.redis_tls_key_file):
            problems.append(
                "IMS_WORKER_REDIS_TLS_CERT_FILE and IMS_WORKER_REDIS_TLS_KEY_FILE go together (mutual TLS)"
            )
        if not self.broker_is_redis and not self.redis_url:
            # Dedupe markers, ledgers and dead letters need Redis whatever the broker; guessing one is unsafe.
            problems.append(
                f"IMS_WORKER_REDIS_URL: required when IMS_WORKER_BROKER_URL is not Redis "
                f"({_scheme(self.broker_url)}://…): dedupe markers, ledger and dead letters live in Redis"
            )
        uses_sentinel = any(_scheme(u) == "sentinel" for u in (self.broker_url, self.redis_url or ""))
        if uses_sentinel and not self.redis_sentinel_master:
            problems.append(
                "IMS_WORKER_REDIS_SENTINEL_MASTER: required with a sentinel:// URL (redis_sentinel_master: "
                "the monitored master's name)"
            )
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @property
    def effective_redis_url(self) -> str:
        """Where dedupe markers, dead letters and handler ledgers live (validated: never a silent default)."""
        return self.redis_url or self.broker_url

    @property
    def effective_shim_spool_dir(self) -> str:
        return self.shim_spool_dir or f"{self.state_dir.rstrip('/') or '/'}/shim-spool"

    @property
    def wait_replicas(self) -> int:
        """Replicas each publish waits for: as set, else 1 behind Sentinel (safe as shipped), else 0."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if _scheme(self.broker_url) == "sentinel" else 0

    @property
    def broker_is_redis(self) -> bool:
        return _scheme(self.broker_url) in REDIS_SCHEMES

    @property
    def visibility_timeout(self) -> int:
        """The lease of a Redis-broker delivery. A live worker renews the leases of every message it holds
        (``worker.execution.lease``), so this bounds the recovery after a worker dies, not the length of a
        task."""
        return self.broker_visibility_timeout

    @property
    def lease_heartbeat_seconds(self) -> float:
        """How often a worker renews its leases: four beats per lease, at most every 10 s."""
        return min(10.0, self.visibility_timeout / 4)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once. Tests and the CLI pass overrides explicitly.

    Raises ``SettingsInvalid`` (a ``ConfigurationError``) listing every problem by its variable name.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsInvalid(describe_errors(Settings, exc)) from None
    except SettingsError as exc:  # a value pydantic-settings itself could not decode
        raise SettingsInvalid([str(exc)]) from None
    except (OSError, UnicodeDecodeError) as exc:  # an unreadable .env
        raise SettingsInvalid([f".env: cannot be read: {exc}"]) from None
