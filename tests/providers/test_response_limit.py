"""spec.limits.maxResponseBody holds for every `openai` provider, static or found by
discovery: a node built with a small limit answers 502 upstream_too_large for a longer
answer from the real llama.cpp server, and serves a short one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.llm.engine import LlamaServer
from tests.rig import GateNode

# Over the server's model list (about 130 bytes) and a one-token answer (about 320), under
# an answer of 200 tokens (about 800).
LIMIT = 512


def _spec_extra(source: str, url: str) -> str:
    limits = f"  limits:\n    maxResponseBody: {LIMIT}\n"
    if source == "static":
        return f"    static:\n      - {{name: llama, kind: openai, url: '{url}'}}\n{limits}"
    return limits


@pytest.mark.parametrize("source", ["static", "discovered"])
def test_a_long_answer_is_refused_past_max_response_body(
    tmp_path: Path, node_factory: type[GateNode], llama_server: LlamaServer, source: str
) -> None:
    url = llama_server.base_url
    node = node_factory(tmp_path, extra=_spec_extra(source, url))
    if source == "discovered":
        node.spec_path.write_text(
            node.spec_path.read_text().replace(
                "      enabled: false",
                "      enabled: true\n      interval: 1s\n      targets:\n"
                f"        - {{name: llama, kind: openai, url: '{url}'}}",
            )
        )
    node.start()
    listed = node.rpc("providers.list")
    assert [(p["name"], p["source"]) for p in listed] == [("llama", source)]
    model = httpx.get(f"{url}/models").json()["data"][0]["id"]
    chat = f"http://127.0.0.1:{node.api_port}/v1/chat/completions"
    messages = [{"role": "user", "content": "hello"}]

    short = httpx.post(chat, json={"model": model, "max_tokens": 1, "messages": messages})
    assert short.status_code == 200, short.text
    long = httpx.post(
        chat, json={"model": model, "max_tokens": 200, "messages": messages}, timeout=30
    )
    assert long.status_code == 502, long.text
    assert long.json()["error"]["code"] == "upstream_too_large"
