"""The chain of spec upgrades, oldest first, and ``migrate`` that walks a document up it.

Each step is a pure dict -> dict function; adding an apiVersion is one module and one line here.
"""

from __future__ import annotations

__all__ = ("CURRENT_VERSION", "MIGRATIONS", "SUPPORTED_VERSIONS", "Migration", "migrate")

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gate_runner.errors import SpecError, SpecIssue

from . import v1alpha1_to_v1

CURRENT_VERSION: Final = "gate.hellas.ai/v1"


@dataclass(frozen=True)
class Migration:
    """One upgrade step: documents of ``from_version`` become ``to_version``.

    ``upgrade`` does no I/O, does not mutate its input, and raises SpecError (with paths in the
    old document) for anything it cannot carry over.
    """

    from_version: str
    to_version: str
    upgrade: Callable[[Mapping[str, Any]], dict[str, Any]]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(v1alpha1_to_v1.FROM_VERSION, v1alpha1_to_v1.TO_VERSION, v1alpha1_to_v1.upgrade),
)
SUPPORTED_VERSIONS: Final = (CURRENT_VERSION, *(m.from_version for m in reversed(MIGRATIONS)))


def migrate(document: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Upgrade ``document`` to CURRENT_VERSION; returns it and the original apiVersion (None when
    it was already current). Raises SpecError for a missing or unknown apiVersion.
    """
    version = document.get("apiVersion")
    if version == CURRENT_VERSION:
        return dict(document), None
    steps = {m.from_version: m for m in MIGRATIONS}
    if not isinstance(version, str) or version not in steps:
        supported = ", ".join(SUPPORTED_VERSIONS)
        message = (
            "missing apiVersion"
            if version is None
            else f"unsupported apiVersion {version!r} (supported: {supported})"
        )
        raise SpecError(
            SpecIssue(
                message, "apiVersion", hint=f"start the file with `apiVersion: {CURRENT_VERSION}`"
            )
        )
    current: dict[str, Any] = dict(document)
    while current.get("apiVersion") != CURRENT_VERSION:
        step = steps[current["apiVersion"]]
        current = step.upgrade(current)
        if current.get("apiVersion") != step.to_version:
            raise RuntimeError(f"the {step.from_version} upgrade did not produce {step.to_version}")
    return current, version
