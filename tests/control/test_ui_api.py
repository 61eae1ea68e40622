"""The web UI's way to the node's OpenAI API: /v1/chat/completions, /v1/completions and
/v1/models on the control port ("Try it"), on a real node with the recorded-contract
Ollama. Only a logged-in session (or the control token) gets through, a foreign Host or a
cross-site page is refused, a stream arrives chunk by chunk as the engine sends it, the
request lands in the node's one request log, and a session needs no API key even when
spec.listen.apiKeys is set (the API port still does)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.rig import GateNode, ServerProcess, ollama_provider

pytestmark = pytest.mark.e2e

DELAY = 0.3  # seconds the fake Ollama waits before each line of a slow-* model
SLOW_MODEL = "slow-llama:latest"
KEY_ENV = "GATE_TEST_UI_API_KEY"
API_KEY = "sk-test-ui-api"


@pytest.fixture(scope="module")
def ollama() -> Iterator[ServerProcess]:
    server = ServerProcess(
        "tests.fakes.ollama", "--models", f"llama3.2:latest,{SLOW_MODEL}", "--delay", str(DELAY)
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, ollama: ServerProcess) -> Iterator[GateNode]:
    """A node whose API port asks for a key (spec.listen.apiKeys), with one Ollama engine."""
    tmp: Path = tmp_path_factory.mktemp("ui-api")
    gate = GateNode(tmp, extra=f"    static:\n      - {ollama_provider(ollama.url)}\n")
    text = gate.spec_path.read_text()
    gate.spec_path.write_text(
        text.replace("    control:", f"    apiKeys: [{KEY_ENV}]\n    control:")
    )
    gate.start(env={KEY_ENV: API_KEY})
    gate.wait_for(
        lambda: any(p["models"] for p in gate.rpc("providers.list")), timeout=15, what="models"
    )
    yield gate
    gate.stop()


def base(node: GateNode) -> str:
    return f"http://127.0.0.1:{node.control_port}"


@pytest.fixture
def session(node: GateNode) -> Iterator[httpx.Client]:
    """A client logged in as a browser is (the one-time link), sending the UI's Origin."""
    with httpx.Client(timeout=30, headers={"Origin": base(node)}) as client:
        response = client.get(node.rpc("node.loginLink")["url"])
        assert response.status_code == 303, response.text
        assert "gate_session" in client.cookies
        yield client


def chat(model: str, *, stream: bool, max_tokens: int = 6) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "one two three four five six seven"}],
        "stream": stream,
        "max_tokens": max_tokens,
    }


def test_the_pass_through_needs_a_session(node: GateNode) -> None:
    for method, path, body in (
        ("POST", "/v1/chat/completions", chat("llama3.2:latest", stream=False)),
        ("POST", "/v1/completions", {"model": "llama3.2:latest", "prompt": "hi"}),
        ("GET", "/v1/models", None),
    ):
        response = httpx.request(method, base(node) + path, json=body, timeout=10)
        assert response.status_code == 401, (path, response.text)
        assert "error" in response.json()
    # A wrong method is not a way in either.
    assert httpx.get(base(node) + "/v1/chat/completions", timeout=10).status_code == 405
    # Nothing reached the engine.
    assert node.rpc("requests.list") == []


def test_a_foreign_host_or_a_cross_site_page_is_refused(
    node: GateNode, session: httpx.Client
) -> None:
    url = base(node) + "/v1/chat/completions"
    body = chat("llama3.2:latest", stream=False)
    # DNS rebinding: the right address under another name.
    rebound = session.post(url, json=body, headers={"Host": "evil.example:80"})
    assert rebound.status_code == 421, rebound.text
    # A page of another site, with the session cookie riding along.
    foreign = session.post(url, json=body, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403, foreign.text
    assert "evil.example" in foreign.json()["error"]
    # The browser's own word for it, with no Origin at all.
    cross = session.post(url, json=body, headers={"Origin": "", "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code in (401, 403), cross.text
    # A cookie without an Origin (a form or a script of another site) is not enough.
    bare = httpx.post(url, json=body, cookies=session.cookies, timeout=10)
    assert bare.status_code == 401, bare.text


def test_a_session_streams_chunk_by_chunk_and_the_request_is_logged(
    node: GateNode, session: httpx.Client
) -> None:
    # The API port itself asks for the key...
    api = f"http://127.0.0.1:{node.api_port}/v1/models"
    assert httpx.get(api, timeout=10).status_code == 401
    # ...but the owner's session needs none.
    models = session.get(base(node) + "/v1/models")
    assert models.status_code == 200, models.text
    ids = [m["id"] for m in models.json()["data"]]
    assert "llama3.2:latest" in ids

    began = time.monotonic()
    arrivals: list[tuple[float, str]] = []
    with session.stream(
        "POST", base(node) + "/v1/chat/completions", json=chat(SLOW_MODEL, stream=True)
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - began, line[6:]))
    assert arrivals[-1][1] == "[DONE]"
    text = "".join(
        (json.loads(data)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for _, data in arrivals[:-1]
    )
    assert text.strip(), arrivals
    # Unbuffered: the content chunks came over more than a second, spaced as the engine
    # sent them (DELAY apart), not all at once at the end.
    content_times = [t for t, data in arrivals[:-1] if '"content"' in data]
    assert len(content_times) >= 4, arrivals
    assert content_times[-1] - content_times[0] >= 3 * DELAY * 0.8, content_times
    gaps = [b - a for a, b in zip(content_times, content_times[1:], strict=False)]
    assert sum(gap >= DELAY * 0.5 for gap in gaps) >= 3, gaps

    # The same request log as the API port: requests.list has it, by its id.
    records = node.rpc("requests.list", {"model": SLOW_MODEL})
    assert [r["id"] for r in records] == [request_id]
    assert records[0]["status"] == 200 and records[0]["stream"] is True


def test_completions_and_errors_come_through_as_the_api_says_them(
    node: GateNode, session: httpx.Client
) -> None:
    done = session.post(
        base(node) + "/v1/completions",
        json={"model": "llama3.2:latest", "prompt": "say hi", "max_tokens": 3},
    )
    assert done.status_code == 200, done.text
    assert done.json()["choices"][0]["text"]
    # An unknown model: the API's own OpenAI-shaped error, passed on as it is.
    missing = session.post(
        base(node) + "/v1/chat/completions", json=chat("no-such-model", stream=False)
    )
    assert missing.status_code == 404, missing.text
    assert "no-such-model" in missing.json()["error"]["message"]


def test_the_control_token_works_too(node: GateNode) -> None:
    """The CLI and scripts hold the control token, not a session."""
    response = httpx.get(
        base(node) + "/v1/models", headers={"Authorization": f"Bearer {node.token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert any(m["id"] == "llama3.2:latest" for m in response.json()["data"])
