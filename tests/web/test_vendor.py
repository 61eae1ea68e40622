"""The vendored front-end files (built by `make web`, committed): each is the one the
manifest names, with its licence, at the version web/package-lock.json pins, and the web
UI's static files stay within their size budget."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gate_runner" / "components" / "control" / "static"
SHIPPED = STATIC / "vendor"
TEST_ONLY = Path(__file__).resolve().parent / "vendor"
LOCK = ROOT / "web" / "package-lock.json"
# What the UI downloads, gzipped, on a first visit: the budget is for the whole of static/.
BUDGET = 250 * 1024
# Licences that may ship inside an Apache-2.0 package without further conditions.
PERMISSIVE = {"MIT", "ISC", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "0BSD"}
FIELDS = {"name", "version", "license", "file", "sha256"}

# (vendor directory, the licences allowed there). axe-core (MPL-2.0) runs in tests only.
VENDORS = [
    pytest.param(SHIPPED, PERMISSIVE, id="shipped"),
    pytest.param(TEST_ONLY, PERMISSIVE | {"MPL-2.0"}, id="test-only"),
]


def manifest(vendor: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((vendor / "MANIFEST.json").read_text())
    return entries


def licence_file(vendor: Path, name: str) -> Path:
    # The rule web/build.mjs names licences by: "@codemirror/view" -> codemirror-view-LICENSE.
    return vendor / "licenses" / f"{name.removeprefix('@').replace('/', '-')}-LICENSE"


@pytest.mark.parametrize(("vendor", "allowed"), VENDORS)
def test_every_entry_names_a_package_and_a_file(vendor: Path, allowed: set[str]) -> None:
    entries = manifest(vendor)
    assert entries, f"{vendor}/MANIFEST.json lists nothing: run `make web`"
    for entry in entries:
        assert set(entry) == FIELDS, entry
        assert all(isinstance(entry[key], str) and entry[key] for key in FIELDS), entry


@pytest.mark.parametrize(("vendor", "allowed"), VENDORS)
def test_every_listed_file_has_its_digest(vendor: Path, allowed: set[str]) -> None:
    for entry in manifest(vendor):
        path = vendor / entry["file"]
        assert path.is_file(), f"{path} is listed but missing: run `make web`"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{path} is not the file `make web` built"


@pytest.mark.parametrize(("vendor", "allowed"), VENDORS)
def test_no_unlisted_file_in_vendor(vendor: Path, allowed: set[str]) -> None:
    present = {
        path.relative_to(vendor).as_posix()
        for path in vendor.rglob("*")
        if path.is_file() and path.parent != vendor / "licenses" and path.name != "MANIFEST.json"
    }
    listed = {entry["file"] for entry in manifest(vendor)}
    assert present == listed, f"in {vendor} but not in its MANIFEST.json: {present - listed}"


@pytest.mark.parametrize(("vendor", "allowed"), VENDORS)
def test_every_entry_has_its_licence_beside_it(vendor: Path, allowed: set[str]) -> None:
    entries = manifest(vendor)
    for entry in entries:
        path = licence_file(vendor, entry["name"])
        assert path.is_file() and path.stat().st_size > 100, f"{entry['name']}: no {path}"
        assert entry["license"] in allowed, f"{entry['name']} is {entry['license']}"
    expected = {licence_file(vendor, entry["name"]) for entry in entries}
    stray = set((vendor / "licenses").iterdir()) - expected
    assert not stray, f"licences of packages that are not vendored: {sorted(stray)}"


@pytest.mark.parametrize(("vendor", "allowed"), VENDORS)
def test_versions_are_the_locked_ones(vendor: Path, allowed: set[str]) -> None:
    # A bump in web/package.json without `make web` leaves the old files in the tree.
    locked = json.loads(LOCK.read_text())["packages"]
    for entry in manifest(vendor):
        pin = locked.get(f"node_modules/{entry['name']}", {}).get("version")
        assert pin == entry["version"], f"{entry['name']}: lock {pin}, vendored {entry['version']}"


def test_static_files_fit_the_size_budget() -> None:
    sizes = {
        path.relative_to(STATIC).as_posix(): len(gzip.compress(path.read_bytes(), 9))
        for path in sorted(STATIC.rglob("*"))
        if path.is_file()
    }
    total = sum(sizes.values())
    biggest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
    print(f"static/ gzipped: {total / 1024:.1f} KiB of {BUDGET // 1024} KiB; largest {biggest}")
    assert total < BUDGET, f"static/ is {total} bytes gzipped, over {BUDGET}: {biggest}"


def test_the_package_ships_the_static_files() -> None:
    # importlib.resources sees the tree here (an editable install); a built wheel carries
    # what package-data lists, so check that the glob is there too.
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "static/**/*" in data["package-data"]["gate_runner.components.control"]
    found = importlib.resources.files("gate_runner").joinpath(
        "components", "control", "static", "vendor", "MANIFEST.json"
    )
    assert found.is_file()
    assert {entry["file"] for entry in json.loads(found.read_text())} >= {
        "preact.js",
        "preact-hooks.js",
        "htm.js",
        "htm-preact.js",
        "uplot.js",
        "uplot.css",
        "codemirror.js",
        "uqr.js",
    }
