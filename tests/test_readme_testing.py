"""The README's "Test your handler" example, run as a plugin author would: its own pytest, the plugin
found through the installed entry point, a private redis-server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import REPO_ROOT, clean_env
from worker.testing import sample_event, sample_payload, sample_types

BLOCK = re.compile(r"```python\n# (\S+)\n(.*?)```", re.DOTALL)


def readme_example() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Test your handler", 1)[1].split("\n## ", 1)[0]
    return {path: f"# {path}\n{body}" for path, body in BLOCK.findall(section)}


@pytest.mark.integration
def test_the_readme_example_passes(tmp_path: Path) -> None:
    files = readme_example()
    assert set(files) == {"myteam/handlers.py", "tests/test_myteam_handlers.py"}
    for path, body in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(body)
    (tmp_path / "myteam" / "__init__.py").write_text("")
    env = clean_env({"PYTHONPATH": str(tmp_path)})  # as `PYTHONPATH=. pytest`, without this repository
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_a_sample_event_exists_for_every_type_but_unknown() -> None:
    from worker.events.catalogue import CATALOGUE  # noqa: PLC0415
    from worker.providers import providers  # noqa: PLC0415

    # Built-in providers only: a test module of the same session may register a plugin provider (acme).
    builtin = {p.name for p in providers() if p.samples}
    assert set(sample_types()) == {
        t for t, spec in CATALOGUE.items() if spec.source in builtin and not t.startswith("unknown.")
    }
    for event_type in sample_types():
        assert sample_event(event_type).type == event_type


def test_overrides_merge_into_the_payload_and_change_the_id() -> None:
    base = sample_event("ims.ProduceMediaComplete")
    failed = sample_event("ims.ProduceMediaComplete", MessageBody={"Status": "Failed"})
    assert failed.raw["MessageBody"]["Status"] == "Failed"
    assert failed.raw["MessageBody"]["JobId"] == base.raw["MessageBody"]["JobId"]  # merged, not replaced
    assert failed.id != base.id
    assert sample_payload("rtc.ChannelEvent")["Contents"]  # the raw payload, a fresh copy each time
    user = sample_event("rtc.UserEvent")
    assert user.type == "rtc.UserEvent"
    with pytest.raises(KeyError, match=r"no bundled sample for 'ims\.Nope'"):
        sample_event("ims.Nope")
