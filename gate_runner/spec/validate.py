"""Validation of a spec document, the driver: its kind, its JSON Schema, then the rules of its kind
a schema cannot express (node_rules.py, relay_rules.py); every issue located by path and line.
"""

from __future__ import annotations

__all__ = (
    "KINDS",
    "Locator",
    "check_schema",
    "check_semantics",
    "document_kind",
    "load_schema",
    "validate_document",
)

import copy
import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator

from gate_runner.errors import SpecError, SpecIssue
from gate_runner.spec.checks import Checks
from gate_runner.spec.locator import Locator, in_file_order
from gate_runner.spec.node_rules import check_node
from gate_runner.spec.relay_rules import check_relay
from gate_runner.spec.schema_errors import describe_schema_error

KINDS: Final = ("Node", "Relay")
_SCHEMA_FILES: Final = {"Node": "node.v1.json", "Relay": "relay.v1.json"}
# The semantic rules of each kind, run on the spec section of a schema-valid document.
_RULES: Final[Mapping[str, Callable[[Checks, dict[str, Any]], None]]] = {
    "Node": check_node,
    "Relay": check_relay,
}


@functools.cache
def load_schema(kind: str) -> Mapping[str, Any]:
    """The JSON Schema of ``kind`` (shared and cached: do not mutate)."""
    text = resources.files("gate_runner.schema").joinpath(_SCHEMA_FILES[kind]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(kind))


def document_kind(
    document: Mapping[str, Any], *, locator: Locator, expect_kind: str | None = None
) -> str:
    """The document's kind, checked against KINDS and ``expect_kind``."""
    kind = document.get("kind")
    if kind not in KINDS:
        message = "missing kind" if kind is None else f"unknown kind {kind!r}"
        guess = expect_kind or "Node"
        raise SpecError(
            locator.issue(
                ("kind",), f"{message} (expected one of {', '.join(KINDS)})", f"add `kind: {guess}`"
            )
        )
    if expect_kind is not None and kind != expect_kind:
        hint = (
            "start a relay with `gate relay up -f`"
            if kind == "Relay"
            else "start a node with `gate up -f`"
        )
        raise SpecError(
            locator.issue(
                ("kind",), f"this is a {kind} spec, but a {expect_kind} spec is needed", hint
            )
        )
    return str(kind)


def validate_document(
    document: Mapping[str, Any], *, kind: str, locator: Locator
) -> dict[str, Any]:
    """Check ``document`` fully; return a normalised copy (peer ids in 12D3KooW form).

    Raises SpecError with every schema issue, or, when the schema passes, every semantic issue.
    """
    issues = check_schema(document, kind=kind, locator=locator)
    if issues:
        raise SpecError(issues)
    normalised, issues = check_semantics(document, kind=kind, locator=locator)
    if issues:
        raise SpecError(issues)
    return normalised


def check_schema(document: Any, *, kind: str, locator: Locator) -> list[SpecIssue]:
    """Every JSON Schema violation in ``document``, in document order."""
    defs = load_schema(kind).get("$defs", {})
    def_names = {id(schema): name for name, schema in defs.items()}
    return in_file_order(
        issue
        for error in _validator(kind).iter_errors(document)
        for issue in describe_schema_error(error, def_names=def_names, locator=locator)
    )


def check_semantics(
    document: Mapping[str, Any], *, kind: str, locator: Locator
) -> tuple[dict[str, Any], list[SpecIssue]]:
    """The checks beyond the schema, on a schema-valid document.

    Returns a normalised deep copy (peer ids in 12D3KooW form, also inside /p2p/ multiaddrs)
    and the issues found.
    """
    normalised: dict[str, Any] = copy.deepcopy(dict(document))
    checks = Checks(locator)
    spec = normalised.get("spec")
    if isinstance(spec, dict):
        _RULES[kind](checks, spec)
    return normalised, in_file_order(checks.issues)
