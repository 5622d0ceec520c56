"""Set-up on a fresh clone: `make test` sets up first, and installing is quiet and idempotent.

The Makefile is checked with `make -n` (what it would run) in a scratch copy, with the
files' times set by hand; the install with setuptools' own editable-wheel hook, as pip
calls it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP_INPUTS = ("pyproject.toml", ".ci/constraints.txt")


def make_n(directory: Path, target: str) -> list[str]:
    """The commands `make TARGET` would run there, one per line."""
    # As a make of its own: under `make test`, the outer make's variables would make this
    # one a sub-make, which prints "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(
        ["make", "-n", target], cwd=directory, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in SETUP_INPUTS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def age(path: Path, seconds_ago: float) -> None:
    when = os.stat(path).st_mtime - seconds_ago
    os.utime(path, (when, when))


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_test_and_lint_set_up_first_and_only_when_the_inputs_changed(scratch: Path) -> None:
    # A fresh clone: no virtualenv. `make test` creates it and installs before pytest runs.
    for target, last in (("test", '-m pytest -q -m "not slow"'), ("lint", "lint-imports")):
        commands = make_n(scratch, target)
        assert commands[0] == "python3 -m venv .venv", commands
        install = next(i for i, c in enumerate(commands) if "pip install --quiet -c" in c)
        assert commands[-1].endswith(last) and install < len(commands) - 1

    # Installed since the inputs last changed: nothing to set up.
    (scratch / ".venv" / "bin").mkdir(parents=True)
    (scratch / ".venv" / "bin" / "python").touch()
    (scratch / ".venv" / ".installed").touch()
    for name in SETUP_INPUTS:
        age(scratch / name, 60)
    assert make_n(scratch, "test") == ['.venv/bin/python -m pytest -q -m "not slow"']

    # A changed input (new dependency, new pin): install again, but keep the virtualenv.
    for name in SETUP_INPUTS:
        age(scratch / ".venv" / ".installed", 120)
        commands = make_n(scratch, "test")
        assert not any("venv" in c and "python3" in c for c in commands), commands
        assert any("pip install" in c for c in commands), (name, commands)
        (scratch / ".venv" / ".installed").touch()


@pytest.mark.slow
def test_the_editable_install_shows_no_warning_box(tmp_path: Path) -> None:
    """What pip calls for `pip install -e .`: no setuptools warning, the root on sys.path."""
    copy = tmp_path / "project"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".venv", ".git", "*cache*", "*.egg-info", "build"),
    )
    build = (
        "import sys; from setuptools import build_meta; "
        "print(build_meta.build_editable(sys.argv[1]))"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", build, str(tmp_path / "dist")],
        cwd=copy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # setuptools' box is an `InformationOnly` warning; pip shows it as a BuildBackendWarning.
    for noise in ("Warning", "InformationOnly", "Editable installation."):
        assert noise not in done.stderr, done.stderr[-3000:]
    wheel = tmp_path / "dist" / done.stdout.splitlines()[-1]
    listing = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "__editable__.cpa_planner-0.1.0.pth" in listing
    assert "finder" not in listing  # a path entry, not setuptools' import hook
