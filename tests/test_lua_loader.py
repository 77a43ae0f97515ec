"""The Lua loader (``worker.lua``): every script a file, assembled with its includes, shipped in the wheel."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker import lua

ROOT = Path(__file__).resolve().parent.parent
LUA_DIR = ROOT / "worker" / "lua"


def test_every_lua_file_is_a_script_or_a_fragment() -> None:
    on_disk = {p.stem for p in LUA_DIR.glob("*.lua")}
    assert on_disk == set(lua.SCRIPTS) | set(lua.FRAGMENTS)


@pytest.mark.parametrize("name", lua.SCRIPTS)
def test_each_script_documents_its_keys_and_argv_and_resolves_its_includes(name: str) -> None:
    text = (LUA_DIR / f"{name}.lua").read_text()
    head = "\n".join(line for line in text.splitlines() if line.startswith("--"))
    assert text.startswith("-- "), f"{name}.lua starts with a comment saying what it does"
    assert "KEYS[" in head and "ARGV[" in head
    assembled = lua.source(name)
    assert "--! include" not in assembled
    for fragment in re.findall(r"^--! include (\w+)$", text, re.MULTILINE):
        assert (LUA_DIR / f"{fragment}.lua").read_text() in assembled


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown Lua script"):
        lua.source("journal")  # a fragment is not a script


def test_no_python_module_holds_lua_source() -> None:
    # A script's telltale: a string calling redis.call in any module of the package or the benches.
    offenders = []
    for path in [*ROOT.joinpath("worker").rglob("*.py"), *ROOT.joinpath("bench").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "redis.call(" in node.value:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_an_installed_wheel_finds_its_scripts(tmp_path: Path) -> None:
    """Built and installed as a user would (pip), then loaded from another directory."""
    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # Built from a copy: building in place would leave build/ and *.egg-info in the working tree.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("worker", "handlers"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)], check=True, capture_output=True
    )
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    code = (
        "import worker.lua as lua, sys; "
        "assert lua.__file__.startswith(sys.argv[1]), lua.__file__; "
        "print(sum(len(lua.source(n)) > 0 for n in lua.SCRIPTS))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(lua.SCRIPTS)
