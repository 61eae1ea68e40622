"""A static provider's model allowlist and name prefix, through a real node and the
recorded-contract Ollama: /v1/models, providers.list, routing and a peer's view (the P2P
hello) all show the allowed models under the prefix, a request for a prefixed name reaches
the engine under the engine's own name, and a hidden model is not found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.rig import GateNode, ServerProcess, linked_pair

ENGINE_MODELS = "llama3:8b,llama3:70b,qwen2:0.5b,phi3:mini"
OFFERED = ["home/llama3:70b", "home/llama3:8b", "home/qwen2:0.5b"]


@pytest.fixture
def ollama() -> Iterator[ServerProcess]:
    server = ServerProcess("tests.fakes.ollama", "--models", ENGINE_MODELS, "--delay", "0")
    yield server
    server.stop()


def provider(url: str, fields: str = ", models: ['llama3*', 'qwen2:*'], prefix: home/") -> str:
    return f"{{name: home, kind: ollama, url: '{url}'{fields}}}"


def chat(node: GateNode, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{node.api_port}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra},
        timeout=30,
    )


def listed(node: GateNode) -> list[str]:
    answer = httpx.get(f"http://127.0.0.1:{node.api_port}/v1/models").json()
    return sorted(m["id"] for m in answer["data"])


def test_only_allowed_models_are_offered_and_routed_under_the_prefix(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    node = node_factory(tmp_path, extra=f"    static:\n      - {provider(ollama.url)}\n")
    node.start()
    assert listed(node) == OFFERED
    (home,) = node.rpc("providers.list")
    assert sorted(home["models"]) == OFFERED

    reply = chat(node, "home/llama3:8b")
    assert reply.status_code == 200, reply.text
    # The fake Ollama serves only names it lists, so the engine got the bare name.
    assert reply.json()["model"] == "llama3:8b"
    assert reply.json()["choices"][0]["message"]["content"] == "hello there"
    assert reply.headers["x-gate-provider"] == "home"

    streamed = chat(node, "home/qwen2:0.5b", stream=True)
    assert streamed.status_code == 200, streamed.text
    assert "hello" in streamed.text and streamed.text.rstrip().endswith("data: [DONE]")

    # The engine has phi3:mini, but the allowlist hides it, under either name; and a model
    # the allowlist lets through is known only by its prefixed name.
    for hidden in ("home/phi3:mini", "phi3:mini", "llama3:8b"):
        refused = chat(node, hidden)
        assert refused.status_code == 404, (hidden, refused.text)
        assert refused.json()["error"]["code"] == "model_not_found"


def test_a_changed_allowlist_and_prefix_apply_without_a_restart(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    node = node_factory(tmp_path, extra=f"    static:\n      - {provider(ollama.url)}\n")
    node.start()
    got = node.rpc("spec.get")
    document = got["document"]
    (entry,) = document["spec"]["providers"]["static"]
    entry.update(models=["phi3:*"], prefix="lab.")
    result = node.rpc(
        "spec.apply", {"yaml": json.dumps(document), "expectedGeneration": got["generation"]}
    )
    assert result["converged"], result
    assert listed(node) == ["lab.phi3:mini"]
    assert chat(node, "lab.phi3:mini").status_code == 200
    assert chat(node, "home/llama3:8b").status_code == 404
    # Back to every model under its own name: both fields removed.
    got = node.rpc("spec.get")
    document = got["document"]
    (entry,) = document["spec"]["providers"]["static"]
    del entry["models"], entry["prefix"]
    node.rpc("spec.apply", {"yaml": json.dumps(document), "expectedGeneration": got["generation"]})
    assert listed(node) == sorted(ENGINE_MODELS.split(","))


def test_a_peer_sees_and_reaches_only_the_allowed_prefixed_models(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    alice, bob = linked_pair(node_factory, tmp_path, provider(ollama.url))
    (link,) = bob.rpc("peers.list")
    assert sorted(link["models"]) == OFFERED
    assert [m for m in listed(bob) if m.startswith("home/")] == OFFERED

    reply = chat(bob, "home/llama3:70b@alice")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-gate-node"] == "alice"
    refused = chat(bob, "home/phi3:mini@alice")
    assert refused.status_code == 404, refused.text
