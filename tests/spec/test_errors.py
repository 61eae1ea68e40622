"""Every kind of bad input gives a SpecError located as `file:line:col path: message`."""

from __future__ import annotations

import textwrap

import pytest

from gate_runner.errors import SpecError
from gate_runner.spec import RELAY, load_spec

BOB = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
CAROL = "12D3KooWEwdWbGSG2bnwqa4Kug6hsyjiSESbmLK3Nvj2Hn13CLvp"
BOB_HEX = "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"
HEAD = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata:\n  name: alice\nspec:\n"


def node(body: str) -> str:
    """A Node document whose spec is ``body`` (indented by the caller as under spec:)."""
    return HEAD + textwrap.indent(textwrap.dedent(body), "  ")


CASES = [
    pytest.param(
        "apiVersion: gate.hellas.ai/v1\nkind: [Node\n",
        "gate.yaml:3:1: invalid YAML:",
        id="yaml-syntax",
    ),
    pytest.param(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata:\n\tname: alice\n",
        "gate.yaml:4:1: invalid YAML: a tab is used for indentation (indent with spaces, not tabs)",
        id="tab-indentation",
    ),
    pytest.param(
        node("  peers: []\n  trust: {mode: friends}\n  peers: []\n"),
        "gate.yaml:8:3 spec.peers: duplicate key 'peers' (first defined on line 6)",
        id="duplicate-key",
    ),
    pytest.param(
        "- apiVersion: gate.hellas.ai/v1\n",
        "gate.yaml:1:1: the document must be a mapping with apiVersion, kind, metadata and spec",
        id="non-mapping-root",
    ),
    pytest.param(
        "",
        "gate.yaml:1:1: the document must be a mapping with apiVersion, kind, metadata and spec",
        id="empty-file",
    ),
    pytest.param(
        "# only a comment\n",
        "gate.yaml:1:1: the document must be a mapping",
        id="comment-only",
    ),
    pytest.param(
        b"apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: caf\xe9}\n",
        "gate.yaml:3:21: not valid UTF-8: byte 0xe9 at offset 61 (save the file as UTF-8)",
        id="not-utf8",
    ),
    pytest.param(
        node("  listen:\n    api: 127.0.0.1:9000\n    apikeys: [KEY]\n"),
        "gate.yaml:8:5 spec.listen.apikeys: unknown key 'apikeys' (did you mean 'apiKeys'? "
        "allowed keys here: p2p, api, control, apiKeys, insecure, apiHosts, cors)",
        id="unknown-key",
    ),
    pytest.param(
        node("  providers:\n    discovery:\n      enabled: 1\n"),
        "gate.yaml:8:7 spec.providers.discovery.enabled: expected true or false, got the number 1",
        id="wrong-type",
    ),
    pytest.param(
        node("  providers:\n    discovery:\n      interval: 30\n"),
        "gate.yaml:8:7 spec.providers.discovery.interval: expected a string, got the number 30 "
        "(use a number with a unit: 500ms, 30s, 5m, 1h)",
        id="duration-without-unit",
    ),
    pytest.param(
        node("  routing:\n    retry:\n      maxBackoff: -1s\n"),
        "gate.yaml:8:7 spec.routing.retry.maxBackoff: not a duration: '-1s' "
        "(use a number with a unit: 500ms, 30s, 5m, 1h)",
        id="negative-duration",
    ),
    pytest.param(
        node("  routing:\n    retry:\n      initialBackoff: abc\n"),
        "gate.yaml:8:7 spec.routing.retry.initialBackoff: not a duration: 'abc'",
        id="bad-duration",
    ),
    pytest.param(
        node(
            f"  peers:\n    - name: bob\n      id: {BOB}\n"
            "    - name: carol\n      id: 12D3KooWnope\n"
        ),
        "gate.yaml:10:7 spec.peers[1].id: not a peer id "
        "(expected 12D3KooW..., 64 hex chars or a 52-char label)",
        id="bad-peer-id",
    ),
    pytest.param(
        node(f"  peers:\n    - name: bob\n      id: {BOB}\n    - name: bob\n      id: {CAROL}\n"),
        "gate.yaml:9:7 spec.peers[1].name: duplicate peer name 'bob' (also used by spec.peers[0])",
        id="duplicate-peer-name",
    ),
    pytest.param(
        node(
            f"  peers:\n    - name: bob\n      id: {BOB}\n    - name: bobby\n      id: {BOB_HEX}\n"
        ),
        f"gate.yaml:10:7 spec.peers[1].id: duplicate peer id '{BOB}' (also used by spec.peers[0])",
        id="duplicate-peer-id-in-another-form",
    ),
    pytest.param(
        node(
            """\
              providers:
                static:
                  - {name: ollama, kind: ollama, url: "http://127.0.0.1:11434"}
                  - {name: ollama, kind: openai, url: "http://127.0.0.1:1234/v1"}
            """
        ),
        "gate.yaml:9:10 spec.providers.static[1].name: duplicate provider name 'ollama' "
        "(also used by spec.providers.static[0])",
        id="duplicate-provider-name",
    ),
    pytest.param(
        node(
            f"""\
              peers:
                - name: bob
                  id: {BOB}
              trust:
                allow:
                  - peer: bobb
            """
        ),
        "gate.yaml:11:9 spec.trust.allow[0].peer: no peer named 'bobb' in spec.peers "
        "(did you mean 'bob'?)",
        id="allow-unknown-peer",
    ),
    pytest.param(
        node("  listen:\n    api: 127.0.0.1:8145\n"),
        "gate.yaml:7:5 spec.listen.api: port 8145 is already used by spec.listen.control "
        "(by default 127.0.0.1:8145)",
        id="two-listeners-one-port-default-control",
    ),
    pytest.param(
        node('  listen:\n    p2p: ["/ip4/0.0.0.0/tcp/9000"]\n    api: 127.0.0.1:9000\n'),
        "gate.yaml:7:11 spec.listen.p2p[0]: port 9000 is already used by spec.listen.api",
        id="wildcard-p2p-clashes-with-api",
    ),
    pytest.param(
        "apiVersion: gate.hellas.ai/v2\nkind: Node\n",
        "gate.yaml:1:1 apiVersion: unsupported apiVersion 'gate.hellas.ai/v2' "
        "(supported: gate.hellas.ai/v1, gate.hellas.ai/v1alpha1)",
        id="unknown-api-version",
    ),
    pytest.param(
        HEAD + "---\n" + HEAD,
        "gate.yaml:6:1: the file holds more than one YAML document",
        id="multiple-documents",
    ),
    pytest.param(
        "apiVersion: gate.hellas.ai/v1\nkind: Nod\nmetadata: {name: a}\n",
        "gate.yaml:2:1 kind: unknown kind 'Nod' (expected one of Node, Relay)",
        id="unknown-kind",
    ),
    pytest.param(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: Alice}\n",
        "gate.yaml:3:12 metadata.name: not a valid name: 'Alice'",
        id="bad-name",
    ),
    pytest.param(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {}\n",
        "gate.yaml:3:1 metadata.name: missing required key 'name'",
        id="missing-name",
    ),
    pytest.param(
        node("  providers:\n    static:\n      - name: gguf\n        kind: llamacpp\n"),
        "gate.yaml:8:9 spec.providers.static[0].model: llamacpp providers need model",
        id="llamacpp-needs-model",
    ),
    pytest.param(
        node("  providers:\n    static:\n      - name: lm\n        kind: openai\n"),
        "gate.yaml:8:9 spec.providers.static[0].url: openai providers need url",
        id="openai-needs-url",
    ),
    pytest.param(
        node("  routing:\n    retry: {initialBackoff: 10s, maxBackoff: 1s}\n"),
        "gate.yaml:7:34 spec.routing.retry.maxBackoff: initialBackoff (10s) is longer than "
        "maxBackoff (1s)",
        id="backoff-order",
    ),
    pytest.param(
        node("  listen:\n    api: 0.0.0.0:31145\n"),
        "gate.yaml:7:5 spec.listen.api: the API on 0.0.0.0:31145 would answer anyone on the "
        "network without a key",
        id="open-api-without-keys",
    ),
    pytest.param(
        node("  listen:\n    api: 127.0.0.1:99999\n"),
        "gate.yaml:7:5 spec.listen.api: the port in '127.0.0.1:99999' is not a number "
        "from 0 to 65535",
        id="port-out-of-range",
    ),
    pytest.param(
        node(
            "  peers:\n    - name: bob\n      id: " + BOB + '\n      addrs: ["/ip4/1.2.3/tcp/1"]\n'
        ),
        "gate.yaml:9:15 spec.peers[0].addrs[0]: not a multiaddr: '1.2.3' is not an ip4 address",
        id="bad-multiaddr",
    ),
    pytest.param(
        node("  endpoints:\n    public:\n      enabled: true\n"),
        "gate.yaml:7:5 spec.endpoints.public.relays: the public endpoint is enabled but no relay "
        "is listed",
        id="public-without-relays",
    ),
    pytest.param(
        node('  endpoints:\n    public:\n      relays: ["/dns4/relay.example/tcp/41146"]\n'),
        "gate.yaml:8:16 spec.endpoints.public.relays[0]: a relay address must end in "
        "/p2p/<relay peer id>",
        id="relay-without-peer-id",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_bad_spec_is_located(text: str | bytes, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="gate.yaml", env={})
    assert expected in str(caught.value)
    assert all(issue.source == "gate.yaml" for issue in caught.value.issues)


def test_all_issues_of_a_stage_are_reported_in_document_order() -> None:
    text = node(
        """\
          dataDri: x
          listen:
            api: 8080
          routing: {strategy: fastest}
        """
    )
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="gate.yaml", env={})
    assert [(i.line, i.path) for i in caught.value.issues] == [
        (6, "spec.dataDri"),
        (8, "spec.listen.api"),
        (9, "spec.routing.strategy"),
    ]
    assert "did you mean 'dataDir'?" in str(caught.value)


def test_secret_inline_gets_a_hint_towards_env() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: gate.hellas.ai/v1
        kind: Relay
        metadata: {name: r}
        spec:
          baseDomain: gate.example.net
          publicAddresses: [203.0.113.10]
          dns:
            rfc2136:
              server: 127.0.0.1:53
              tsig: {name: k, secret: c2VjcmV0}
        """
    )
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="relay.yaml", env={})
    message = str(caught.value)
    assert "relay.yaml:10:23 spec.dns.rfc2136.tsig.secret: unknown key 'secret'" in message
    assert "secrets never go in the spec" in message and "secretEnv" in message


@pytest.mark.parametrize(
    ("dns", "expected"),
    [
        ("{}", "choose exactly one DNS provider: rfc2136 or cloudflare"),
        (
            "{rfc2136: {server: ns1, tsig: {name: k, secretEnv: S}}, cloudflare: {tokenEnv: T}}",
            "(found rfc2136 and cloudflare)",
        ),
        (
            "{rfc2136: {server: ns1, tsig: {name: k}}}",
            "give exactly one of secretEnv and secretFile",
        ),
        ("{cloudflare: {zone: other.org, tokenEnv: T}}", "does not contain baseDomain"),
    ],
)
def test_relay_dns_checks(dns: str, expected: str) -> None:
    text = (
        "apiVersion: gate.hellas.ai/v1\nkind: Relay\nmetadata: {name: r}\nspec:\n"
        f"  baseDomain: gate.example.net\n  publicAddresses: [203.0.113.10]\n  dns: {dns}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="relay.yaml", env={})
    assert expected in str(caught.value)


def test_expect_kind_refuses_the_other_kind() -> None:
    text = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}\n"
    with pytest.raises(SpecError, match=r"gate.yaml:2:1 kind: this is a Node spec, but a Relay"):
        load_spec(text, source="gate.yaml", env={}, kind=RELAY)
