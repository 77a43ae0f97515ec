"""deploy/ and the Procfile parse, and name only commands, options and settings that exist."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.bin.celery import celery as celery_command
from celery.bin.control import inspect as inspect_command
from celery.bin.worker import worker as worker_command
from flower.options import options as flower_options

from worker.cli import build_parser
from worker.execution.celerylog import check_flower_auth
from worker.settings import Settings
from worker.settings.placeholders import is_placeholder

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROCESS_TYPES = {"consumer", "shim", "worker", "flower"}
# Flower reads its own FLOWER_* variables; these are the only non-IMS_WORKER_ settings the files may set.
FLOWER_VARIABLES = {"FLOWER_BASIC_AUTH"}
DEFAULTS = Settings(_env_file=None)
SETTING_NAME = re.compile(r"\bIMS_WORKER_[A-Z0-9_]+\b")
SHELL_DEFAULT = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")
SHELL_REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")  # compose refuses to start while it is unset
SHELL_VARIABLE = re.compile(r"\$\$?\{?([A-Z0-9_]+)\}?")


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> list[dict[str, Any]]:
    paths = [p for p in sorted((DEPLOY / "k8s").glob("*.yaml")) if p.name != "kustomization.yaml"]
    return [doc for path in paths for doc in yaml_documents(path)]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_objects() if d["kind"] == "Deployment"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def systemd_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order. Repeated keys (Environment=) are legal in systemd, so no dict."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        key, sep, value = stripped.partition("=")
        assert sep and current is not None and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key), f"{path}:{number}"
        current.append((key, value.strip()))
    return sections


def unit_value(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line)  # honcho's and foreman's format
        assert match, f"not a Procfile line: {line!r}"
        entries[match[1]] = match[2]
    return entries


def expand(command: str) -> str:
    """Shell defaults (``${PORT:-8080}``) become their default; other variables a placeholder."""
    return SHELL_VARIABLE.sub("host-1", SHELL_DEFAULT.sub(lambda m: m[2], command))


# --- every command that the deploy files run ----------------------------------------------------------------
def all_commands() -> Iterator[tuple[str, list[str]]]:
    for name, command in procfile().items():
        yield f"Procfile {name}", shlex.split(expand(command))
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        for command in unit_value(systemd_unit(path), "Service", "ExecStart"):
            yield path.name, shlex.split(command)
    for name, service in compose()["services"].items():
        if name in PROCESS_TYPES:
            yield f"compose {name}", list(service["command"])
            yield f"compose {name} healthcheck", list(service["healthcheck"]["test"])
    for name, deployment in deployments().items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            yield f"k8s {name}", list(container["command"])
            for probe in ("livenessProbe", "readinessProbe"):
                exec_probe = container[probe].get("exec")
                if exec_probe:
                    yield f"k8s {name} {probe}", list(exec_probe["command"])
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec")
            if pre_stop:
                yield f"k8s {name} preStop", list(pre_stop["command"])


def option_names(params: list[Any]) -> set[str]:
    return {opt for param in params for opt in getattr(param, "opts", ())}


def check_celery(where: str, argv: list[str]) -> None:
    assert argv[1:3] == ["-A", "worker.app"], f"{where}: the app is worker.app: {argv}"
    sub, rest = argv[3], argv[4:]
    options = {"worker": option_names(worker_command.params), "inspect": option_names(inspect_command.params)}
    if sub == "flower":
        for token in rest:
            name = token.removeprefix("--").split("=", 1)[0]
            assert token.startswith("--") and name in flower_options._options, f"{where}: flower {token}"
        return
    assert sub in options, f"{where}: unknown celery command {sub}"
    if sub == "inspect":
        assert rest[0] == "ping", f"{where}: {rest}"
        rest = rest[1:]
    known = options[sub] | option_names(celery_command.params)
    for token in rest:
        if token.startswith("-"):
            assert token.split("=", 1)[0] in known, f"{where}: celery {sub} has no option {token}"


def check_command(where: str, argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "CMD":  # compose healthcheck exec form
        check_command(where, argv[1:])
    elif program == "CMD-SHELL":
        check_command(where, shlex.split(expand(argv[1])))
    elif program == "sh":
        assert argv[1] == "-c", where
        check_command(where, shlex.split(expand(argv[2])))
    elif program == "python":
        assert argv[1] == "-c", where
        compile(argv[2], where, "exec")
    elif program == "ims-worker":
        # The real parser: an unknown subcommand or option exits (SystemExit) and fails the test.
        args = build_parser().parse_args(argv[1:])
        assert callable(args.func)
    elif program == "celery":
        check_celery(where, argv)
    else:
        raise AssertionError(f"{where}: unexpected program {argv[0]}")


def test_every_command_names_existing_subcommands_and_options() -> None:
    commands = list(all_commands())
    assert len(commands) >= 20
    for where, argv in commands:
        check_command(where, argv)


def test_an_unknown_option_would_be_caught() -> None:
    with pytest.raises(SystemExit):
        check_command("probe", ["ims-worker", "shim", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_command("probe", ["celery", "-A", "worker.app", "worker", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check_command("probe", ["celery", "-A", "worker.app", "flower", "--no-such-flag=1"])


# --- settings -----------------------------------------------------------------------------------------------
def deploy_texts() -> Iterator[tuple[str, str]]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            yield str(path.relative_to(ROOT)), path.read_text()
    yield "Procfile", (ROOT / "Procfile").read_text()


def test_every_ims_worker_variable_is_a_setting() -> None:
    seen = set()
    for where, text in deploy_texts():
        for name in SETTING_NAME.findall(text):
            field = name.removeprefix("IMS_WORKER_").lower()
            assert field in Settings.model_fields, f"{where}: {name} is not a setting"
            seen.add(name)
    assert len(seen) >= 15


def as_settings(env: dict[str, Any], where: str) -> Settings:
    """The values as ``Settings`` would read them from the environment: they must validate."""
    values: dict[str, Any] = {}
    for key, value in env.items():
        if key in FLOWER_VARIABLES:
            continue
        assert key.startswith("IMS_WORKER_"), f"{where}: {key} is neither a setting nor Flower's"
        values[key.removeprefix("IMS_WORKER_").lower()] = str(value)
    return Settings(_env_file=None, **values)


def compose_value(value: object) -> str:
    """A compose value as compose passes it on once its required variables are set (inner ones first)."""
    return SHELL_DEFAULT.sub(lambda m: m[2], SHELL_REQUIRED.sub("set-by-operator", str(value)))


def k8s_secrets() -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["stringData"] for o in k8s_objects() if o["kind"] == "Secret"}


def test_configmap_secret_compose_and_env_example_values_validate() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects()}
    config = objects[("ConfigMap", "ims-worker-settings")]["data"]
    secret = {key: value for values in k8s_secrets().values() for key, value in values.items()}
    assert not set(config) & set(secret)
    settings = as_settings({**config, **secret}, "k8s")
    assert settings.consumer_metrics_host == "0.0.0.0"  # kubelet probes the pod IP
    assert settings.mns_access_key_id is None  # the consumer signs with its RAM role (RRSA), no AccessKey
    for name, service in compose()["services"].items():
        if name in PROCESS_TYPES:
            env = {k: compose_value(v) for k, v in service["environment"].items()}
            as_settings(env, f"compose {name}")
    as_settings(env_example(), "systemd/*.env.example")
    for key in secret:
        assert (
            any(word in key for word in ("SECRET", "KEY", "TOKEN", "BROKER_URL")) or key in FLOWER_VARIABLES
        )


def env_file(name: str) -> dict[str, str]:
    example = (DEPLOY / "systemd" / f"{name}.env.example").read_text()
    return dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))


ROLE_FILES = ("consumer", "shim", "flower")


def env_example() -> dict[str, str]:
    """Every example file together: what the shared file and the role files configure."""
    merged: dict[str, str] = {}
    for name in ("ims-worker", *ROLE_FILES):
        merged.update(env_file(name))
    return merged


# --- safe as shipped ----------------------------------------------------------------------------------------
# What each component's own Secret holds (besides the broker URL, in a Secret of its own that all mount).
COMPONENT_SECRETS = {
    "consumer": set(),  # its RAM role through RRSA (serviceaccount.yaml); no AccessKey
    "shim": {
        "IMS_WORKER_IMS_CALLBACK_KEY", "IMS_WORKER_LIVE_AUTH_KEY", "IMS_WORKER_RTC_APP_KEY",
        "IMS_WORKER_TENCENT_CALLBACK_KEY", "IMS_WORKER_CASTER_TOKEN",
    },
    "flower": {"FLOWER_BASIC_AUTH"},
    "worker": set(),
}  # fmt: skip
CREDENTIAL_VARIABLES = set().union(*COMPONENT_SECRETS.values())


def env_from(deployment: dict[str, Any]) -> tuple[set[str], set[str]]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = container["envFrom"]
    maps = {ref["configMapRef"]["name"] for ref in refs if "configMapRef" in ref}
    secrets = {ref["secretRef"]["name"] for ref in refs if "secretRef" in ref}
    return maps, secrets


def test_each_component_gets_only_the_secrets_it_needs() -> None:
    secrets = k8s_secrets()
    assert secrets["ims-worker-broker"] == {
        "IMS_WORKER_BROKER_URL": secrets["ims-worker-broker"]["IMS_WORKER_BROKER_URL"]
    }
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    assert "IMS_WORKER_BROKER_URL" not in config  # it may carry a password
    for component, wanted in COMPONENT_SECRETS.items():
        maps, mounted = env_from(deployments()[f"ims-worker-{component}"])
        assert maps == {"ims-worker-settings"}, component
        given = {key for name in mounted for key in secrets[name]}
        assert given == wanted | {"IMS_WORKER_BROKER_URL"}, component
        for name in mounted:
            assert name in ("ims-worker-broker", f"ims-worker-{component}"), (component, name)
    assert not set(config) & CREDENTIAL_VARIABLES


def test_each_role_reads_only_its_own_env_file_under_systemd_and_compose() -> None:
    """Flower must not see the MNS secret or a webhook key (it read one env file with all of them)."""
    assert not set(env_file("ims-worker")) & CREDENTIAL_VARIABLES
    for role in ROLE_FILES:
        assert set(env_file(role)) == COMPONENT_SECRETS[role], role
    services = compose()["services"]
    for component in COMPONENT_SECRETS:
        unit = systemd_unit(DEPLOY / "systemd" / f"ims-worker-{component}.service")
        files = unit_value(unit, "Service", "EnvironmentFile")
        # The consumer ships no credential (a RAM role) but keeps its own file for the other options.
        has_own = component in ROLE_FILES
        own = ["/etc/ims-worker/ims-worker.env"] + ([f"/etc/ims-worker/{component}.env"] if has_own else [])
        assert files == own, component
        paths = [entry["path"] for entry in services[component]["env_file"]]
        assert paths == ["ims-worker.env"] + ([f"{component}.env"] if has_own else []), component


def test_no_shipped_credential_is_one_a_process_would_accept() -> None:
    shipped = {key: value for values in k8s_secrets().values() for key, value in values.items()}
    shipped_example = {key: value for key, value in env_example().items() if key in CREDENTIAL_VARIABLES}
    assert set(shipped_example) == CREDENTIAL_VARIABLES
    for where, values in (("k8s", shipped), ("ims-worker.env.example", shipped_example)):
        for key, value in values.items():
            if key == "FLOWER_BASIC_AUTH":
                with pytest.raises(SystemExit) as refused:
                    check_flower_auth(value, "0.0.0.0")
                assert refused.value.code == 2, where
            elif key != "IMS_WORKER_BROKER_URL":
                assert is_placeholder(value), f"{where}: {key} ships a value that could be taken as real"
    text = (DEPLOY / "k8s" / "secret.yaml").read_text() + (DEPLOY / "README.md").read_text()
    assert "change-me" in text and "refuse" in text  # the README says the placeholders are refused


def test_a_network_policy_denies_by_default_and_opens_only_the_shim_to_the_world() -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in k8s_objects() if o["kind"] == "NetworkPolicy"}
    deny = [
        p
        for p in policies.values()
        if p["podSelector"] == {} and not p.get("ingress") and not p.get("egress")
    ]
    assert deny and set(deny[0]["policyTypes"]) == {"Ingress", "Egress"}
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments().items()}

    def selects(selector: dict[str, Any], pod: dict[str, str]) -> bool:
        if not selector:
            return True
        ok = all(pod.get(k) == v for k, v in selector.get("matchLabels", {}).items())
        for expr in selector.get("matchExpressions", []):
            assert expr["operator"] == "In"
            ok = ok and pod.get(expr["key"]) in expr["values"]
        return ok

    open_to_all: dict[str, set[int]] = {name: set() for name in labels}
    any_ingress: dict[str, set[int]] = {name: set() for name in labels}
    for policy in policies.values():
        for rule in policy.get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            for name, pod in labels.items():
                if selects(policy["podSelector"], pod):
                    any_ingress[name] |= ports
                    if not rule.get("from"):
                        open_to_all[name] |= ports
    assert open_to_all == {
        "ims-worker-shim": {8080}, "ims-worker-consumer": set(), "ims-worker-worker": set(),
        "ims-worker-flower": set(),
    }  # fmt: skip
    assert any_ingress["ims-worker-worker"] == {9102}  # its /metrics, from the monitoring namespace only


DIGEST = re.compile(r"[a-z0-9.-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}")


def test_images_are_pinned_by_tag_and_base_images_by_digest() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = [c["image"] for d in deployments().values() for c in d["spec"]["template"]["spec"]["containers"]]
    images += [s["image"] for s in compose()["services"].values()]
    images.append(compose()["x-app"]["image"])
    for image in images:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and not tag.startswith("7-"), image
        if name == "ims-event-worker":
            assert tag == version, image  # ours: built from this checkout
        else:
            assert DIGEST.fullmatch(image), f"{image}: a base image is pinned by digest"
    bases = [
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert bases and all(DIGEST.fullmatch(base) for base in bases), bases


def test_the_build_backend_is_installed_with_hashes() -> None:
    """pip's build isolation fetched setuptools with no hash: the image installs it from a hashed lock."""
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    lock = (DEPLOY / "build-requirements.lock").read_text()
    for requirement in backend:
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0]
        assert re.search(rf"^{name}==[^\s]+ \\\n\s+--hash=sha256:[0-9a-f]{{64}}", lock, re.MULTILINE), name
    text = (DEPLOY / "Dockerfile").read_text()
    assert "pip install --require-hashes -r build-requirements.lock" in text
    assert "pip install --no-deps --no-build-isolation ." in text
    assert "!deploy/build-requirements.lock" in (DEPLOY / "Dockerfile.dockerignore").read_text()


def test_compose_requires_the_env_files_and_publishes_only_the_shim_on_loopback() -> None:
    document = compose()
    for name in PROCESS_TYPES:
        assert all(entry["required"] is True for entry in document["services"][name]["env_file"]), name
    published = {name: s["ports"] for name, s in document["services"].items() if s.get("ports")}
    assert set(published) == {"shim"}
    (mapping,) = published["shim"]
    host = SHELL_DEFAULT.sub(lambda m: m[2], mapping).rsplit(":", 2)[0]
    assert host == "127.0.0.1", mapping


# --- Kubernetes ---------------------------------------------------------------------------------------------
def test_kubernetes_has_a_deployment_per_process_with_real_probes() -> None:
    found = deployments()
    assert set(found) == {f"ims-worker-{p}" for p in PROCESS_TYPES}
    for name, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        maps, secrets = env_from(deployment)
        assert maps == {"ims-worker-settings"} and "ims-worker-broker" in secrets, name
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            http = container[probe].get("httpGet")
            if http:
                assert http["port"] in ports, f"{name} {probe}: no container port {http['port']}"
            else:
                assert "exec" in container[probe], f"{name} {probe}"
    shim = found["ims-worker-shim"]["spec"]["template"]["spec"]["containers"][0]
    assert shim["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert shim["readinessProbe"]["httpGet"]["path"] == "/readyz"
    consumer = found["ims-worker-consumer"]["spec"]["template"]["spec"]["containers"][0]
    assert consumer["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert {"name": "metrics", "containerPort": DEFAULTS.consumer_metrics_port} in consumer["ports"]
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    readiness = " ".join(consumer["readinessProbe"]["exec"]["command"])
    assert config["IMS_WORKER_CONSUMER_HEALTH_FILE"] in readiness
    worker = found["ims-worker-worker"]["spec"]["template"]["spec"]["containers"][0]
    # Liveness is progress (ping is answered by a worker whose consumer stopped: readiness only).
    assert worker["livenessProbe"]["exec"]["command"] == ["ims-worker", "probe"]
    assert "inspect ping -d celery@$HOSTNAME" in " ".join(worker["readinessProbe"]["exec"]["command"])


def test_kubernetes_grace_periods_outlast_the_processes() -> None:
    found = deployments()
    grace = {n: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for n, d in found.items()}
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
    consumer_grace = float(config.get("IMS_WORKER_CONSUMER_GRACE_SECONDS", DEFAULTS.consumer_grace_seconds))
    assert grace["ims-worker-consumer"] > consumer_grace
    assert grace["ims-worker-consumer"] > DEFAULTS.consumer_grace_seconds
    assert grace["ims-worker-worker"] > DEFAULTS.task_time_limit


def test_kubernetes_pdbs_select_deployments_and_kustomization_lists_every_file() -> None:
    labels = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] for d in deployments().values()
    }
    pdbs = [o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"]
    assert pdbs
    for pdb in pdbs:
        assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] in labels
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# --- compose, systemd, Dockerfile, Procfile -----------------------------------------------------------------
def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_compose_redis_is_durable_and_stop_periods_outlast_the_processes() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", *SENTINEL_PROFILE, *PROCESS_TYPES}
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command
    # Without maxmemory the near-full 503 and the consumer's pause never engage; without a password anyone on
    # the network reads and drops events. Compose refuses to start without REDIS_PASSWORD.
    assert "--maxmemory ${REDIS_MAXMEMORY:-1gb}" in redis_command
    assert re.search(r"--requirepass \$\{REDIS_PASSWORD:\?", redis_command)
    assert seconds(services["consumer"]["stop_grace_period"]) > DEFAULTS.consumer_grace_seconds
    assert seconds(services["worker"]["stop_grace_period"]) > DEFAULTS.task_time_limit
    for name in PROCESS_TYPES:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        broker = compose_value(services[name]["environment"]["IMS_WORKER_BROKER_URL"])
        assert broker == "redis://:set-by-operator@redis:6379/0"


SENTINEL_PROFILE = {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}


def test_compose_has_a_sentinel_profile_primary_replica_three_sentinels() -> None:
    """``--profile sentinel``: what RELIABILITY.md's failover needs to lose nothing acknowledged."""
    services = compose()["services"]
    for name in SENTINEL_PROFILE:
        assert services[name]["profiles"] == ["sentinel"], name
    assert all("profiles" not in services[name] for name in {"redis", *PROCESS_TYPES})
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica and "--masterauth" in replica
    for name in ("redis", "redis-replica"):  # either may be the primary after a failover
        command = " ".join(services[name]["command"])
        assert "--min-replicas-to-write ${REDIS_MIN_REPLICAS_TO_WRITE:-0}" in command, name
        assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command, name
    monitors = [" ".join(services[f"sentinel-{i}"]["command"]) for i in (1, 2, 3)]
    assert all("sentinel monitor ims-redis redis 6379 2" in m for m in monitors)  # quorum: 2 of 3
    broker = services["worker"]["environment"]["IMS_WORKER_BROKER_URL"]
    assert broker.startswith("${BROKER_URL:-"), broker  # the profile's sentinel:// URL replaces it
    sentinel = Settings(broker_url="sentinel://:pw@sentinel-1:26379/0", redis_sentinel_master="ims-redis")
    assert sentinel.wait_replicas == 1  # safe as shipped behind Sentinel


def test_systemd_units_run_unprivileged_restart_on_failure_and_outwait_the_grace_periods() -> None:
    units = {p.stem: systemd_unit(p) for p in (DEPLOY / "systemd").glob("*.service")}
    assert set(units) == {f"ims-worker-{p}" for p in PROCESS_TYPES}
    for name, unit in units.items():
        assert {"Unit", "Service", "Install"} <= set(unit), name
        assert unit_value(unit, "Service", "User") == ["ims-worker"], name
        assert unit_value(unit, "Service", "Restart") == ["on-failure"], name
        assert unit_value(unit, "Service", "EnvironmentFile")[0] == "/etc/ims-worker/ims-worker.env", name
        assert unit_value(unit, "Service", "KillMode") == ["mixed"], name
    stop = {name: float(unit_value(u, "Service", "TimeoutStopSec")[0]) for name, u in units.items()}
    assert stop["ims-worker-consumer"] > DEFAULTS.consumer_grace_seconds
    assert stop["ims-worker-worker"] > DEFAULTS.task_time_limit
    target = systemd_unit(DEPLOY / "systemd" / "ims-worker.target")
    wanted = " ".join(unit_value(target, "Unit", "Wants")).split()
    assert all(f"{w.removesuffix('.service')}" in units for w in wanted)


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert any("COPY --from=build" in line for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    probe = re.search(r"CMD (\[.*?\])\n", text[text.index("HEALTHCHECK") :])
    assert probe
    check_command("Dockerfile HEALTHCHECK", yaml.safe_load(probe[1]))
    cmd = next(line for line in reversed(lines) if line.startswith("CMD "))
    check_command("Dockerfile CMD", yaml.safe_load(cmd[4:]))


def test_procfile_has_the_four_process_types() -> None:
    assert set(procfile()) == PROCESS_TYPES
    assert "-E" in shlex.split(procfile()["worker"]), "Flower needs task events"


def test_the_consumer_signs_with_a_ram_role_and_each_credential_option_is_documented() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects()}
    account = objects[("ServiceAccount", "ims-worker-consumer")]
    assert account["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"]
    namespace = next(o for o in k8s_objects() if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-identity.alibabacloud.com/injection"] == "on"
    pod = deployments()["ims-worker-consumer"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ims-worker-consumer"
    assert ("Secret", "ims-worker-consumer") not in objects  # no AccessKey in the consumer's Secret...
    assert "IMS_WORKER_MNS_ACCESS_KEY_SECRET: change-me" in (DEPLOY / "k8s" / "secret.yaml").read_text()
    example = (DEPLOY / "systemd" / "consumer.env.example").read_text()  # ...the variant beside it
    for option in (
        "#ALIBABA_CLOUD_ECS_METADATA=",
        "#ALIBABA_CLOUD_CREDENTIALS_URI=",
        "#IMS_WORKER_MNS_ACCESS_KEY_ID",
    ):
        assert option in example
    assert "ALIBABA_CLOUD_CREDENTIALS_URI" in (DEPLOY / "docker-compose.yml").read_text()
    readme = (DEPLOY / "README.md").read_text()
    for action in ("mns:ReceiveMessage", "mns:DeleteMessage", "mns:GetQueueAttributes"):
        assert action in readme
    assert "ims-worker check" in readme and "acs:mns:" in readme


# --- the worker profile chooses the pool ------------------------------------------------------------------
POOL_FLAGS = {"-P", "--pool", "-c", "--concurrency"}


def test_every_worker_is_started_without_pool_flags_and_given_a_profile() -> None:
    workers = [(where, argv) for where, argv in all_commands() if "worker.app worker" in " ".join(argv)]
    assert {w.split()[0] for w, _ in workers} >= {"Procfile", "ims-worker-worker.service", "compose", "k8s"}
    for where, argv in workers:
        flags = {arg.split("=", 1)[0] for arg in argv} & POOL_FLAGS
        assert not flags, f"{where}: {flags} would override IMS_WORKER_WORKER_PROFILE"
    objects = {(o["kind"], o["metadata"]["name"]): o for o in k8s_objects()}
    profiles = {
        "k8s": objects[("ConfigMap", "ims-worker-settings")]["data"]["IMS_WORKER_WORKER_PROFILE"],
        "compose": compose()["services"]["worker"]["environment"]["IMS_WORKER_WORKER_PROFILE"],
        "systemd": env_example()["IMS_WORKER_WORKER_PROFILE"],
    }
    assert set(profiles.values()) == {"io"}, profiles  # as shipped: handlers that wait (README)
