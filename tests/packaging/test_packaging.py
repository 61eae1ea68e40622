"""The repository's own files: the flake parses, the Makefile and CI entry point do what
the README says, and the package ships its schemas and migrations."""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_flake_parses() -> None:
    nix_instantiate = shutil.which("nix-instantiate")
    if nix_instantiate is None:
        pytest.fail("nix-instantiate is missing (`scripts/system-deps.sh test` installs nix-bin)")
    result = subprocess.run(
        [nix_instantiate, "--parse", str(ROOT / "flake.nix")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_flake_is_balanced_and_declares_a_dev_shell() -> None:
    # Without Nix we can still catch the commonest breakage: unbalanced delimiters.
    text = (ROOT / "flake.nix").read_text()
    for open_, close in ("{}", "[]", "()"):
        assert text.count(open_) == text.count(close), f"unbalanced {open_}{close}"
    assert "devShells" in text and "mkShell" in text


def test_ci_runs_make_test() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in [line.strip() for line in lines]


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:]]
    commands = [c for c in commands if c]
    assert commands[:2] == ["make up", "make test"]


def test_console_script_and_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["gate"] == "gate_runner.cli.main:main"
    assert {"test", "llamacpp"} <= set(project["optional-dependencies"])


def test_schemas_and_migrations_ship_in_the_package() -> None:
    schemas = {p.name for p in importlib.resources.files("gate_runner.schema").iterdir()}
    assert {"node.v1.json", "relay.v1.json"} <= schemas
    steps = [p.name for p in importlib.resources.files("gate_runner.migrations.state").iterdir()]
    assert "0001_init.sql" in steps


def test_every_package_is_listed_for_the_wheel() -> None:
    # The package list is explicit (schema/ and migrations/ are mapped in), so a new
    # subpackage must be added to it, or a built wheel silently leaves it out.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "gate_runner").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
