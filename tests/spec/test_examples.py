"""The shipped examples and schemas: they validate, load to the expected values, and follow the
schema conventions (additionalProperties: false, descriptions, defaults equal to the model's)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gate_runner.spec import RELAY, HostPort, NodeSpec, RelaySpec, load_spec, load_spec_file
from gate_runner.spec.durations import DURATION_PATTERN, SIZE_PATTERN
from gate_runner.spec.model import build_node_spec, build_relay_spec
from gate_runner.spec.validate import load_schema

BOB = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
CAROL = "12D3KooWEwdWbGSG2bnwqa4Kug6hsyjiSESbmLK3Nvj2Hn13CLvp"
RELAY2 = "12D3KooWPhyoHocnXxjNDdmoRakFw5ZYHcGCpfvXtYLBbqejUrvq"


def uncomment(text: str) -> str:
    """Enable every optional setting: the examples comment them out as "#" + the YAML line."""
    return re.sub(r"(?m)^#(  +\S)", r"\1", text)


def test_node_example_loads_with_defaults_that_start_anywhere(repo: Path) -> None:
    loaded = load_spec_file(repo / "gate.yaml.example", env={})
    spec = loaded.spec
    assert isinstance(spec, NodeSpec)
    assert loaded.kind == "Node" and loaded.migrated_from is None
    assert spec.name == "my-node"
    assert spec.listen.api == HostPort("127.0.0.1", 31145)
    assert spec.listen.control == HostPort("127.0.0.1", 8145)
    assert spec.listen.p2p == ("/ip4/0.0.0.0/tcp/41145",)
    assert spec.data_dir == Path("~/.local/share/gate").expanduser()
    assert spec.key_path == spec.data_dir / "identity.pem"
    # Nothing that needs an engine, a friend or a relay is active.
    assert spec.peers == () and spec.providers.static == () and spec.trust.allow == ()
    assert spec.providers.discovery.enabled is True
    assert spec.endpoints.public.enabled is False
    assert spec.debug.timers == ()
    # The active settings are the defaults: the file documents them, it does not change them.
    minimal = {"apiVersion": "gate.hellas.ai/v1", "kind": "Node", "metadata": {"name": "my-node"}}
    assert spec == build_node_spec(minimal)


def test_node_example_with_every_option_enabled(repo: Path) -> None:
    text = uncomment((repo / "gate.yaml.example").read_text())
    assert "#  " not in "\n".join(line[:3] for line in text.splitlines())
    spec = load_spec(text, env={}).spec
    assert isinstance(spec, NodeSpec)
    assert [p.name for p in spec.providers.static] == ["ollama", "lmstudio", "local-gguf"]
    assert spec.providers.static[1].api_key_env == "LMSTUDIO_API_KEY"
    assert spec.providers.static[2].model == str(
        Path("~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf").expanduser()
    )
    # carol is written as 64 hex chars in the example and comes out as a peer id.
    assert [(p.name, p.id) for p in spec.peers] == [("bob", BOB), ("carol", CAROL)]
    assert spec.trust.allow[0].rate_limit is not None
    assert spec.trust.allow[0].rate_limit.requests_per_minute == 60
    assert spec.trust.allow[1].models == ("*",)
    assert spec.listen.api_keys == ("GATE_API_KEY",)
    assert len(spec.endpoints.public.relays) == 2
    assert spec.endpoints.public.acme.email == "me@example.com"


def test_relay_example_loads(repo: Path) -> None:
    loaded = load_spec_file(repo / "relay.yaml.example", env={}, kind=RELAY)
    spec = loaded.spec
    assert isinstance(spec, RelaySpec)
    assert spec.base_domain == "gate.example.net"
    assert spec.listen.tls == HostPort("0.0.0.0", 443)
    assert spec.public_addresses == ("203.0.113.10", "2001:db8::10")
    assert spec.dns.provider == "rfc2136"
    assert spec.dns.rfc2136 is not None
    assert spec.dns.rfc2136.server == HostPort("ns1.example.net", 53)
    assert spec.dns.rfc2136.tsig.secret_env == "GATE_RELAY_TSIG_SECRET"
    assert spec.limits.max_client_hello_bytes == 64 * 1024
    assert spec.registry.ttl == 600.0
    assert spec.fleet[0].addr.endswith(f"/p2p/{RELAY2}")


@pytest.mark.parametrize("kind", ["Node", "Relay"])
def test_schema_is_valid_draft_2020_12(kind: str) -> None:
    Draft202012Validator.check_schema(load_schema(kind))


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append((path, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_objects(value, f"{path}/{i}"))
    return found


@pytest.mark.parametrize("kind", ["Node", "Relay"])
def test_schema_conventions(kind: str) -> None:
    schema = load_schema(kind)
    objects = _objects(schema)
    assert objects
    for path, node in objects:
        assert node.get("additionalProperties") is False, path
        for name, prop in node.get("properties", {}).items():
            assert prop.get("description"), f"{path}/properties/{name} has no description"
    defs = schema["$defs"]
    assert defs["duration"]["pattern"] == DURATION_PATTERN
    if "size" in defs:
        assert defs["size"]["pattern"] == SIZE_PATTERN


def _defaults(node: dict[str, Any], defs: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
    """(path, default) for every defaulted field reachable through objects only."""
    if "$ref" in node:
        node = {**defs[node["$ref"].split("/")[-1]], **node}
    found: list[Any] = []
    if "default" in node and path:
        found.append((path, node["default"]))
    for key, child in node.get("properties", {}).items():
        found.extend(_defaults(child, defs, (*path, key)))
    return found


RELAY_MINIMAL = {
    "apiVersion": "gate.hellas.ai/v1",
    "kind": "Relay",
    "metadata": {"name": "r"},
    "spec": {
        "baseDomain": "gate.example.net",
        "publicAddresses": ["203.0.113.10"],
        "dns": {"rfc2136": {"server": "127.0.0.1", "tsig": {"name": "k", "secretEnv": "S"}}},
    },
}
NODE_MINIMAL = {"apiVersion": "gate.hellas.ai/v1", "kind": "Node", "metadata": {"name": "n"}}


@pytest.mark.parametrize(("kind", "minimal"), [("Node", NODE_MINIMAL), ("Relay", RELAY_MINIMAL)])
def test_schema_defaults_are_the_model_defaults(kind: str, minimal: dict[str, Any]) -> None:
    """Writing a schema default explicitly builds the same typed spec as leaving it out."""
    build = build_node_spec if kind == "Node" else build_relay_spec
    schema = load_schema(kind)
    implicit = build(minimal)
    defaults = _defaults(dict(schema), schema["$defs"], ())
    assert len(defaults) > 10
    for path, value in defaults:
        document = copy.deepcopy(minimal)
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = copy.deepcopy(value)
        assert build(document) == implicit, path
        assert load_spec(json.dumps(document), env={}).spec == implicit, path
