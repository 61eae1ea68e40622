"""The wording of JSON Schema violations: each jsonschema error becomes located issues in plain
words, with a hint (the close key, the expected form) where one helps.
"""

from __future__ import annotations

__all__ = ("describe_schema_error",)

import difflib
from collections.abc import Iterator, Mapping
from typing import Any, Final

from jsonschema import ValidationError

from gate_runner.errors import SpecIssue
from gate_runner.spec.durations import DURATION_HINT, SIZE_HINT
from gate_runner.spec.locator import Locator
from gate_runner.spec.model import HOSTPORT_HINT
from gate_runner.spec.multiaddr import MULTIADDR_HINT
from gate_runner.spec.yamlsafe import JsonPath

_NAME_HINT: Final = (
    "use lowercase letters, digits and '-', at most 63 characters, not starting or ending with '-'"
)
# (message prefix, hint) for values that fail the pattern of a shared $defs entry.
_DEF_MESSAGES: Final = {
    "duration": ("not a duration", DURATION_HINT),
    "size": ("not a size", SIZE_HINT),
    "hostPort": ("not a host:port address", HOSTPORT_HINT),
    "multiaddr": ("not a multiaddr", MULTIADDR_HINT),
    "name": ("not a valid name", _NAME_HINT),
    "envVarName": (
        "not an environment variable name",
        "give the variable's name (e.g. OPENAI_API_KEY), not its value",
    ),
}
_TYPE_WORDS: Final = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def describe_schema_error(
    error: ValidationError, *, def_names: Mapping[int, str], locator: Locator
) -> Iterator[SpecIssue]:
    """The issues ``error`` stands for (one per key for unknown and missing keys).

    ``def_names`` maps ``id()`` of each shared ``$defs`` schema to its name, so a value failing
    one is described by what it should be (a duration, a multiaddr, ...).
    """
    path: JsonPath = tuple(error.absolute_path)
    validator, expected, value = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    def_name = def_names.get(id(schema))
    if validator == "additionalProperties" and isinstance(value, Mapping):
        allowed = list(schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                yield locator.issue(
                    (*path, key), f"unknown key {key!r}", _unknown_key_hint(key, allowed)
                )
    elif validator == "required" and isinstance(value, Mapping):
        properties = schema.get("properties", {})
        for key in expected:
            if key not in value:
                description = str(properties.get(key, {}).get("description", ""))
                hint = f"add {key}" + (
                    f": {description[:1].lower()}{description[1:]}" if description else ""
                )
                yield locator.issue((*path, key), f"missing required key {key!r}", hint)
    elif validator == "type":
        if value is None:
            type_hint = "a key with nothing after it is null: give it a value or remove it"
        else:
            type_hint = _DEF_MESSAGES[def_name][1] if def_name in _DEF_MESSAGES else ""
        yield locator.issue(
            path, f"expected {_type_words(expected)}, got {_value_words(value)}", type_hint or None
        )
    elif validator == "enum":
        choices = [str(c) for c in expected]
        close = difflib.get_close_matches(str(value), choices, n=1)
        yield locator.issue(
            path,
            f"must be one of {', '.join(choices)} (got {value!r})",
            f"did you mean {close[0]!r}?" if close else None,
        )
    elif validator == "const":
        yield locator.issue(path, f"must be {expected!r} (got {value!r})")
    elif validator == "pattern":
        if def_name in _DEF_MESSAGES:
            prefix, hint = _DEF_MESSAGES[def_name]
            yield locator.issue(path, f"{prefix}: {value!r}", hint)
        else:
            yield locator.issue(
                path, f"{value!r} is not in the expected form", schema.get("description")
            )
    elif validator in ("minimum", "maximum"):
        bound = "at least" if validator == "minimum" else "at most"
        yield locator.issue(path, f"must be {bound} {expected} (got {value!r})")
    elif validator == "minItems":
        yield locator.issue(
            path, f"needs at least {expected} entr{'y' if expected == 1 else 'ies'}"
        )
    elif validator == "minLength":
        yield locator.issue(path, "must not be empty")
    elif validator == "uniqueItems":
        yield locator.issue(path, "lists the same entry twice", "remove the repeated entry")
    else:
        yield locator.issue(path, error.message)


def _unknown_key_hint(key: str, allowed: list[str]) -> str:
    by_lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    parts: list[str] = []
    if close:
        parts.append(f"did you mean {by_lower[close[0]]!r}?")
    secret_keys = [a for a in allowed if a.endswith("Env")]
    if secret_keys and any(w in key.lower() for w in ("secret", "token", "key", "password")):
        parts.append(
            "secrets never go in the spec: put the value in an environment variable "
            f"and name it in {' or '.join(secret_keys)}"
        )
    parts.append(
        f"allowed keys here: {', '.join(allowed)}" if allowed else "no keys are allowed here"
    )
    text = ""
    for part in parts[:-1]:
        text += part + (" " if part.endswith("?") else "; ")
    return text + parts[-1]


def _type_words(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected)
    return _TYPE_WORDS.get(expected, str(expected))


def _value_words(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"  # YAML dates, sets and the like
