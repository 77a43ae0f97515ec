"""Running the real ``ims-worker`` executable as a user would: a clean environment, a chosen directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
IMS_WORKER = str(Path(sys.executable).parent / "ims-worker")


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without any ``IMS_WORKER_*`` variable, the repository importable, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), base.get("PYTHONPATH")]))
    base.update(env or {})
    return base


def cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMS_WORKER, *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
