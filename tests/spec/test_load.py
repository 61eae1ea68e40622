"""The load pipeline's outputs: LoadedSpec, typed values, paths, digests and canonical text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from gate_runner.spec import (
    HostPort,
    NodeSpec,
    canonical_yaml,
    load_spec,
    load_spec_file,
    spec_digest,
)

NODE = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: alice}\n"


def _with(spec: str) -> str:
    return NODE + "spec:\n" + spec


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("127.0.0.1:8145", "127.0.0.1", 8145, "127.0.0.1:8145"),
        ("[::1]:8145", "::1", 8145, "[::1]:8145"),
        ("localhost:0", "localhost", 0, "localhost:0"),
        ("0.0.0.0:443", "0.0.0.0", 443, "0.0.0.0:443"),
    ],
)
def test_host_port(text: str, host: str, port: int, shown: str) -> None:
    address = HostPort.parse(text)
    assert (address.host, address.port, str(address)) == (host, port, shown)


@pytest.mark.parametrize("text", ["8145", "::1:8145", "host:", ":80", "host:99999", "[::1]8145"])
def test_host_port_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        HostPort.parse(text)


def test_relative_data_dir_is_relative_to_the_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "gate.yaml"
    path.parent.mkdir()
    path.write_text(_with("  dataDir: state\n  identity: {keyFile: keys/id.pem}\n"))
    loaded = load_spec_file(path, env={})
    spec = loaded.spec
    assert isinstance(spec, NodeSpec)
    assert loaded.source == str(path)
    assert spec.data_dir == tmp_path / "conf" / "state"
    assert spec.key_path == tmp_path / "conf" / "state" / "keys" / "id.pem"


def test_relative_data_dir_from_text_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_with("  dataDir: ../gate-state\n"), env={}).spec
    assert spec.data_dir == tmp_path.parent / "gate-state"


def test_data_dir_from_the_environment_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "gate.yaml"
    path.parent.mkdir()
    path.write_text(NODE)
    monkeypatch.chdir(tmp_path)
    spec = load_spec_file(path, env={"GATE_DATA_DIR": "here"}).spec
    assert spec.data_dir == tmp_path / "here"


def test_absolute_key_file_ignores_data_dir() -> None:
    spec = load_spec(
        _with("  dataDir: /srv/gate\n  identity: {keyFile: /etc/gate/id.pem}\n"), env={}
    ).spec
    assert spec.key_path == Path("/etc/gate/id.pem")


def test_typed_spec_is_frozen_with_tuples() -> None:
    spec = load_spec(_with('  listen: {p2p: ["/ip4/127.0.0.1/tcp/0"]}\n'), env={}).spec
    assert isinstance(spec, NodeSpec)
    assert spec.listen.p2p == ("/ip4/127.0.0.1/tcp/0",)
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_timers_are_a_test_only_section() -> None:
    spec = load_spec(
        _with("  debug:\n    timers: [{name: t1, interval: 100ms}, {name: t2, interval: 2s}]\n"),
        env={},
    ).spec
    assert isinstance(spec, NodeSpec)
    assert [(t.name, t.interval) for t in spec.debug.timers] == [("t1", 0.1), ("t2", 2.0)]


def test_port_zero_never_clashes() -> None:
    text = _with(
        '  listen: {api: "127.0.0.1:0", control: "127.0.0.1:0", p2p: ["/ip4/127.0.0.1/tcp/0"]}\n'
    )
    spec = load_spec(text, env={}).spec
    assert isinstance(spec, NodeSpec)
    assert spec.listen.api.port == 0


def test_digest_is_equal_for_equal_documents_only() -> None:
    document = load_spec(_with("  trust: {mode: public}\n"), env={}).document
    reordered = {"spec": document["spec"], "metadata": document["metadata"]}
    reordered.update(apiVersion=document["apiVersion"], kind=document["kind"])
    assert spec_digest(document) == spec_digest(copy.deepcopy(document)) == spec_digest(reordered)
    changed = copy.deepcopy(document)
    changed["spec"]["trust"]["mode"] = "private"
    assert spec_digest(changed) != spec_digest(document)
    assert len(spec_digest(document)) == 64


def test_canonical_yaml_round_trips_and_keeps_key_order() -> None:
    loaded = load_spec(
        _with("  trust: {mode: public}\n  routing: {strategy: local-only}\n"), env={}
    )
    text = canonical_yaml(loaded.document)
    assert text.index("trust:") < text.index("routing:")
    assert load_spec(text, env={}).document == loaded.document
    assert canonical_yaml(loaded.document) == text


def test_identical_text_gives_identical_results() -> None:
    a = load_spec(_with("  trust: {mode: public}\n"), env={})
    b = load_spec(_with("  trust: {mode: public}\n"), env={})
    assert a == b
