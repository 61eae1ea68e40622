"""Spec migrations: v1alpha1 -> v1, in memory on load and as text for `gate migrate -f`."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from gate_runner.migrations.spec import CURRENT_VERSION, MIGRATIONS, SUPPORTED_VERSIONS, migrate
from gate_runner.migrations.spec.v1alpha1_to_v1 import upgrade

from gate_runner.errors import SpecError
from gate_runner.spec import NodeSpec, load_spec, load_spec_file, migrate_text
from gate_runner.spec.locator import Locator
from gate_runner.spec.validate import validate_document

BOB_HEX = "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"
BOB = "12D3KooWJYhv7JADL8KbkHriZLZ3jpyzfJte4j658Z3KhEaN1sy2"
CAROL = "12D3KooWEwdWbGSG2bnwqa4Kug6hsyjiSESbmLK3Nvj2Hn13CLvp"
RELAY1 = (
    "/dns4/relay1.example.net/tcp/41146/p2p/12D3KooWEtZJxPY51i5sNsPXB2GyrPSenfrjMvTgV7QeRceK2VMq"
)
RELAY2 = (
    "/dns4/relay2.example.net/tcp/41146/p2p/12D3KooWPhyoHocnXxjNDdmoRakFw5ZYHcGCpfvXtYLBbqejUrvq"
)

V1ALPHA1_TEXT = textwrap.dedent(
    f"""\
    # alice's config, written for gate 0.0.x
    apiVersion: gate.hellas.ai/v1alpha1
    node:
      name: alice            # my laptop
      dataDir: /srv/gate
      keyFile: identity.pem
    network:
      listen: ["/ip4/0.0.0.0/tcp/41145"]
      peers:
        - name: bob
          id: {BOB_HEX}
          addrs: ["/ip4/203.0.113.7/tcp/41145"]
        - name: carol
          id: {CAROL}
      relays: ["{RELAY1}"]
    autodiscover: true
    discoveryInterval: 45
    providers:
      - {{name: ollama, type: ollama, url: "http://127.0.0.1:11434", timeout: 120}}
      - {{name: lmstudio, type: openai, url: "http://127.0.0.1:1234/v1", apiKeyEnv: LMSTUDIO_KEY}}
      - {{name: gguf, type: llamacpp, model: /models/qwen.gguf, timeout: 2.5}}
    security:
      trust: friends
      allowedPeers:
        - bob
        - {{peer: carol, models: ["llama3*"], requestsPerMinute: 60, concurrent: 4}}
    web:
      api: 127.0.0.1:31145
      control: 127.0.0.1:8145
      publicEndpoint:
        enabled: true
        relays: ["{RELAY2}", "{RELAY1}"]
        acmeEmail: alice@example.com
    """
)

EXPECTED_V1: dict[str, Any] = {
    "apiVersion": "gate.hellas.ai/v1",
    "kind": "Node",
    "metadata": {"name": "alice"},
    "spec": {
        "dataDir": "/srv/gate",
        "identity": {"keyFile": "identity.pem"},
        "listen": {
            "p2p": ["/ip4/0.0.0.0/tcp/41145"],
            "api": "127.0.0.1:31145",
            "control": "127.0.0.1:8145",
        },
        "providers": {
            "discovery": {"enabled": True, "interval": "45s"},
            "static": [
                {
                    "name": "ollama",
                    "kind": "ollama",
                    "url": "http://127.0.0.1:11434",
                    "timeout": "120s",
                },
                {
                    "name": "lmstudio",
                    "kind": "openai",
                    "url": "http://127.0.0.1:1234/v1",
                    "apiKeyEnv": "LMSTUDIO_KEY",
                },
                {
                    "name": "gguf",
                    "kind": "llamacpp",
                    "model": "/models/qwen.gguf",
                    "timeout": "2500ms",
                },
            ],
        },
        "peers": [
            {"name": "bob", "id": BOB_HEX, "addrs": ["/ip4/203.0.113.7/tcp/41145"]},
            {"name": "carol", "id": CAROL},
        ],
        "trust": {
            "mode": "friends",
            "allow": [
                {"peer": "bob"},
                {
                    "peer": "carol",
                    "models": ["llama3*"],
                    "rateLimit": {"requestsPerMinute": 60, "concurrent": 4},
                },
            ],
        },
        "endpoints": {
            "public": {
                "enabled": True,
                "relays": [RELAY1, RELAY2],
                "acme": {"email": "alice@example.com"},
            }
        },
    },
}


def _v1alpha1() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(V1ALPHA1_TEXT)
    return data


def test_chain_is_ordered_and_ends_at_the_current_version() -> None:
    assert MIGRATIONS[-1].to_version == CURRENT_VERSION
    for earlier, later in zip(MIGRATIONS, MIGRATIONS[1:], strict=False):
        assert earlier.to_version == later.from_version
    assert SUPPORTED_VERSIONS == ("gate.hellas.ai/v1", "gate.hellas.ai/v1alpha1")


def test_full_v1alpha1_document_migrates_to_the_expected_v1_document() -> None:
    migrated, old = migrate(_v1alpha1())
    assert old == "gate.hellas.ai/v1alpha1"
    assert migrated == EXPECTED_V1
    normalised = validate_document(migrated, kind="Node", locator=Locator("t"))
    assert normalised["spec"]["peers"][0]["id"] == BOB


def test_upgrade_does_not_mutate_its_input() -> None:
    document = _v1alpha1()
    before = copy.deepcopy(document)
    upgraded = upgrade(document)
    assert document == before
    upgraded["spec"]["peers"][0]["addrs"].append("/ip4/1.1.1.1/tcp/1")
    assert document == before  # and shares nothing with it


def test_current_version_is_left_alone() -> None:
    migrated, old = migrate(EXPECTED_V1)
    assert old is None and migrated == EXPECTED_V1


def test_minimal_v1alpha1() -> None:
    migrated, _ = migrate({"apiVersion": "gate.hellas.ai/v1alpha1", "node": {"name": "a"}})
    assert migrated == {
        "apiVersion": "gate.hellas.ai/v1",
        "kind": "Node",
        "metadata": {"name": "a"},
        "spec": {},
    }


def test_loading_a_v1alpha1_file_reports_migrated_from(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(V1ALPHA1_TEXT)
    loaded = load_spec_file(path, env={})
    assert loaded.migrated_from == "gate.hellas.ai/v1alpha1"
    assert loaded.document["apiVersion"] == "gate.hellas.ai/v1"
    assert isinstance(loaded.spec, NodeSpec)
    assert loaded.spec.peers[0].id == BOB
    assert loaded.spec.providers.discovery.interval == 45.0


def test_unknown_v1alpha1_key_is_located_in_the_old_text() -> None:
    text = V1ALPHA1_TEXT.replace("  keyFile: identity.pem", "  keyfile: identity.pem")
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="gate.yaml", env={})
    message = str(caught.value)
    assert (
        "gate.yaml:6:3 node.keyfile: unknown key 'keyfile' in a gate.hellas.ai/v1alpha1 config"
        in message
    )
    assert "did you mean 'keyFile'?" in message


def test_v1_error_in_a_migrated_file_says_so() -> None:
    text = V1ALPHA1_TEXT.replace("trust: friends", "trust: everyone")
    with pytest.raises(SpecError) as caught:
        load_spec(text, source="gate.yaml", env={})
    message = str(caught.value)
    assert "gate.yaml spec.trust.mode: must be one of private, friends, public" in message
    assert "gate migrate -f" in message


def test_migrate_text_output_loads_to_the_same_spec() -> None:
    text, old = migrate_text(V1ALPHA1_TEXT, source="gate.yaml")
    assert old == "gate.hellas.ai/v1alpha1"
    assert "apiVersion: gate.hellas.ai/v1\n" in text
    assert text.startswith("# alice's config, written for gate 0.0.x\n")  # the header survives
    loaded = load_spec(text, env={})
    assert loaded.migrated_from is None
    assert loaded.spec == load_spec(V1ALPHA1_TEXT, env={}).spec


def test_migrate_text_leaves_current_text_unchanged() -> None:
    text = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: a}  # hi\n"
    assert migrate_text(text, source="gate.yaml") == (text, None)


def test_migrate_text_refuses_what_would_not_load() -> None:
    text = V1ALPHA1_TEXT.replace("name: alice", "name: Alice")
    with pytest.raises(SpecError, match="metadata.name: not a valid name"):
        migrate_text(text, source="gate.yaml")
