"""Environment overrides of spec fields: ``GATE_<PATH>`` (``GATE_LISTEN_API`` -> spec.listen.api),
the table of names derived from the schema, and applying them to a document.
"""

from __future__ import annotations

__all__ = (
    "ENV_PREFIX",
    "EnvOverride",
    "apply_overrides",
    "collect_overrides",
    "env_name",
    "override_table",
)

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gate_runner.errors import SpecError, SpecIssue
from gate_runner.spec.validate import load_schema
from gate_runner.spec.yamlsafe import JsonPath, format_path, parse_path, parse_yaml

ENV_PREFIX: Final = "GATE_"
# Variables the CLI and logging read for themselves; no spec path may take their names.
_RESERVED: Final = ("GATE_CONTROL", "GATE_CONFIG")
_RESERVED_PREFIXES: Final = ("GATE_LOG_",)
_CAMEL_RE: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SCALAR_TYPES: Final = frozenset({"string", "integer", "number", "boolean"})


@dataclass(frozen=True)
class EnvOverride:
    """One environment variable applied over the spec, e.g. GATE_LISTEN_API -> spec.listen.api."""

    name: str
    path: str
    value: object


@dataclass(frozen=True)
class _Target:
    path: JsonPath
    types: frozenset[str]  # JSON types of the value, or of each item when ``array``
    array: bool


def env_name(path: JsonPath) -> str:
    """``("spec", "listen", "apiKeys")`` -> ``GATE_LISTEN_API_KEYS``; metadata.name -> GATE_NAME."""
    if path == ("metadata", "name"):
        return f"{ENV_PREFIX}NAME"
    if not path or path[0] != "spec":
        raise ValueError(f"no environment override for {format_path(path)}")
    words = [_CAMEL_RE.sub("_", str(part)).upper() for part in path[1:]]
    return ENV_PREFIX + "_".join(words)


@functools.cache
def override_table(kind: str) -> Mapping[str, _Target]:
    """Every overridable field of ``kind``: scalars and lists of scalars (not lists of mappings)."""
    schema = load_schema(kind)
    defs: Mapping[str, Any] = schema.get("$defs", {})
    table: dict[str, _Target] = {}

    def resolve(node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        target = defs[ref.removeprefix("#/$defs/")]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}

    def add(path: JsonPath, types: frozenset[str], array: bool) -> None:
        name = env_name(path)
        if name in table or name in _RESERVED or name.startswith(_RESERVED_PREFIXES):
            raise RuntimeError(f"{format_path(path)} would take the env name {name}, already taken")
        table[name] = _Target(path, types, array)

    def walk(node: Mapping[str, Any], path: JsonPath) -> None:
        node = resolve(node)
        types = _types_of(node)
        if "object" in types:
            for key, child in node.get("properties", {}).items():
                walk(child, (*path, key))
        elif types == frozenset({"array"}):
            items = _types_of(resolve(node.get("items", {})))
            if items and items <= _SCALAR_TYPES:
                add(path, items, True)
        elif types and types <= _SCALAR_TYPES:
            add(path, types, False)

    walk(schema["properties"]["spec"], ("spec",))
    add(("metadata", "name"), frozenset({"string"}), False)
    return table


def _types_of(node: Mapping[str, Any]) -> frozenset[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    values = node.get("enum", [node["const"]] if "const" in node else [])
    return frozenset(_json_type(v) for v in values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def collect_overrides(env: Mapping[str, str], *, kind: str) -> tuple[EnvOverride, ...]:
    """The overrides ``env`` sets for a ``kind`` spec, sorted by name.

    Values are YAML scalars (``false``, ``3``, ``[a, b]``); a list also takes ``a,b``. An empty
    value counts as unset. Variables that match no field are ignored.
    """
    table = override_table(kind)
    overrides: list[EnvOverride] = []
    issues: list[SpecIssue] = []
    for name in sorted(n for n in env if n in table):
        raw = env[name]
        if raw.strip() == "":
            continue
        target = table[name]
        try:
            value = _value(raw, target, source=f"env {name}")
        except SpecError as e:
            issues.extend(
                SpecIssue(
                    f"cannot parse the value of {name}: {i.message}",
                    format_path(target.path),
                    f"env {name}",
                    hint="write a YAML scalar such as 127.0.0.1:9000, false, 3 or [a, b]",
                )
                for i in e.issues
            )
            continue
        overrides.append(EnvOverride(name, format_path(target.path), value))
    if issues:
        raise SpecError(issues)
    return tuple(overrides)


def _value(raw: str, target: _Target, *, source: str) -> Any:
    parsed = parse_yaml(raw, source=source, require_mapping=False).data
    if not target.array:
        return _coerce(raw, parsed, target.types)
    if isinstance(parsed, list):
        return [_coerce(str(item), item, target.types) for item in parsed]
    items = [part.strip() for part in raw.split(",") if part.strip()]
    return [
        _coerce(item, parse_yaml(item, source=source, require_mapping=False).data, target.types)
        for item in items
    ]


def _coerce(raw: str, parsed: Any, types: frozenset[str]) -> Any:
    """Keep the parsed value when its type fits; a string field takes the raw text instead."""
    kind = _json_type(parsed)
    if kind in types or (kind == "integer" and "number" in types):
        return parsed
    if "string" in types and not isinstance(parsed, (list, dict)):
        return raw.strip()  # also YAML dates and other scalars that are no JSON type
    return parsed


def apply_overrides(
    document: Mapping[str, Any], overrides: tuple[EnvOverride, ...]
) -> dict[str, Any]:
    """A deep copy of ``document`` with each override set, creating missing sections."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for override in overrides:
        path = parse_path(override.path)
        node: Any = result
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = copy.deepcopy(override.value)
    return result
