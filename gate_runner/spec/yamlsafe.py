"""Reading untrusted YAML safely: size cap, strict UTF-8, one document, no duplicate or
non-string keys, no alias bombs; and a (line, column) mark for every JSON path in it.
"""

from __future__ import annotations

__all__ = (
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SPEC_BYTES",
    "JsonPath",
    "Mark",
    "ParsedYaml",
    "decode_text",
    "format_path",
    "parse_path",
    "parse_yaml",
    "read_limited",
)

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

import yaml

from gate_runner.errors import SpecError, SpecIssue

# A spec is a few KiB; the cap keeps a mistaken `-f /var/log/syslog` from being parsed at all.
MAX_SPEC_BYTES: Final = 1 << 20
# Alias expansion limits (billion laughs): the composed graph stays small, but anything that
# walks the constructed data (validation, JSON dumps) pays for every expanded node.
MAX_NODES: Final = 100_000
MAX_ALIASES: Final = 1_000
# pyyaml's constructor and jsonschema recurse; a spec is never more than a dozen levels deep.
MAX_DEPTH: Final = 64

JsonPath: TypeAlias = tuple[str | int, ...]
Mark: TypeAlias = tuple[int, int]  # (line, column), both 1-based

_ROOT_MESSAGE: Final = "the document must be a mapping with apiVersion, kind, metadata and spec"
_IDENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PATH_TOKEN_RE: Final = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')

# libyaml composes the same node graph as the pure-Python SafeLoader, several times faster.
_Loader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ParsedYaml:
    """A parsed document and where each of its JSON paths starts in the text.

    For a mapping member the mark is its key's position, for a list item the item's.
    """

    data: Any
    marks: Mapping[JsonPath, Mark] = field(default_factory=dict)
    source: str = "<spec>"


def format_path(path: JsonPath) -> str:
    """``("spec", "peers", 1, "id")`` -> ``spec.peers[1].id``; odd keys are quoted."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT_RE.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(out)


def parse_path(text: str) -> JsonPath:
    """Inverse of format_path; raises ValueError on text format_path cannot produce."""
    if not text:
        return ()
    parts: list[str | int] = []
    pos = 0
    body = text if text.startswith("[") else "." + text
    while pos < len(body):
        match = _PATH_TOKEN_RE.match(body, pos)
        if match is None:
            raise ValueError(f"not a JSON path: {text!r}")
        key, index, quoted = match.groups()
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(json.loads(quoted))
        pos = match.end()
    return tuple(parts)


def read_limited(path: str | Path, *, limit: int = MAX_SPEC_BYTES) -> bytes:
    """Read a spec file, refusing it before reading when it is larger than ``limit`` bytes."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise SpecError(_too_big(source, size, limit))
            # stat lies for pipes and /proc files: read one byte past the cap to be sure.
            data = f.read(limit + 1)
    except OSError as e:
        raise SpecError(SpecIssue(f"cannot read the spec: {e.strerror or e}", source=source)) from e
    if len(data) > limit:
        raise SpecError(_too_big(source, None, limit))
    return data


def _too_big(source: str, size: int | None, limit: int) -> SpecIssue:
    message = (
        f"the spec is too large ({size} bytes; the limit is {limit} bytes)"
        if size is not None
        else f"the spec is larger than the limit of {limit} bytes"
    )
    return SpecIssue(
        message,
        source=source,
        hint="is this the right file? a spec is a few KiB",
    )


def decode_text(data: bytes | str, *, source: str, limit: int = MAX_SPEC_BYTES) -> str:
    """Check the size and decode strict UTF-8 (a leading BOM is dropped)."""
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise SpecError(_too_big(source, size, limit))
        return data.removeprefix("\ufeff")
    if len(data) > limit:
        raise SpecError(_too_big(source, len(data), limit))
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            SpecIssue(
                f"not valid UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}",
                source=source,
                line=line,
                column=column,
                hint="save the file as UTF-8",
            )
        ) from None


def parse_yaml(text: str, *, source: str, require_mapping: bool = True) -> ParsedYaml:
    """Parse one YAML document into plain data plus marks; every problem is a SpecError."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as e:
            raise SpecError(_yaml_issue(e, text, source)) from None
        except RecursionError:
            raise SpecError(_depth_issue(source, None)) from None
        if node is None:
            if require_mapping:
                raise SpecError(SpecIssue(_ROOT_MESSAGE, source=source, line=1, column=1))
            return ParsedYaml(None, {(): (1, 1)}, source)
        if require_mapping and not isinstance(node, yaml.MappingNode):
            raise SpecError(_issue(_ROOT_MESSAGE, source=source, node=node))
        _check_graph(node, source)
        issues = sorted(_check_keys(node, source), key=lambda i: (i.line or 0, i.column or 0))
        if issues:
            raise SpecError(issues)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as e:
            raise SpecError(_yaml_issue(e, text, source)) from None
    finally:
        loader.dispose()
    marks: dict[JsonPath, Mark] = {}
    _record_marks(node, (), marks)
    return ParsedYaml(data, marks, source)


def _issue(
    message: str,
    *,
    source: str,
    node: yaml.Node | None,
    path: JsonPath = (),
    hint: str | None = None,
) -> SpecIssue:
    if node is None:
        return SpecIssue(message, format_path(path), source, hint=hint)
    mark = node.start_mark
    return SpecIssue(message, format_path(path), source, mark.line + 1, mark.column + 1, hint)


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_graph(root: yaml.Node, source: str) -> None:
    """Refuse alias bombs, self-referencing aliases and deep nesting before constructing.

    An alias is the same node object reached twice, so sizes are memoised per node and the
    walk is linear in the composed graph however large its expansion is.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    aliases = 0
    hint = "a spec needs no aliases (*name) that expand to this much"
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 0)]
    while stack:
        node, finished, depth = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_NODES:
                raise SpecError(
                    _issue(
                        f"the document expands to more than {MAX_NODES} nodes",
                        source=source,
                        hint=hint,
                        node=node,
                    )
                )
            sizes[key] = size
            continue
        if key in sizes:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise SpecError(
                    _issue(
                        f"the document uses more than {MAX_ALIASES} aliases",
                        source=source,
                        hint=hint,
                        node=node,
                    )
                )
            continue
        if key in open_nodes:
            raise SpecError(
                _issue(
                    "an alias refers to a node that contains it",
                    source=source,
                    hint="remove the recursive alias",
                    node=node,
                )
            )
        if depth > MAX_DEPTH:
            raise SpecError(_depth_issue(source, node))
        open_nodes.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node))


def _depth_issue(source: str, node: yaml.Node | None) -> SpecIssue:
    return _issue(
        f"the document is nested more than {MAX_DEPTH} levels deep",
        source=source,
        node=node,
        hint="a spec is a few levels deep; check the brackets and indentation",
    )


def _check_keys(root: yaml.Node, source: str) -> Iterator[SpecIssue]:
    """Refuse duplicate and non-string keys; runs before merge keys (<<) are flattened."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, JsonPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(node.value))))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        first_lines: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                stack.append((value, path))
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
                yield _issue(
                    f"keys must be strings, not {_tag_name(key)} ({shown})",
                    path=path,
                    source=source,
                    hint=f'quote the key: "{shown}"'
                    if isinstance(key, yaml.ScalarNode)
                    else "use a plain word as the key",
                    node=key,
                )
                continue
            name = key.value
            if name in first_lines:
                yield _issue(
                    f"duplicate key {name!r} (first defined on line {first_lines[name]})",
                    path=(*path, name),
                    source=source,
                    hint="remove one of them or merge them into one",
                    node=key,
                )
            else:
                first_lines[name] = key.start_mark.line + 1
            stack.append((value, (*path, name)))


def _tag_name(node: yaml.Node) -> str:
    tag = str(node.tag)
    return tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


def _record_marks(node: yaml.Node, path: JsonPath, marks: dict[JsonPath, Mark]) -> None:
    """Walk the constructed (merge-flattened) graph; later keys win, as in the built dict."""
    if not path:
        marks[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    stack: list[tuple[yaml.Node, JsonPath]] = [(node, path)]
    while stack:
        current, at = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                child = (*at, key.value)
                marks[child] = (key.start_mark.line + 1, key.start_mark.column + 1)
                stack.append((value, child))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                child = (*at, i)
                marks[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
                stack.append((item, child))


def _yaml_issue(error: yaml.YAMLError, text: str, source: str) -> SpecIssue:
    """Turn a pyyaml error into an issue at its line and column, with a hint for tabs."""
    line: int | None = None
    column: int | None = None
    message = str(error)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        parts = [p for p in (error.context, error.problem) if p]
        message = "; ".join(parts) if parts else "invalid YAML"
        if isinstance(error, yaml.composer.ComposerError) and "single document" in message:
            return SpecIssue(
                "the file holds more than one YAML document",
                source=source,
                line=line,
                column=column,
                hint="keep one document per file: remove the '---' separator and what follows",
            )
    elif isinstance(error, yaml.reader.ReaderError):
        position = error.position
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = error.character
        shown = chr(character) if isinstance(character, int) else str(character)
        return SpecIssue(
            f"invalid YAML: character {shown!r} is not allowed",
            source=source,
            line=line,
            column=column,
            hint='remove it; in a double-quoted string, write it as an escape such as "\\x07"',
        )
    hint = "check the indentation and quoting on this line and the one before"
    tab_line = _tab_indented_line(text, line)
    if tab_line is not None:
        line, column = tab_line, text.splitlines()[tab_line - 1].index("\t") + 1
        message = "a tab is used for indentation"
        hint = "indent with spaces, not tabs"
    return SpecIssue(f"invalid YAML: {message}", source=source, line=line, column=column, hint=hint)


def _tab_indented_line(text: str, near: int | None) -> int | None:
    """The 1-based number of a tab-indented line at or just before ``near``, if any."""
    if near is None:
        return None
    lines = text.splitlines()
    for number in (near, near - 1):
        if 1 <= number <= len(lines):
            content = lines[number - 1]
            indent = content[: len(content) - len(content.lstrip(" \t"))]
            if "\t" in indent:
                return number
    return None
