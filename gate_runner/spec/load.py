"""The load pipeline: read safely -> migrate -> validate -> env overrides -> typed spec; plus the
canonical text and digest of a document, used for diffs and the spec history.
"""

from __future__ import annotations

__all__ = (
    "NODE",
    "RELAY",
    "LoadedSpec",
    "SpecKind",
    "canonical_yaml",
    "load_spec",
    "load_spec_file",
    "migrate_text",
    "spec_digest",
)

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from gate_runner.errors import SpecError
from gate_runner.migrations.spec import CURRENT_VERSION, migrate
from gate_runner.spec.envoverride import EnvOverride, apply_overrides, collect_overrides
from gate_runner.spec.locator import Locator
from gate_runner.spec.model import NodeSpec, RelaySpec, build_node_spec, build_relay_spec
from gate_runner.spec.validate import document_kind, validate_document
from gate_runner.spec.write import canonical_yaml, render_update
from gate_runner.spec.yamlsafe import decode_text, parse_path, parse_yaml, read_limited

S = TypeVar("S", covariant=True)


@dataclass(frozen=True)
class SpecKind(Generic[S]):
    """A kind of spec document: the name in its ``kind:`` field and how a validated document
    becomes the typed spec (``base_dir`` anchors a relative dataDir)."""

    name: str
    build: Callable[[Mapping[str, Any], Path | None], S]


NODE = SpecKind[NodeSpec](
    "Node", lambda document, base_dir: build_node_spec(document, base_dir=base_dir)
)
RELAY = SpecKind[RelaySpec](
    "Relay", lambda document, base_dir: build_relay_spec(document, base_dir=base_dir)
)
_KINDS: dict[str, SpecKind[NodeSpec | RelaySpec]] = {k.name: k for k in (NODE, RELAY)}


@dataclass(frozen=True)
class LoadedSpec(Generic[S]):
    """A spec accepted by the pipeline.

    ``document`` is the migrated, validated and normalised document without env overrides: what
    is stored in the history and written back. ``spec`` is the typed form with overrides applied.
    """

    kind: str  # "Node" | "Relay"
    document: dict[str, Any]
    spec: S
    overrides: tuple[EnvOverride, ...]
    migrated_from: str | None  # the original apiVersion when a migration ran
    source: str


@overload
def load_spec(
    data: bytes | str,
    *,
    kind: SpecKind[S],
    source: str = ...,
    env: Mapping[str, str] | None = ...,
    base_dir: Path | None = ...,
) -> LoadedSpec[S]: ...
@overload
def load_spec(
    data: bytes | str,
    *,
    kind: None = ...,
    source: str = ...,
    env: Mapping[str, str] | None = ...,
    base_dir: Path | None = ...,
) -> LoadedSpec[NodeSpec | RelaySpec]: ...
def load_spec(
    data: bytes | str,
    *,
    kind: SpecKind[Any] | None = None,
    source: str = "<spec>",
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> LoadedSpec[Any]:
    """Load a spec from text, of ``kind`` when given, else of the kind the document names.
    ``env`` defaults to os.environ; a relative dataDir is taken relative to ``base_dir``
    (default: the current directory), so a spec applied over RPC resolves like the node's own
    file. Raises SpecError listing every issue of the failing stage.
    """
    return _load(data, source=source, env=env, kind=kind, base_dir=base_dir)


@overload
def load_spec_file(
    path: str | Path, *, kind: SpecKind[S], env: Mapping[str, str] | None = ...
) -> LoadedSpec[S]: ...
@overload
def load_spec_file(
    path: str | Path, *, kind: None = ..., env: Mapping[str, str] | None = ...
) -> LoadedSpec[NodeSpec | RelaySpec]: ...
def load_spec_file(
    path: str | Path, *, kind: SpecKind[Any] | None = None, env: Mapping[str, str] | None = None
) -> LoadedSpec[Any]:
    """Load a spec file (at most 1 MiB); a relative dataDir is relative to the file's directory."""
    data = read_limited(path)
    base_dir = Path(path).absolute().parent
    return _load(data, source=str(path), env=env, kind=kind, base_dir=base_dir)


def _load(
    data: bytes | str,
    *,
    source: str,
    env: Mapping[str, str] | None,
    kind: SpecKind[Any] | None,
    base_dir: Path | None,
) -> LoadedSpec[Any]:
    parsed = parse_yaml(decode_text(data, source=source), source=source)
    file_locator = Locator(source, parsed.marks)
    document, migrated_from = _migrate(parsed.data, file_locator)
    # After a migration the file's line numbers describe the old shape, not this document.
    locator = (
        file_locator
        if migrated_from is None
        else Locator(
            source,
            note=f"in the {CURRENT_VERSION} form of this {migrated_from} file; "
            "`gate migrate -f` rewrites it",
        )
    )
    name = document_kind(
        document, locator=locator, expect_kind=kind.name if kind is not None else None
    )
    spec_kind = _KINDS[name]
    normalised = validate_document(document, kind=name, locator=locator)

    overrides = collect_overrides(os.environ if env is None else env, kind=name)
    effective = normalised
    if overrides:
        names = ", ".join(o.name for o in overrides)
        env_locator = Locator(
            source,
            locator.marks,
            overrides={parse_path(o.path): o.name for o in overrides},
            note=f"with the environment overrides {names}",
        )
        effective = validate_document(
            apply_overrides(normalised, overrides), kind=name, locator=env_locator
        )
        if any(o.path == "spec.dataDir" for o in overrides):
            base_dir = None  # a path given in the environment is relative to the current directory
    spec = spec_kind.build(effective, base_dir)
    return LoadedSpec(name, normalised, spec, overrides, migrated_from, source)


def _migrate(document: dict[str, Any], locator: Locator) -> tuple[dict[str, Any], str | None]:
    try:
        # Typed here: mypy sees gate_runner.migrations only through the install's import hook.
        result: tuple[dict[str, Any], str | None] = migrate(document)
    except SpecError as e:
        raise SpecError([locator.relocate(issue) for issue in e.issues]) from None
    return result


def migrate_text(data: bytes | str, *, source: str) -> tuple[str, str | None]:
    """For ``gate migrate -f``: the file's text upgraded to the current apiVersion, and the old
    apiVersion (None, with the text unchanged, when it is already current).

    Comments survive where the new document keeps the old keys. The result is validated first,
    so a migration never writes a spec that would not load.
    """
    text = decode_text(data, source=source)
    parsed = parse_yaml(text, source=source)
    document, migrated_from = _migrate(parsed.data, Locator(source, parsed.marks))
    if migrated_from is None:
        return text, None
    locator = Locator(source, note=f"in the migrated form of this {migrated_from} file")
    kind = document_kind(document, locator=locator)
    validate_document(document, kind=kind, locator=locator)
    return render_update(text, document), migrated_from


def spec_digest(document: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``document``: equal specs, equal digests."""
    text = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not part of a spec document")
