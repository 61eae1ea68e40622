"""How long Gate waits for Ollama: long by default (Ollama sends nothing while it loads a
model, nor before a non-streamed answer is complete), configurable for static and
discovered providers, and a wait longer than the setting is a 504."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from gate_runner.errors import SpecError
from gate_runner.httpclient import UpstreamTimeout
from gate_runner.providers.base import UpstreamRequest
from gate_runner.providers.factory import build_backend
from gate_runner.providers.ollama import OllamaBackend
from gate_runner.spec import load_spec
from gate_runner.spec.model import build_node_spec
from gate_runner.wire.openai import validate_chat
from tests.rig import GateNode, ServerProcess

TEN_MINUTES = 600.0


def node_spec(providers: dict[str, Any]) -> Any:
    return build_node_spec(
        {
            "apiVersion": "gate.hellas.ai/v1",
            "kind": "Node",
            "metadata": {"name": "n"},
            "spec": {"providers": providers},
        }
    )


# --- the settings ---------------------------------------------------------------------------


def test_ollama_providers_wait_ten_minutes_by_default() -> None:
    spec = node_spec(
        {
            "static": [
                {"name": "o", "kind": "ollama", "url": "http://127.0.0.1:11434"},
                {"name": "l", "kind": "openai", "url": "http://127.0.0.1:1234/v1"},
                {"name": "s", "kind": "ollama", "url": "http://127.0.0.1:1", "timeout": "90s"},
            ]
        }
    )
    ollama, openai, set_by_hand = spec.providers.static
    assert (ollama.timeout, openai.timeout, set_by_hand.timeout) == (TEN_MINUTES, 60.0, 90.0)
    assert build_backend(ollama).timeout == TEN_MINUTES  # type: ignore[attr-defined]
    assert OllamaBackend(name="o", url="http://127.0.0.1:11434").timeout == TEN_MINUTES
    # discovered engines: the default targets, by kind
    targets = {t.name: t.timeout for t in spec.providers.discovery.targets}
    assert targets == {"ollama": TEN_MINUTES, "lmstudio": 60.0}


def test_discovered_providers_take_a_timeout() -> None:
    shared = node_spec({"discovery": {"timeout": "2m"}}).providers.discovery
    assert {t.timeout for t in shared.targets} == {120.0}
    spec = node_spec(
        {
            "discovery": {
                "timeout": "2m",
                "targets": [
                    {"name": "a", "kind": "ollama", "url": "http://127.0.0.1:1", "timeout": "5s"},
                    {"name": "b", "kind": "ollama", "url": "http://127.0.0.1:2"},
                ],
            }
        }
    )
    assert [t.timeout for t in spec.providers.discovery.targets] == [5.0, 120.0]
    alone = node_spec(
        {"discovery": {"targets": [{"name": "a", "kind": "ollama", "url": "http://127.0.0.1:1"}]}}
    )
    assert alone.providers.discovery.targets[0].timeout == TEN_MINUTES


def test_a_discovery_timeout_of_zero_is_refused_where_it_is_written() -> None:
    text = """\
apiVersion: gate.hellas.ai/v1
kind: Node
metadata: {name: n}
spec:
  providers:
    discovery:
      timeout: 0s
      targets:
        - {name: a, kind: ollama, url: "http://127.0.0.1:1", timeout: 0s}
"""
    with pytest.raises(SpecError) as info:
        load_spec(text, source="gate.yaml", env={})
    assert "gate.yaml:7:7 spec.providers.discovery.timeout: must be longer than 0s" in str(
        info.value
    )
    assert "spec.providers.discovery.targets[0].timeout: must be longer than 0s" in str(info.value)


# --- the backend on a real socket -----------------------------------------------------------


@pytest.fixture(scope="module")
def slow() -> Iterator[str]:
    # slow-*: 0.3 s per word before any byte, so 0.9 s of silence for "a b c"
    server = ServerProcess("tests.fakes.ollama", "--delay", "0.3")
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def loading() -> Iterator[str]:
    server = ServerProcess("tests.fakes.ollama", "--models", "one,two", "--load-delay", "0.8")
    yield server.url
    server.stop()


def chat(model: str, *, stream: bool) -> UpstreamRequest:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "a b c"}]}
    return UpstreamRequest("chat", validate_chat(body), json.dumps(body).encode(), "chatcmpl-t")


async def answer(url: str, silence: float, request: UpstreamRequest) -> bytes:
    backend = OllamaBackend(name="o", url=url, timeout=silence)
    try:
        with anyio.fail_after(10):
            async with backend.open(request) as reply:
                assert reply.status == 200
                out = b""
                while chunk := await reply.body.receive():
                    out += chunk
                return out
    finally:
        await backend.aclose()


@pytest.mark.anyio
async def test_a_non_streamed_answer_is_silent_until_it_is_complete(slow: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await answer(slow, 0.5, chat("slow-m", stream=False))
    body = json.loads(await answer(slow, 3, chat("slow-m", stream=False)))
    assert body["choices"][0]["message"]["content"] == "a b c"


@pytest.mark.anyio
async def test_no_head_comes_while_a_model_loads(loading: str) -> None:
    with pytest.raises(UpstreamTimeout):
        await answer(loading, 0.4, chat("one", stream=True))
    events = await answer(loading, 3, chat("two", stream=True))
    assert events.endswith(b"data: [DONE]\n\n")


# --- through a node ------------------------------------------------------------------------


@pytest.fixture
def slow_fakes() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    # Non-streamed, "a b c" keeps a slow-* model silent for 3 x 0.6 s before it answers.
    # Each fake lists its own model, so that the node routes each to one provider.
    first = ServerProcess("tests.fakes.ollama", "--models", "slow-short", "--delay", "0.6")
    try:
        second = ServerProcess("tests.fakes.ollama", "--models", "slow-long", "--delay", "0.6")
    except BaseException:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()


@pytest.mark.e2e
def test_discovered_ollama_waits_as_configured(
    tmp_path: Path,
    node_factory: type[GateNode],
    slow_fakes: tuple[ServerProcess, ServerProcess],
) -> None:
    short, long = slow_fakes
    node = node_factory(
        tmp_path,
        extra="  routing:\n    retry: {maxAttempts: 1}\n",
    )
    node.spec_path.write_text(
        node.spec_path.read_text().replace(
            "      enabled: false",
            "      enabled: true\n"
            "      timeout: 5s\n"
            "      targets:\n"
            f"        - {{name: short, kind: ollama, url: '{short.url}', timeout: 1s}}\n"
            f"        - {{name: long, kind: ollama, url: '{long.url}'}}",
        )
    )
    node.start()
    assert {p["name"] for p in node.rpc("providers.list")} == {"short", "long"}
    api = f"http://127.0.0.1:{node.api_port}/v1/chat/completions"

    def ask(model: str) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        body = {"model": model, "messages": [{"role": "user", "content": "a b c"}]}
        response = httpx.post(api, json=body, timeout=30)
        return response, time.monotonic() - began

    # 1.8 s of silence: past the short target's own 1 s, within discovery.timeout's 5 s
    cut, waited = ask("slow-short:latest")
    assert cut.status_code == 504, cut.text
    assert cut.json()["error"]["code"] == "upstream_timeout"
    assert 1.0 <= waited < 1.8
    finished, waited = ask("slow-long:latest")
    assert finished.status_code == 200, finished.text
    assert finished.json()["choices"][0]["message"]["content"] == "a b c"
    assert waited >= 1.8
