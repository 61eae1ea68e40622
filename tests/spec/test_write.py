"""Writing gate.yaml back: comments on untouched lines survive, and the write is atomic."""

from __future__ import annotations

import copy
import errno
import os
import stat
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gate_runner.spec import atomic_write, canonical_yaml, load_spec, render_update
from tests.tmpfs import fill, mounted_tmpfs

BOB = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
CAROL = "12D3KooWEwdWbGSG2bnwqa4Kug6hsyjiSESbmLK3Nvj2Hn13CLvp"
DAVE = "12D3KooWGQahCmfNSYy1omzmzHtx6sno74RHpSD9zf1DkQcco8Bo"

COMMENTED = textwrap.dedent(
    f"""\
    # Alice's node (header comment)
    apiVersion: gate.hellas.ai/v1
    kind: Node
    metadata:
      name: alice   # the node name
    spec:
      # providers section
      providers:
        discovery: {{enabled: true, interval: 30s}}   # discovery eol
        static:
          # first provider
          - name: ollama      # local ollama
            kind: ollama
            url: http://127.0.0.1:11434
          # second provider (to be removed)
          - name: lm
            kind: openai
            url: http://127.0.0.1:1234/v1   # lm studio
          # third provider
          - name: gguf
            kind: llamacpp
            model: /m.gguf    # the model
      # the peers
      peers:
        - name: bob   # bob's box
          id: {BOB}
          addrs: ["/ip4/203.0.113.7/tcp/41145"]   # bob addr
        # carol below
        - name: carol
          id: {CAROL}
      # trust settings
      trust:
        mode: friends  # default
    # trailing comment
    """
)


def _comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def _edit(document: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(document)
    new["spec"]["peers"][0]["addrs"] = ["/ip4/198.51.100.9/tcp/41145"]
    new["spec"]["peers"].append({"name": "dave", "id": DAVE, "addrs": ["/dns4/dave.example/tcp/1"]})
    del new["spec"]["providers"]["static"][1]
    return new


def test_comments_on_untouched_lines_survive_an_edit() -> None:
    old = load_spec(COMMENTED, env={}).document
    new = _edit(old)
    text = render_update(COMMENTED, new)
    assert load_spec(text, env={}).document == new
    kept = _comments(text)
    removed = {"lm studio", "second provider (to be removed)"}
    for comment in _comments(COMMENTED):
        if comment not in removed:
            assert comment in kept, comment
    assert not removed & set(kept)
    # Untouched lines keep their exact text, in order: all but the removed provider (lines
    # 15-18) and bob's changed addrs (line 27).
    untouched = [
        line
        for number, line in enumerate(COMMENTED.splitlines(), 1)
        if number not in {15, 16, 17, 18, 27}
    ]
    lines = text.splitlines()
    assert [line for line in lines if line in untouched] == untouched


def test_comment_above_a_removed_first_item_moves_to_the_next() -> None:
    old = load_spec(COMMENTED, env={}).document
    new = copy.deepcopy(old)
    del new["spec"]["peers"][0]
    text = render_update(COMMENTED, new)
    assert load_spec(text, env={}).document == new
    assert "# carol below" in text
    assert "# trust settings" in text and "bob's box" not in text


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["spec"].pop("trust"), id="remove-last-section"),
        pytest.param(
            lambda d: d["spec"].update(routing={"strategy": "local-only"}), id="add-section"
        ),
        pytest.param(lambda d: d["spec"]["providers"].update(static=[]), id="empty-a-list"),
        pytest.param(lambda d: d["spec"]["providers"].pop("static"), id="remove-nested-list"),
        pytest.param(
            lambda d: d["metadata"].update(name="yes"), id="string-that-yaml-1.1-reads-as-bool"
        ),
        pytest.param(
            lambda d: d["spec"].update(dataDir="1:30"), id="string-that-yaml-1.1-reads-as-int"
        ),
        pytest.param(lambda d: d["spec"]["peers"].reverse(), id="reorder-named-items"),
    ],
)
def test_any_edit_reloads_to_the_new_document(change: Any) -> None:
    new = copy.deepcopy(load_spec(COMMENTED, env={}).document)
    change(new)
    text = render_update(COMMENTED, new)
    assert load_spec(text, env={}).document == new
    assert "# Alice's node (header comment)" in text
    assert "# the node name" in text


def test_unparsable_old_text_gives_a_plain_dump() -> None:
    new = load_spec(COMMENTED, env={}).document
    assert render_update("a: [unclosed\n", new) == canonical_yaml(new)
    assert render_update("- a list\n", new) == canonical_yaml(new)


def test_unchanged_document_reproduces_the_file() -> None:
    document = load_spec(COMMENTED, env={}).document
    assert render_update(COMMENTED, document) == COMMENTED


def test_atomic_write_keeps_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("old\n")
    path.chmod(0o600)
    atomic_write(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.yaml"]


def test_atomic_write_creates_a_new_file_0644(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    old_umask = os.umask(0o077)
    try:
        atomic_write(path, "x: 1\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.yaml"]


def test_atomic_write_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("old\n")
    link = tmp_path / "gate.yaml"
    link.symlink_to(real)
    atomic_write(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"


def test_atomic_write_cleans_up_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.mkdir()  # os.replace of a file over a directory fails
    with pytest.raises(OSError):
        atomic_write(path, "x\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gate.yaml"]


# -- a full disk: a real tmpfs (root only) -------------------------------------------------


def test_atomic_write_on_a_full_disk_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "fs", size="64k") as fs:
        path = fs / "gate.yaml"
        path.write_text("old: 1\n")
        fill(fs)
        with pytest.raises(OSError) as raised:
            atomic_write(path, "new: 1\n" * 2000)  # 14 KB: more than a page
        assert raised.value.errno == errno.ENOSPC
        assert path.read_text() == "old: 1\n"
        assert sorted(p.name for p in fs.iterdir()) == ["filler", "gate.yaml"]


def test_overwriting_in_place_on_a_full_disk_leaves_the_old_file(tmp_path: Path) -> None:
    """A gate.yaml bind-mounted on its own cannot be renamed over, so it is rewritten in
    place: that must not stop half way when the disk is full."""
    with mounted_tmpfs(tmp_path / "fs", size="64k") as fs:
        real = fs / "gate.yaml"
        real.write_text("old: 1\n" * 10)
        fill(fs)
        path = tmp_path / "gate.yaml"
        path.write_text("")
        subprocess.run(["mount", "--bind", str(real), str(path)], check=True)
        try:
            with pytest.raises(OSError) as raised:
                atomic_write(path, "new: 1\n" * 2000)  # 14 KB: the old file's page holds 4
            assert raised.value.errno == errno.ENOSPC
            assert path.read_text() == "old: 1\n" * 10
            assert sorted(p.name for p in tmp_path.iterdir()) == ["fs", "gate.yaml"]
            # With room, the same write goes through in place.
            (fs / "filler").unlink()
            atomic_write(path, "new: 1\n" * 2000)
            assert real.read_text() == "new: 1\n" * 2000
        finally:
            subprocess.run(["umount", str(path)], check=False)
