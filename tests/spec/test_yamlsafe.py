"""Reading untrusted YAML: size cap, encodings, alias bombs, nesting, merge keys and marks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gate_runner.errors import SpecError
from gate_runner.spec import load_spec, load_spec_file
from gate_runner.spec.yamlsafe import (
    MAX_SPEC_BYTES,
    decode_text,
    format_path,
    parse_path,
    parse_yaml,
    read_limited,
)

BILLION_LAUGHS = (
    "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}\nspec:\n"
    '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    + "".join(
        f"  {chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
        for i in range(1, 9)
    )
)


def test_billion_laughs_is_refused_fast() -> None:
    started = time.monotonic()
    with pytest.raises(SpecError, match="expands to more than 100000 nodes"):
        load_spec(BILLION_LAUGHS, source="gate.yaml", env={})
    assert time.monotonic() - started < 1.0


def test_many_aliases_are_refused() -> None:
    text = "a: &x 1\nb: [" + ", ".join(["*x"] * 1001) + "]\n"
    with pytest.raises(SpecError, match="more than 1000 aliases"):
        parse_yaml(text, source="t.yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(SpecError, match=r"t.yaml:1:4: an alias refers to a node that contains it"):
        parse_yaml("a: &x [1, *x]\n", source="t.yaml")


def test_deep_nesting_is_refused() -> None:
    text = "a: " + "[" * 100 + "]" * 100 + "\n"
    with pytest.raises(SpecError, match="nested more than 64 levels"):
        parse_yaml(text, source="t.yaml")


def test_huge_file_is_refused_by_size_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    with open(path, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB that cost nothing to make
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        load_spec_file(path, env={})
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert f"{path}: the spec is too large (52428800 bytes; the limit is 1048576 bytes)" in message


def test_size_limit_holds_when_stat_cannot_tell(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child writes and exits
        try:
            with open(fifo, "wb") as f:
                f.write(b"#" * (MAX_SPEC_BYTES + 10))
        except BrokenPipeError:
            pass
        os._exit(0)
    try:
        with pytest.raises(SpecError, match="larger than the limit of 1048576 bytes"):
            read_limited(fifo)
    finally:
        os.waitpid(pid, 0)


def test_size_limit_applies_to_text_too() -> None:
    with pytest.raises(SpecError, match="too large"):
        decode_text("é" * (MAX_SPEC_BYTES // 2 + 1), source="t")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope.yaml: cannot read the spec: No such file"):
        load_spec_file(tmp_path / "nope.yaml", env={})


def test_bom_is_accepted() -> None:
    text = b"\xef\xbb\xbfapiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}\n"
    assert load_spec(text, env={}).spec.name == "a"


def test_control_character_is_located() -> None:
    with pytest.raises(
        SpecError, match=r"t.yaml:2:4: invalid YAML: character '\\x07' is not allowed"
    ):
        parse_yaml("a: 1\nb: \x07\n", source="t.yaml")


def test_non_string_key_is_refused() -> None:
    with pytest.raises(SpecError, match=r"t.yaml:2:3 a: keys must be strings, not bool \(yes\)"):
        parse_yaml("a:\n  yes: 1\n", source="t.yaml")


def test_merge_keys_work_and_overrides_are_not_duplicates() -> None:
    text = "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n"
    parsed = parse_yaml(text, source="t.yaml")
    assert parsed.data["use"] == {"x": 1, "y": 3}
    assert parsed.marks[("use", "y")] == (4, 3)


def test_marks_cover_every_path() -> None:
    text = "a:\n  b:\n    - x\n    - {c: 1}\nd: 2\n"
    marks = parse_yaml(text, source="t.yaml").marks
    assert marks[()] == (1, 1)
    assert marks[("a",)] == (1, 1)
    assert marks[("a", "b")] == (2, 3)
    assert marks[("a", "b", 0)] == (3, 7)
    assert marks[("a", "b", 1)] == (4, 7)
    assert marks[("a", "b", 1, "c")] == (4, 8)
    assert marks[("d",)] == (5, 1)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), ""),
        (("spec",), "spec"),
        (("spec", "peers", 1, "id"), "spec.peers[1].id"),
        (("spec", "odd.key", 0), 'spec["odd.key"][0]'),
        (("a b", "c"), '["a b"].c'),
    ],
)
def test_paths_format_and_parse_back(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text
    assert parse_path(text) == path
