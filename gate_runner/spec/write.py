"""Writing a spec back to its file: the new document merged into the old text so comments on
untouched lines survive, the canonical plain dump, and the atomic replace of the file.
"""

from __future__ import annotations

__all__ = ("atomic_write", "canonical_yaml", "render_update")

import contextlib
import errno
import io
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from gate_runner.errors import SpecError
from gate_runner.files import fsync_dir
from gate_runner.spec.yamlsafe import parse_yaml

# Indentation styles tried when re-emitting: (mapping, sequence, offset). The one that reproduces
# the untouched file best is used, so an edit does not re-indent the whole file.
_INDENT_STYLES: Final = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 3, 1))
_STR_TAG: Final = "tag:yaml.org,2002:str"
_RESOLVER: Final = yaml.resolver.Resolver()

_Container = CommentedMap | CommentedSeq


def canonical_yaml(document: Mapping[str, Any]) -> str:
    """A stable YAML rendering of ``document`` (key order kept) for diffs, history and fallbacks."""
    return yaml.safe_dump(
        _plain(document), sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def render_update(old_text: str, new_document: Mapping[str, Any]) -> str:
    """``old_text`` changed into ``new_document`` in place, keeping comments and layout where
    the change did not touch them; a plain dump when the old text is unusable.

    The result always loads (with the spec loader's YAML rules) to exactly ``new_document``.
    """
    fallback = canonical_yaml(new_document)
    try:
        tree = _round_trip().load(old_text)
    except Exception:  # any ruamel failure only means the comments cannot be kept
        return fallback
    if not isinstance(tree, CommentedMap):
        return fallback
    style = _best_indent(tree, old_text)
    _merge_map(tree, new_document)  # a gap orphaned at the root would only re-order the header
    out = _dump(tree, style)
    try:
        reloaded = parse_yaml(out, source="<render>").data
    except SpecError:
        return fallback
    return out if _same(reloaded, _plain(new_document)) else fallback


def _round_trip(style: tuple[int, int, int] = (2, 2, 0)) -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap long values
    mapping, sequence, offset = style
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    return rt


def _dump(tree: Any, style: tuple[int, int, int]) -> str:
    buffer = io.StringIO()
    _round_trip(style).dump(tree, buffer)
    return buffer.getvalue()


def _best_indent(tree: Any, text: str) -> tuple[int, int, int]:
    want = text.splitlines()
    best, best_score = _INDENT_STYLES[0], -1
    for style in _INDENT_STYLES:
        got = _dump(tree, style).splitlines()
        score = sum(a == b for a, b in zip(want, got, strict=False))
        if got == want:
            return style
        if score > best_score:
            best, best_score = style, score
    return best


def _same(a: Any, b: Any) -> bool:
    """Equality that tells True from 1 and 1 from 1.0, as a YAML reader would."""
    if type(a) is not type(b) and not (isinstance(a, str) and isinstance(b, str)):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --- merging ----------------------------------------------------------------------------------
#
# ruamel attaches the comment lines *between* two entries to the end-of-line comment token of the
# first entry's last line (the "tail"). Deleting or replacing that entry would take the comments
# above the next entry with it, so each merge first detaches these gaps, edits, then re-attaches
# every gap above the entry it preceded (and the final gap at the end of the container).


def _merge_value(old: Any, new: Any) -> tuple[Any, str]:
    """The node for ``new``, reusing ``old`` where possible; and any comment lines that lost
    their place (they were above an entry of ``old`` that is now first)."""
    if isinstance(old, CommentedMap) and isinstance(new, Mapping) and new:
        return old, _merge_map(old, new)
    if isinstance(old, CommentedSeq) and isinstance(new, list) and new:
        return old, _merge_seq(old, new)
    if _same_scalar(old, new):
        return old, ""
    return _fresh(new), ""


def _same_scalar(old: Any, new: Any) -> bool:
    if isinstance(old, (CommentedMap, CommentedSeq)) or isinstance(new, (Mapping, list)):
        return False
    if isinstance(old, str) or isinstance(new, str):
        return isinstance(old, str) and isinstance(new, str) and str(old) == new
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool) and old == new
    # ruamel reads floats as ScalarFloat (a float keeping its written form).
    numbers = (int, float)
    return (
        isinstance(old, numbers)
        and isinstance(new, numbers)
        and isinstance(old, float) == isinstance(new, float)
        and bool(old == new)
    )


def _fresh(value: Any) -> Any:
    """A new node for ``value``, in block style, with strings quoted where YAML 1.1 would not
    read them back as strings (``yes``, ``1:30``): ruamel writes YAML 1.2, the loader reads 1.1.
    """
    if isinstance(value, Mapping):
        node = CommentedMap((str(k), _fresh(v)) for k, v in value.items())
        if value:
            node.fa.set_block_style()
        return node
    if isinstance(value, (list, tuple)):
        seq = CommentedSeq(_fresh(v) for v in value)
        if value:
            seq.fa.set_block_style()
        return seq
    if isinstance(value, str):
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
        return value if tag == _STR_TAG else SingleQuotedScalarString(value)
    return value


def _merge_map(old: CommentedMap, new: Mapping[str, Any]) -> str:
    keys = list(old.keys())
    gaps = [_take_gap(old, key) for key in keys]
    above = {key: gaps[i - 1] for i, key in enumerate(keys) if i > 0}
    for key in keys:
        if key not in new:
            del old[key]
            old.ca.items.pop(key, None)
    for key, value in new.items():
        if key not in old:
            old[key] = _fresh(value)
            continue
        merged, orphan = _merge_value(old[key], value)
        if merged is not old[key]:
            _forget_leading_comment(old, key)
        old[key] = merged
        if orphan:
            above[key] = above.get(key, "") + orphan
    return _put_gaps(old, list(old.keys()), above, gaps[-1] if gaps else "")


def _forget_leading_comment(container: CommentedMap, key: str) -> None:
    """Drop the comment lines above a replaced collection's first entry: they belonged to it,
    and ruamel would emit them in the middle of the new value."""
    entry = container.ca.items.get(key)
    if entry and len(entry) > 3:
        entry[3] = None


def _merge_seq(old: CommentedSeq, new: list[Any]) -> str:
    gaps = [_take_gap(old, i) for i in range(len(old))]
    names = _names(old)
    new_names = _names(new)
    by_name = names is not None and new_names is not None
    sources: list[int | None] = []
    for j, value in enumerate(new):
        if by_name and names is not None:
            sources.append(names.get(value["name"]))
        else:
            sources.append(j if j < len(old) else None)
    items: list[Any] = []
    comments: dict[int, Any] = {}
    above = {j: gaps[i - 1] for j, i in enumerate(sources) if i is not None and i > 0}
    for j, (i, value) in enumerate(zip(sources, new, strict=True)):
        if i is None:
            items.append(_fresh(value))
            continue
        merged, orphan = _merge_value(old[i], value)
        items.append(merged)
        if orphan:
            above[j] = above.get(j, "") + orphan
        if i in old.ca.items:
            comments[j] = old.ca.items[i]
    # Plain list operations: CommentedSeq's own re-number ca.items, which is rebuilt here.
    list.clear(old)
    list.extend(old, items)
    old.ca.items.clear()
    old.ca.items.update(comments)
    return _put_gaps(old, list(range(len(old))), above, gaps[-1] if gaps else "")


def _names(items: list[Any]) -> dict[str, int] | None:
    """Index by ``name`` when every item is a mapping with a distinct name, else None."""
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            return None
        if item["name"] in names:
            return None
        names[item["name"]] = i
    return names


def _put_gaps(container: _Container, order: list[Any], above: Mapping[Any, str], end: str) -> str:
    """Re-attach gaps: the one above each entry goes on the tail of the entry before it.

    Returns the gap above the first entry when it has nowhere to go here (the old first entry
    is gone and ruamel keeps a container's leading comment outside it): the caller puts it above
    the whole container.
    """
    if not order:
        return end
    orphan = ""
    lead = above.get(order[0], "")
    if lead:
        leading = container.ca.comment[1] if container.ca.comment else None
        if leading:
            _append(leading[-1], lead)
        else:
            orphan = lead
    for before, entry in zip(order, order[1:], strict=False):
        _add_gap(container, before, above.get(entry, ""))
    _add_gap(container, order[-1], end)
    return orphan


# --- the comment token after an entry's last line ---


def _tail(container: _Container, key: Any) -> tuple[_Container, Any]:
    """The (container, key) whose own value is last on the entry's last line."""
    value = container[key]
    while (
        isinstance(value, (CommentedMap, CommentedSeq)) and len(value) and not value.fa.flow_style()
    ):
        container = value
        key = list(value.keys())[-1] if isinstance(value, CommentedMap) else len(value) - 1
        value = container[key]
    return container, key


def _slot(container: _Container) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _tail_token(container: _Container, key: Any) -> CommentToken | None:
    owner, at = _tail(container, key)
    entry = owner.ca.items.get(at)
    token = entry[_slot(owner)] if entry else None
    return token if isinstance(token, CommentToken) else None


def _take_gap(container: _Container, key: Any) -> str:
    """Detach and return the comment lines after the entry's end-of-line comment."""
    token = _tail_token(container, key)
    if token is None or "\n" not in token.value:
        return ""
    cut = token.value.index("\n") + 1
    gap = str(token.value[cut:])
    token.value = token.value[:cut]
    return gap


def _add_gap(container: _Container, key: Any, gap: str) -> None:
    if not gap:
        return
    token = _tail_token(container, key)
    if token is not None:
        _append(token, gap)
        return
    owner, at = _tail(container, key)
    token = CommentToken("\n" + gap, CommentMark(0), None)
    entry = owner.ca.items.setdefault(
        at, [None, None, None, None] if _slot(owner) else [None, None]
    )
    entry[_slot(owner)] = token
    value = owner[at]
    if isinstance(value, (CommentedMap, CommentedSeq)):
        # A flow collection's end-of-line comment is shared with its parent entry.
        value.ca.comment = [token, None]


def _append(token: CommentToken, gap: str) -> None:
    value = str(token.value)
    token.value = (value if value.endswith("\n") else value + "\n") + gap


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: a temp file in the same directory, fsync,
    the old file's mode (0644 for a new file), rename, fsync the directory.

    A symlink is followed, so the link stays. A file that cannot be renamed over (a single-file
    bind mount) is overwritten in place instead.
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = 0o644
    data = text.encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        try:
            os.replace(tmp, target)
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            _overwrite(target, data)
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def _overwrite(path: Path, data: bytes) -> None:
    """Rewrite ``path`` in place. That is not atomic, so the room the new text needs beyond
    the old is reserved first: a full disk fails here before the first byte changes. Should
    a write fail all the same, the old bytes are put back."""
    old = path.read_bytes()
    fd = os.open(path, os.O_RDWR)
    try:
        if len(data) > len(old):
            try:
                os.posix_fallocate(fd, len(old), len(data) - len(old))
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
                    raise
        try:
            _write_at_start(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                _write_at_start(fd, old)
            raise
    finally:
        os.close(fd)


def _write_at_start(fd: int, data: bytes) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], done)
    os.ftruncate(fd, len(data))
    os.fsync(fd)
