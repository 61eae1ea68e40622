"""`gate migrate -f` rewrites an old-format file in the current apiVersion and keeps its
comments: each one lands at the new place of the key it was on or above."""

from __future__ import annotations

import textwrap
from pathlib import Path

from gate_runner.cli.migrate import carry_comments
from gate_runner.spec import load_spec, load_spec_file, migrate_text
from tests.cli.conftest import Gate

BOB = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"

OLD = textwrap.dedent(
    f"""\
    # alice's config, written for gate 0.0.x
    apiVersion: gate.hellas.ai/v1alpha1

    # who I am
    node:
      name: alice            # my laptop
      dataDir: /srv/gate
      keyFile: identity.pem  # made on first start
    network:
      listen: ["/ip4/0.0.0.0/tcp/41145"]  # every interface
      peers:
        # my brother
        - name: bob
          id: {BOB}
    autodiscover: true   # finds ollama
    providers:
      - {{name: ollama, type: ollama, url: "http://127.0.0.1:11434/#x", timeout: 120}}  # big box
    security:
      trust: friends  # only bob
      allowedPeers:
        - bob   # bob may use everything
    web:
      # loopback only
      control: 127.0.0.1:8145
    # the end
    """
)

# (text on the new line, the comment at its end or None, the comment on the line above or None)
EXPECTED = [
    ("apiVersion: gate.hellas.ai/v1", None, "# alice's config, written for gate 0.0.x"),
    ("metadata:", None, "# who I am"),
    ("name: alice", "# my laptop", None),
    ("keyFile: identity.pem", "# made on first start", None),
    ("p2p:", "# every interface", None),
    ("- name: bob", None, "# my brother"),
    ("enabled: true", "# finds ollama", None),
    ("- name: ollama", "# big box", None),
    ("mode: friends", "# only bob", None),
    ("- peer: bob", "# bob may use everything", None),
    ("control: 127.0.0.1:8145", None, "# loopback only"),
]


def _line(lines: list[str], text: str) -> int:
    (number,) = [i for i, line in enumerate(lines) if line.strip().startswith(text)]
    return number


def test_migrate_keeps_the_comments_where_their_keys_went(tmp_path: Path, gate: Gate) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(OLD)
    result = gate("migrate", "-f", "gate.yaml")
    assert result.returncode == 0, result.stderr
    assert "migrated from gate.hellas.ai/v1alpha1" in result.stdout
    assert (tmp_path / "gate.yaml.bak").read_text() == OLD

    new = path.read_text()
    lines = new.splitlines()
    assert lines[0] == "# alice's config, written for gate 0.0.x"
    for text, end, above in EXPECTED:
        number = _line(lines, text)
        if end is not None:
            assert lines[number].endswith(f"  {end}"), (text, lines[number])
        if above is not None:
            assert lines[number - 1].strip() == above, (text, lines[number - 1])
    assert lines[-1] == "# the end"
    # Every comment, each once; the '#' inside the quoted URL was never one.
    comments = [line for line in lines if "# " in line]
    assert len(comments) == 12, new
    # Comments only: the file loads to what the old one loaded to.
    assert load_spec_file(path, env={}).spec == load_spec(OLD, env={}).spec

    printed = gate("migrate", "-f", "gate.yaml.bak", "--stdout")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == new


def test_carrying_comments_is_best_effort_and_never_worse() -> None:
    migrated, _ = migrate_text(OLD, source="gate.yaml")
    assert "# my laptop" not in migrated  # what spec.write alone keeps
    assert "# my laptop" in carry_comments(OLD, migrated, source="gate.yaml")
    # An old text it cannot read leaves the migrated text as it is.
    assert carry_comments("a: [\n", migrated, source="gate.yaml") == migrated
