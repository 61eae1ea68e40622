"""GATE_<PATH> environment overrides: the name table, parsing, and where they apply."""

from __future__ import annotations

import pytest

from gate_runner.errors import SpecError
from gate_runner.spec import EnvOverride, HostPort, NodeSpec, RelaySpec, load_spec
from gate_runner.spec.envoverride import env_name, override_table

NODE = (
    "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: alice}\n"
    "spec:\n  dataDir: /srv/gate\n"
)


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("GATE_LISTEN_API", ("spec", "listen", "api")),
        ("GATE_LISTEN_API_KEYS", ("spec", "listen", "apiKeys")),
        ("GATE_LISTEN_P2P", ("spec", "listen", "p2p")),
        ("GATE_DATA_DIR", ("spec", "dataDir")),
        ("GATE_IDENTITY_KEY_FILE", ("spec", "identity", "keyFile")),
        ("GATE_ROUTING_STRATEGY", ("spec", "routing", "strategy")),
        ("GATE_ROUTING_RETRY_MAX_ATTEMPTS", ("spec", "routing", "retry", "maxAttempts")),
        ("GATE_TRUST_MODE", ("spec", "trust", "mode")),
        ("GATE_PROVIDERS_DISCOVERY_ENABLED", ("spec", "providers", "discovery", "enabled")),
        ("GATE_ENDPOINTS_PUBLIC_RELAYS", ("spec", "endpoints", "public", "relays")),
        ("GATE_NAME", ("metadata", "name")),
    ],
)
def test_node_table(name: str, path: tuple[str, ...]) -> None:
    assert override_table("Node")[name].path == path
    assert env_name(path) == name


@pytest.mark.parametrize("kind", ["Node", "Relay"])
def test_table_leaves_out_lists_of_mappings_and_reserved_names(kind: str) -> None:
    table = override_table(kind)
    assert not any(n in table for n in ("GATE_CONTROL", "GATE_CONFIG", "GATE_PEERS", "GATE_FLEET"))
    assert not any(n.startswith("GATE_LOG_") for n in table)
    assert not any(n.startswith(("GATE_PROVIDERS_STATIC", "GATE_TRUST_ALLOW")) for n in table)


def test_relay_table_reaches_nested_dns_fields() -> None:
    table = override_table("Relay")
    assert table["GATE_DNS_RFC2136_TSIG_SECRET_ENV"].path == (
        "spec",
        "dns",
        "rfc2136",
        "tsig",
        "secretEnv",
    )
    assert table["GATE_LIMITS_MAX_CLIENT_HELLO_BYTES"].path == (
        "spec",
        "limits",
        "maxClientHelloBytes",
    )


def test_override_changes_the_spec_but_not_the_document() -> None:
    env = {
        "GATE_LISTEN_API": "127.0.0.1:9000",
        "PATH": "/bin",
        "GATE_CONTROL": "x",
        "GATE_LOG_LEVEL": "debug",
    }
    loaded = load_spec(NODE, env=env)
    assert isinstance(loaded.spec, NodeSpec)
    assert loaded.spec.listen.api == HostPort("127.0.0.1", 9000)
    assert "listen" not in loaded.document["spec"]
    assert loaded.overrides == (
        EnvOverride("GATE_LISTEN_API", "spec.listen.api", "127.0.0.1:9000"),
    )


@pytest.mark.parametrize(
    ("env", "check"),
    [
        (
            {"GATE_PROVIDERS_DISCOVERY_ENABLED": "false"},
            lambda s: s.providers.discovery.enabled is False,
        ),
        ({"GATE_ROUTING_RETRY_MAX_ATTEMPTS": "5"}, lambda s: s.routing.retry.max_attempts == 5),
        (
            {"GATE_LISTEN_P2P": "[/ip4/0.0.0.0/tcp/1, /ip4/0.0.0.0/tcp/2]"},
            lambda s: len(s.listen.p2p) == 2,
        ),
        (
            {"GATE_LISTEN_P2P": "/ip4/0.0.0.0/tcp/1,/ip4/0.0.0.0/tcp/2"},
            lambda s: len(s.listen.p2p) == 2,
        ),
        ({"GATE_LISTEN_API_KEYS": "KEY_A"}, lambda s: s.listen.api_keys == ("KEY_A",)),
        ({"GATE_NAME": "1234"}, lambda s: s.name == "1234"),
        ({"GATE_TRUST_MODE": "private"}, lambda s: s.trust.mode == "private"),
        ({"GATE_DATA_DIR": "/tmp/g"}, lambda s: str(s.data_dir) == "/tmp/g"),
        ({"GATE_LISTEN_API": ""}, lambda s: s.listen.api == HostPort("127.0.0.1", 31145)),
    ],
)
def test_override_values_are_yaml_scalars(env: dict[str, str], check: object) -> None:
    spec = load_spec(NODE, env=env).spec
    assert callable(check) and check(spec)


def test_overrides_are_listed_in_name_order() -> None:
    env = {"GATE_TRUST_MODE": "public", "GATE_LISTEN_CONTROL": "127.0.0.1:9001"}
    loaded = load_spec(NODE, env=env)
    assert [o.name for o in loaded.overrides] == ["GATE_LISTEN_CONTROL", "GATE_TRUST_MODE"]
    assert loaded.overrides[1].value == "public"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GATE_LISTEN_API": "nowhere"},
            "env GATE_LISTEN_API spec.listen.api: not a host:port address",
        ),
        (
            {"GATE_ROUTING_STRATEGY": "fastest"},
            "env GATE_ROUTING_STRATEGY spec.routing.strategy: must be one of",
        ),
        (
            {"GATE_ROUTING_RETRY_MAX_ATTEMPTS": "many"},
            "env GATE_ROUTING_RETRY_MAX_ATTEMPTS spec.routing.retry.maxAttempts: "
            "expected a whole number",
        ),
        (
            {"GATE_LISTEN_P2P": "[unclosed"},
            "env GATE_LISTEN_P2P spec.listen.p2p: cannot parse the value of GATE_LISTEN_P2P",
        ),
    ],
)
def test_bad_override_names_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(NODE, source="gate.yaml", env=env)
    assert expected in str(caught.value)


def test_override_clash_elsewhere_names_the_variable_in_the_hint() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(NODE, source="gate.yaml", env={"GATE_LISTEN_API": "127.0.0.1:8145"})
    message = str(caught.value)
    assert "port 8145 is already used" in message
    assert "GATE_LISTEN_API" in message


def test_relay_overrides() -> None:
    text = (
        "apiVersion: gate.hellas.ai/v1\nkind: Relay\nmetadata: {name: r}\nspec:\n"
        "  baseDomain: gate.example.net\n  publicAddresses: [203.0.113.10]\n"
        "  dns: {rfc2136: {server: 127.0.0.1, tsig: {name: k, secretEnv: S}}}\n"
    )
    env = {"GATE_LISTEN_TLS": "127.0.0.1:8443", "GATE_LIMITS_MAX_CLIENT_HELLO_BYTES": "4096"}
    spec = load_spec(text, env=env).spec
    assert isinstance(spec, RelaySpec)
    assert spec.listen.tls == HostPort("127.0.0.1", 8443)
    assert spec.limits.max_client_hello_bytes == 4096


def test_env_none_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_ROUTING_STRATEGY", "local-only")
    loaded = load_spec(NODE)
    assert isinstance(loaded.spec, NodeSpec)
    assert loaded.spec.routing.strategy == "local-only"
