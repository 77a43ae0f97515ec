"""Docs that cannot drift: the generated references (settings, commands, log events); each command, make
target, file, link and variable the guide and the reference use; the guide stays a guide."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cli import IMS_WORKER, REPO_ROOT, clean_env, cli
from tests.mns_emulator import DEFAULT_QUEUE, running_emulator
from tests.servers import free_port
from worker.cli import build_parser
from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET
from worker.docgen import clidoc, eventsdoc, logdoc, settingsdoc
from worker.docgen.settingsdoc import required, shown_default, table
from worker.events import CATALOGUE, SOURCES
from worker.mns.progress import PROGRESS_INTERVAL_SECONDS
from worker.settings import Settings

READMES = {
    "README.md": REPO_ROOT / "README.md",
    "deploy/README.md": REPO_ROOT / "deploy" / "README.md",
    **{f"docs/{p.name}": p for p in sorted((REPO_ROOT / "docs").glob("*.md"))},
}
SETTINGS_DOC = REPO_ROOT / "docs" / "settings.md"
GUIDE_MAX_LINES = 300
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
INLINE = re.compile(r"`([^`\n]+)`")
# Files the docs tell the reader to create; they are not in the repository.
CREATED_BY_THE_READER = {"deploy/ims-worker.env", ".env"}
REPO_PATH = re.compile(
    r"^(?:worker|handlers|tests|bench|deploy|\.ci)/\S*$|^[A-Z]+\.md$|^(?:Procfile|Makefile|pyproject\.toml)$"
)


def spans(name: str) -> list[str]:
    return INLINE.findall(READMES[name].read_text())


def all_spans() -> list[tuple[str, str]]:
    return [(name, span) for name in READMES for span in spans(name)]


def generator_check(module: str) -> subprocess.CompletedProcess[str]:
    """``python -m worker.docgen.<module> --check`` as a contributor runs it, from the repository root."""
    return subprocess.run(
        [str(Path(IMS_WORKER).with_name("python")), "-m", f"worker.docgen.{module}", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_settings_table_is_generated_from_settings() -> None:
    done = cli("--version")  # the package is importable as installed
    assert done.returncode == 0
    check = generator_check("settingsdoc")
    assert check.returncode == 0, check.stderr
    reference = SETTINGS_DOC.read_text()
    for field in Settings.model_fields:
        row = next(
            line for line in reference.splitlines() if line.startswith(f"| `IMS_WORKER_{field.upper()}` |")
        )
        assert row.endswith(f"| {shown_default(field)} |"), row
    assert table().count("\n") == len(Settings.model_fields) + 1


@pytest.mark.parametrize("module", [clidoc, eventsdoc, logdoc, settingsdoc])
def test_every_generated_reference_is_current(module: object, tmp_path: Path) -> None:
    name = module.__name__.rsplit(".", 1)[1]  # type: ignore[attr-defined]
    check = generator_check(name)
    assert check.returncode == 0, check.stderr
    # The check can fail: a stale copy is refused, naming the command that regenerates it.
    stale = tmp_path / "stale.md"
    path = REPO_ROOT / module.PATH  # type: ignore[attr-defined]
    head, generated = path.read_text().split(module.BEGIN, 1)  # type: ignore[attr-defined]
    stale.write_text(head + module.BEGIN + generated.replace("| `", "| `x", 1))  # type: ignore[attr-defined]
    again = subprocess.run(
        [str(Path(IMS_WORKER).with_name("python")), "-m", f"worker.docgen.{name}", str(stale), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and f"python -m worker.docgen.{name}" in again.stderr


def test_the_events_reference_has_every_catalogued_type() -> None:
    reference = (REPO_ROOT / eventsdoc.PATH).read_text()
    builtin = [name for name, spec in CATALOGUE.items() if spec.source in SOURCES]
    assert len(builtin) >= 43
    for name in builtin:
        assert f"### `{name}`" in reference, name


def test_the_required_settings_are_what_the_commands_refuse_to_start_without(tmp_path: Path) -> None:
    """The settings reference marks as required exactly what `consume` and `shim` name when it is missing."""
    when = required()
    for_consume = {f for f, text in when.items() if "`consume`" in text}
    for_shim = {f for f, text in when.items() if "`shim`" in text}
    assert {"mns_endpoint", "mns_queues"} <= for_consume and {"ims_callback_key"} <= for_shim
    consume = cli("consume", cwd=tmp_path, env={"IMS_WORKER_LOG_FORMAT": "json"})
    assert consume.returncode == 2, consume.stderr
    for field in for_consume:
        assert f"IMS_WORKER_{field.upper()}" in consume.stderr, (field, consume.stderr)
    shim = cli("shim", "--port", str(free_port()), cwd=tmp_path, env={"IMS_WORKER_LOG_FORMAT": "json"})
    assert shim.returncode == 2, shim.stderr
    for field in for_shim:
        assert f"IMS_WORKER_{field.upper()}" in shim.stderr, (field, shim.stderr)
    rows = {
        line.split(" | ")[0][3:-1]: line
        for line in SETTINGS_DOC.read_text().splitlines()
        if line.startswith("| `IMS")
    }
    for field, text in when.items():
        assert f"| {text} |" in rows[f"IMS_WORKER_{field.upper()}"], field


def test_the_guide_is_a_guide() -> None:
    """README.md is read top to bottom in about ten minutes; the reference lives in docs/."""
    guide = READMES["README.md"].read_text()
    assert len(guide.splitlines()) <= GUIDE_MAX_LINES
    assert "settings-table" not in guide  # the 80-row table is in docs/settings.md
    for step in (
        "## Quick start",
        "## Write a handler",
        "## Test your handler",
        "## Run it in production",
        "## Operate it",
    ):
        assert step in guide, step
    for command in ("ims-worker trace", "ims-worker replay", "ims-worker dlq list", "ims-worker check"):
        assert command in guide, command


def test_every_link_in_the_docs_resolves() -> None:
    checked = 0
    for name, path in READMES.items():
        for target in LINK.findall(path.read_text()):
            if "://" in target:
                continue
            assert (path.parent / target).exists(), (name, target)
            checked += 1
    assert checked >= 10


def commands_in_docs() -> set[tuple[str, ...]]:
    """``ims-worker a b / c`` in inline code -> (a, b), (a, c); placeholders and options end a command."""
    found: set[tuple[str, ...]] = set()
    for _, span in all_spans():
        # At the start of the span, after any VAR=value assignments (not `kubectl -n ims-worker ...`).
        for match in re.finditer(r"^(?:[A-Z_]+=\S+ )*ims-worker ((?:[a-z][a-z-]*(?: / | |$))+)", span):
            words = match.group(1).split()
            command: list[str] = []
            for index, word in enumerate(words):
                if word == "/":
                    continue
                if index and words[index - 1] == "/":
                    found.add(tuple(command))
                    command = [*command[:-1], word]
                else:
                    command.append(word)
            found.add(tuple(command))
    return found


def help_of(command: tuple[str, ...]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0, command
    return out.getvalue()


def test_every_command_and_option_the_docs_name_exists() -> None:
    commands = commands_in_docs()
    assert {("run",), ("check",), ("handlers", "list"), ("dlq", "show"), ("events", "parse")} <= commands
    for command in sorted(commands):
        text = help_of(command)
        for _, span in all_spans():
            if span.startswith(f"ims-worker {' '.join(command)} "):
                for option in re.findall(r"--[a-z][a-z-]*", span):
                    assert option in text, (command, option)


def test_every_make_target_the_docs_name_exists() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    named = {t for _, span in all_spans() for t in re.findall(r"^make ([a-z-]+)", span)}
    named |= set(re.findall(r"^make ([a-z-]+)", READMES["README.md"].read_text(), re.MULTILINE))
    assert {"run", "demo", "test", "chaos"} <= named
    assert named <= targets, named - targets


def test_every_file_the_docs_name_exists() -> None:
    checked = 0
    for name, span in all_spans():
        if not REPO_PATH.match(span) or span in CREATED_BY_THE_READER:
            continue
        bases = [REPO_ROOT, REPO_ROOT / Path(name).parent]
        assert any((base / span).exists() for base in bases), (name, span)
        checked += 1
    for relative in ("systemd/ims-worker.env.example", "k8s/configmap.yaml", "k8s/secret.yaml"):
        assert (REPO_ROOT / "deploy" / relative).exists(), relative
    assert checked > 15


def test_every_variable_the_docs_name_is_a_setting() -> None:
    known = {f"IMS_WORKER_{field.upper()}" for field in Settings.model_fields}
    for name, path in READMES.items():
        named = set(re.findall(r"\bIMS_WORKER_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
        assert named <= known, (name, named - known)


def test_the_documented_progress_interval_is_the_code_s() -> None:
    readme = READMES["docs/operations.md"].read_text()
    stated = re.search(r"`mns\.progress` at most\s+every (\d+) s", readme)
    assert stated is not None and float(stated.group(1)) == PROGRESS_INTERVAL_SECONDS


def test_deploy_readme_installs_from_the_checkout(tmp_path: Path) -> None:
    text = READMES["deploy/README.md"].read_text()
    assert "pip install ims-event-worker" not in text  # not on PyPI
    assert "/opt/ims-worker/venv/bin/pip install .   # this checkout" in text


@pytest.mark.integration
def test_honcho_start_runs_the_procfile_as_deploy_readme_says(tmp_path: Path, redis_url: str) -> None:
    """`.env` with the settings, then `honcho start`: the four processes come up and the shim answers."""
    honcho = str(Path(IMS_WORKER).with_name("honcho"))
    assert "honcho start" in READMES["deploy/README.md"].read_text()
    with running_emulator() as emulator:
        port = free_port()
        (tmp_path / "Procfile").write_text((REPO_ROOT / "Procfile").read_text())
        (tmp_path / ".env").write_text(
            "\n".join(
                [
                    f"IMS_WORKER_BROKER_URL={redis_url}",
                    f"IMS_WORKER_MNS_ENDPOINT={emulator.endpoint}",
                    f"IMS_WORKER_MNS_ACCESS_KEY_ID={DEFAULT_ACCESS_KEY_ID}",
                    f"IMS_WORKER_MNS_ACCESS_KEY_SECRET={DEFAULT_ACCESS_KEY_SECRET}",
                    f"IMS_WORKER_MNS_QUEUES={DEFAULT_QUEUE}",
                    "IMS_WORKER_IMS_CALLBACK_KEY=honcho-test-callback-key-0815",
                    "IMS_WORKER_CONSUMER_METRICS_PORT=0",
                    "IMS_WORKER_WORKER_METRICS_PORT=0",  # 9102 may be held (tests/test_run_ports.py)
                    f"IMS_WORKER_FLOWER_PORT={free_port()}",
                    "IMS_WORKER_WORKER_CONCURRENCY=1",
                ]
            )
            + "\n"
        )
        process = subprocess.Popen(
            [honcho, "start", "-p", str(port)],
            cwd=tmp_path,
            # As with the virtualenv activated: the Procfile calls `ims-worker` and `celery` by name.
            env=clean_env({"PATH": f"{Path(honcho).parent}{os.pathsep}{os.environ['PATH']}"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            status = 0
            while time.monotonic() < deadline and process.poll() is None:
                url = f"http://127.0.0.1:{port}/readyz"
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
                    status = answer.status
                if status == 200:
                    break
                time.sleep(0.3)
            alive = process.poll() is None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
    assert status == 200 and alive, output[-4000:]
    before_stop = output.split("sending SIGTERM", 1)[0]
    for name in ("shim.1", "consumer.1", "worker.1", "flower.1"):
        assert f"{name} started" in before_stop, (name, output[-4000:])
    assert "stopped (rc=" not in before_stop, output[-4000:]
