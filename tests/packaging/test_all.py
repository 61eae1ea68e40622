"""Every module says what it exports: ``__all__`` is a tuple of names it really has."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import gate_runner

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(gate_runner.__path__, "gate_runner.")
    if not m.name.endswith("__main__")
)


def test_the_walk_finds_the_package() -> None:
    assert "gate_runner.spec.load" in MODULES and len(MODULES) > 60


@pytest.mark.parametrize("module", MODULES)
def test_all_is_a_tuple_of_existing_names(module: str) -> None:
    imported = importlib.import_module(module)
    source = Path(imported.__file__ or "")
    if source.name == "__init__.py" and not source.read_text().strip():
        return  # an empty package marker exports nothing
    names = imported.__all__
    assert isinstance(names, tuple)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(imported, name), f"{module}.{name}"
