"""`gate migrate -f`: a spec file rewritten in the current apiVersion, its comments carried to
where their keys moved."""

from __future__ import annotations

__all__ = ("carry_comments", "migrate_file_text")

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from gate_runner.errors import SpecError
from gate_runner.migrations.spec import migrate
from gate_runner.spec import migrate_text
from gate_runner.spec.yamlsafe import JsonPath, ParsedYaml, parse_yaml

# Tokens that mark no text of their own (a block's start or end sits wherever the next thing is).
_SILENT = (
    yaml.StreamStartToken,
    yaml.StreamEndToken,
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.BlockEndToken,
)
_KEPT = (("apiVersion",), ("kind",))  # what a migration dispatches on: never replaced by a marker


def migrate_file_text(text: str, *, source: str) -> tuple[str, str | None]:
    """The file's text in the current apiVersion and the apiVersion it had (None, with the text
    unchanged, when it is current). Validated like a load; comments survive where the keys
    stayed (spec.write) and, here, also where the migration moved them."""
    new_text, old_version = migrate_text(text, source=source)
    if old_version is None:
        return text, None
    return carry_comments(text, new_text, source=source), old_version


@dataclass(frozen=True)
class _Comment:
    anchor: JsonPath | None  # the entry on its line or below it; None: the file's end
    text: str  # from the '#' on
    above: bool  # a line of its own above the entry, rather than at the end of its line


def carry_comments(old_text: str, new_text: str, *, source: str) -> str:
    """``new_text`` (the migrated document) with the comments of ``old_text`` that it lost put
    back at the new place of the entry they were on or above. Falls back to ``new_text``
    unchanged when anything is unclear: the data never changes, only comments are added."""
    try:
        old = parse_yaml(old_text, source=source)
        new = parse_yaml(new_text, source=source)
        comments = list(_comments(old_text, old))
        kept = collections.Counter(c.text for c in _comments(new_text, new))
    except (SpecError, yaml.YAMLError):
        return new_text
    moves = _moves(old)
    lines = new_text.splitlines()
    above: dict[int, list[str]] = collections.defaultdict(list)
    after: dict[int, list[str]] = collections.defaultdict(list)
    trailer: list[str] = []
    for comment in comments:
        if kept[comment.text] > 0:
            kept[comment.text] -= 1  # already there: the key did not move
            continue
        target = None if comment.anchor is None else _target(comment.anchor, moves, new)
        if target is None:
            trailer.append(comment.text)
            continue
        at = new.marks[target][0] - 1
        (above if comment.above else after)[at].append(comment.text)
    if not (above or after or trailer):
        return new_text
    out: list[str] = []
    for number, line in enumerate(lines):
        indent = line[: len(line) - len(line.lstrip(" "))]
        out.extend(indent + text for text in above.get(number, ()))
        out.append("  ".join([line, *after.get(number, ())]))
    out.extend(trailer)
    result = "\n".join(out) + "\n"
    try:
        same = parse_yaml(result, source=source).data == new.data
    except SpecError:
        same = False
    return result if same else new_text


def _comments(text: str, parsed: ParsedYaml) -> Iterator[_Comment]:
    """Every comment of ``text`` with the entry it belongs to, in file order. A '#' inside a
    quoted or block scalar is text, not a comment: the scanner's tokens say where text is."""
    lines = text.splitlines()
    content_end: dict[int, int] = {}  # 0-based line -> column after its last token
    inside: set[int] = set()  # lines within a token that spans lines
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, _SILENT):
            continue
        start, end = token.start_mark, token.end_mark
        inside.update(range(start.line, end.line))
        content_end[end.line] = max(content_end.get(end.line, 0), end.column)
    anchors: dict[int, JsonPath] = {}
    for path, (row, _) in parsed.marks.items():
        if row - 1 not in anchors or len(path) < len(anchors[row - 1]):
            anchors[row - 1] = path  # the outermost entry that starts on the line
    pending: list[str] = []  # comment lines waiting for the entry below them
    last: JsonPath = ()
    for number, line in enumerate(lines):
        if number in inside:
            continue
        end = content_end.get(number, 0)
        rest = line[end:].strip()
        comment = rest if rest.startswith("#") else None
        has_content = bool(line[:end].strip())
        if has_content:
            anchor = anchors.get(number, last)
            for pending_text in pending:
                yield _Comment(anchor, pending_text, above=True)
            pending.clear()
            if comment is not None:
                yield _Comment(anchor, comment, above=False)
            last = anchor
        elif comment is not None:
            pending.append(comment)
    for pending_text in pending:
        yield _Comment(None, pending_text, above=True)


def _moves(old: ParsedYaml) -> dict[JsonPath, JsonPath]:
    """Where the migration takes each path of the old document: it is run once more on a copy
    whose every scalar is a unique marker, and each marker is looked for in the result. A
    collection goes where most of its entries went."""
    markers: dict[str, JsonPath] = {}

    def mark(value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            return {k: mark(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v, (*path, i)) for i, v in enumerate(value)]
        if path in _KEPT:
            return value
        token = f"\x00gate-migrate-{len(markers)}\x00"
        markers[token] = path
        return token

    try:
        migrated, _ = migrate(mark(old.data, ()))
    except Exception:  # the probe is best effort: a step that looks at values may refuse it
        return {}
    leaves: dict[JsonPath, JsonPath] = {}

    def find(value: Any, path: JsonPath) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                find(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                find(v, (*path, i))
        elif isinstance(value, str) and value in markers:
            leaves.setdefault(markers[value], path)

    find(migrated, ())
    moves = dict(leaves)
    for kept in _KEPT:
        moves[kept] = kept
    for container in {p[:n] for p in leaves for n in range(1, len(p))}:
        moves[container] = _container_move(container, leaves)
    return moves


def _container_move(container: JsonPath, leaves: dict[JsonPath, JsonPath]) -> JsonPath:
    votes: collections.Counter[JsonPath] = collections.Counter()
    first: list[JsonPath] = []
    news: list[JsonPath] = []
    for old, new in leaves.items():
        if old[: len(container)] != container:
            continue
        news.append(new)
        suffix = old[len(container) :]
        if new[len(new) - len(suffix) :] == suffix:
            candidate = new[: len(new) - len(suffix)]
            votes[candidate] += 1
            first.append(candidate)
    if votes:
        best = max(votes.values())
        return next(c for c in first if votes[c] == best)  # the earliest of the most voted
    common = news[0]
    for new in news[1:]:
        n = 0
        while n < min(len(common), len(new)) and common[n] == new[n]:
            n += 1
        common = common[:n]
    return common or news[0][:1]


def _target(anchor: JsonPath, moves: dict[JsonPath, JsonPath], new: ParsedYaml) -> JsonPath | None:
    """The new place of ``anchor``, or of its nearest ancestor that has one."""
    for n in range(len(anchor), 0, -1):
        moved = moves.get(anchor[:n])
        if moved is not None and moved in new.marks:
            return moved
    return () if () in new.marks else None
