"""The inference gateway end to end: real engines behind a `gate up` process, real clients."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from gate_runner.identity import Identity
from tests.llm.engine import LlamaServer
from tests.rig import GateNode, ServerProcess, free_port, run_gate

pytestmark = pytest.mark.e2e


def providers(*entries: str) -> str:
    return "    static:\n" + "".join(f"      - {e}\n" for e in entries)


def client(node: GateNode, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{node.api_port}/v1", api_key="unused", max_retries=0, **kw
    )  # type: ignore[arg-type]


def api(node: GateNode) -> str:
    return f"http://127.0.0.1:{node.api_port}"


@pytest.fixture
def llama_node(tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer) -> GateNode:
    node = node_factory(
        tmp_path, extra=providers(f"{{name: llama, kind: openai, url: '{engine.base_url}'}}")
    )
    node.start()
    return node


def test_openai_client_models_chat_stream_embeddings(llama_node: GateNode) -> None:
    c = client(llama_node)
    models = c.models.list()
    tiny = next(m for m in models.data if m.id == "tiny")
    extra = tiny.model_extra or {}
    assert extra["gate"]["provider"] == "llama" and extra["gate"]["local"] is True
    assert extra["gate"]["node_name"] == "test-node"
    assert c.models.retrieve("tiny").id == "tiny"

    raw = c.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert raw.headers["x-gate-provider"] == "llama"
    assert raw.headers["x-gate-attempts"] == "1"
    assert raw.headers["x-gate-node"] == "test-node"
    chat = raw.parse()
    assert chat.usage is not None and chat.usage.completion_tokens == 8
    assert chat.choices[0].finish_reason == "length"
    assert chat.choices[0].message.content

    pieces = []
    for chunk in c.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=12, stream=True
    ):
        pieces.extend(ch.delta.content or "" for ch in chunk.choices)
    assert len([p for p in pieces if p]) == 12

    completion = c.completions.create(model="tiny", prompt="once upon", max_tokens=5)
    assert completion.usage is not None and completion.usage.completion_tokens == 5

    emb = c.embeddings.create(model="tiny", input=["a cat", "a dog"])
    assert len(emb.data) == 2 and len(emb.data[0].embedding) == 64

    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}], max_tokens=4
        )
    assert err.value.code == "model_not_found"


def test_sse_through_curl(llama_node: GateNode) -> None:
    body = json.dumps(
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 6,
            "stream": True,
        }
    )
    out = subprocess.run(
        [
            "curl",
            "-sN",
            "-H",
            "content-type: application/json",
            "-d",
            body,
            f"{api(llama_node)}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    events = [line[6:] for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 6


def test_request_log_metrics_and_provider_cli(llama_node: GateNode) -> None:
    c = client(llama_node)
    c.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=4
    )
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}], max_tokens=4
        )
    spec = str(llama_node.spec_path)

    def logged() -> list[dict]:
        out = run_gate("requests", "ls", "-f", spec, "-o", "json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    llama_node.wait_for(lambda: len(logged()) >= 2, timeout=5, what="request records")
    ok, missing = sorted(logged()[:2], key=lambda r: r["status"])
    assert ok["status"] == 200 and ok["model"] == "tiny" and ok["provider"] == "llama"
    assert ok["completionTokens"] == 4 and ok["ttftMs"] is not None and ok["attempts"] == 1
    assert ok["source"].startswith("127.0.0.1:")
    assert missing["status"] == 404 and missing["model"] == "nope"

    metrics = httpx.get(
        f"http://127.0.0.1:{llama_node.control_port}/metrics",
        headers={"Authorization": f"Bearer {llama_node.token}"},
    ).text
    assert "gate_requests_total{" in metrics and 'model="tiny"' in metrics
    assert "gate_tokens_total{" in metrics and "gate_requests_in_flight 0.0" in metrics
    assert httpx.get(f"http://127.0.0.1:{llama_node.control_port}/metrics").status_code == 401

    ls = run_gate("providers", "ls", "-f", spec)
    assert ls.returncode == 0 and "llama" in ls.stdout and "Healthy" in ls.stdout
    assert "tiny" in ls.stdout
    test = run_gate("providers", "test", "-f", spec, "-o", "json")
    assert test.returncode == 0, test.stderr
    assert json.loads(test.stdout)[0]["health"]["state"] == "Healthy"


BAD_REQUESTS = {
    "not json": (b"{not json", 400, None),
    "not an object": (b"[1, 2]", 400, None),
    "messages missing": (json.dumps({"model": "tiny"}).encode(), 400, "messages"),
    "messages wrong type": (
        json.dumps({"model": "tiny", "messages": "hi"}).encode(),
        400,
        "messages",
    ),
    "unknown model": (
        json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode(),
        404,
        "model",
    ),
    "negative max_tokens": (
        json.dumps(
            {"model": "tiny", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]}
        ).encode(),
        400,
        "max_tokens",
    ),
    "10 MB body": (
        b'{"model": "tiny", "messages": [], "pad": "' + b"x" * (10 << 20) + b'"}',
        413,
        None,
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_openai_errors(llama_node: GateNode, case: str) -> None:
    body, status, param = BAD_REQUESTS[case]
    response = httpx.post(
        f"{api(llama_node)}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param:
        assert error["param"] == param or param in error["message"]
    # The node keeps serving.
    ok = client(llama_node).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    assert ok.choices[0].finish_reason == "length"


def test_body_cap_is_configurable(
    tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer
) -> None:
    node = node_factory(
        tmp_path,
        extra=providers(f"{{name: llama, kind: openai, url: '{engine.base_url}'}}")
        + "  limits:\n    maxRequestBody: 16KiB\n",
    )
    node.start()
    big = {
        "model": "tiny",
        "max_tokens": 2,
        "messages": [{"role": "user", "content": "x" * 20_000}],
    }
    response = httpx.post(f"{api(node)}/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert "maxRequestBody" in response.json()["error"]["message"]


def test_ollama_provider_translates_both_ways(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    node = node_factory(
        tmp_path, extra=providers(f"{{name: ollama, kind: ollama, url: '{ollama.url}'}}")
    )
    node.start()
    c = client(node)
    ids = {m.id for m in c.models.list().data}
    assert {"llama3:8b", "qwen2:0.5b"} <= ids
    chat = c.chat.completions.create(
        model="llama3:8b",
        messages=[{"role": "user", "content": "one two three four"}],
        max_tokens=2,
    )
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None and chat.usage.completion_tokens == 2
    stream = c.chat.completions.create(
        model="llama3:8b",
        messages=[{"role": "user", "content": "alpha beta gamma"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "alpha" in text and "gamma" in text
    assert chunks[-1].usage is not None and chunks[-1].choices == []

    # An error line mid-stream and a provider dying mid-stream: the stream has started (200,
    # content events), and it ends with an SSE error event, never a hang or a bare cut.
    for model in ("error-model:latest", "dying-model:latest"):
        body = {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d e f"}],
        }
        with httpx.stream(
            "POST", f"{api(node)}/v1/chat/completions", json=body, timeout=30
        ) as response:
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        assert any('"content"' in e for e in events[:-1]), events
        assert json.loads(events[-1])["error"]["message"], events


def _stats(server: ServerProcess) -> dict:
    return httpx.get(f"{server.url}/stats", timeout=5).json()


def test_failing_providers_get_the_right_errors(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    dead = free_port()
    node = node_factory(
        tmp_path,
        extra=providers(
            f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1', timeout: 1s}}",
            f"{{name: dead, kind: openai, url: 'http://127.0.0.1:{dead}/v1'}}",
        )
        # Room for all the failures below before the breaker opens (tested on its own).
        + "  routing:\n    circuitBreaker: {failureThreshold: 100}\n",
    )
    node.start()
    url = f"{api(node)}/v1/chat/completions"

    def post(model: str, **extra: object) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}
        return httpx.post(url, json=body, timeout=30)

    hang = post("hang")
    assert hang.status_code == 504, hang.text
    assert hang.json()["error"]["code"] == "upstream_timeout"
    garbage = post("garbage")
    assert garbage.status_code == 502, garbage.text

    def streamed(model: str) -> list[str]:
        body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
        with httpx.stream("POST", url, json=body, timeout=30) as answer:
            assert answer.status_code == 200
            return [line for line in answer.iter_lines() if line.startswith("data: ")]

    events = streamed("cut")
    assert '"error"' in events[-1], events
    # Framed by the connection's close, a cut stream must not pass as a clean end ...
    events = streamed("cut-eof")
    assert len(events) == 3 and '"error"' in events[-1], events
    assert "finish reason" in json.loads(events[-1][6:])["error"]["message"]
    # ... while one that finished without [DONE] is a success.
    events = streamed("eof-done")
    assert len(events) == 3 and not any('"error"' in e for e in events), events
    ok = post("ok")
    assert ok.status_code == 200, ok.text
    # Each failure was retried (maxAttempts 3) before the answer went out.
    records = node.rpc("requests.list", {"limit": 10})
    by_model = {r["model"]: r for r in records}
    assert by_model["hang"]["attempts"] == 3 and by_model["hang"]["status"] == 504
    assert by_model["cut"]["status"] == 502 and "mid-response" in by_model["cut"]["error"]
    assert by_model["cut-eof"]["status"] == 502 and "[DONE]" in by_model["cut-eof"]["error"]
    assert by_model["eof-done"]["status"] == 200
    assert node.status() is not None  # still serving


def test_failover_before_the_first_byte(tmp_path: Path, node_factory: type[GateNode]) -> None:
    first = ServerProcess("tests.fakes.badhttp")
    second = ServerProcess("tests.fakes.badhttp")
    try:
        node = node_factory(
            tmp_path,
            extra=providers(
                f"{{name: first, kind: openai, url: '{first.url}/v1'}}",
                f"{{name: second, kind: openai, url: '{second.url}/v1'}}",
            ),
        )
        node.start()
        first.stop()  # its models stay cached: the router finds out at request time
        url = f"{api(node)}/v1/chat/completions"
        body = {"model": "ok", "messages": [{"role": "user", "content": "x"}]}
        replies = [httpx.post(url, json=body, timeout=30) for _ in range(5)]
        assert all(r.status_code == 200 for r in replies)
        assert all(r.headers["x-gate-provider"] == "second" for r in replies)
        attempts = [int(r.headers["x-gate-attempts"]) for r in replies]
        # The first request fails over; then the latency average steers requests to the
        # provider that answers, so they go there first.
        assert attempts == [2, 1, 1, 1, 1]
    finally:
        first.stop()
        second.stop()


def test_circuit_breaker_opens_and_answers_503_with_retry_after(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    upstream = ServerProcess("tests.fakes.badhttp")
    try:
        node = node_factory(
            tmp_path,
            extra=providers(f"{{name: only, kind: openai, url: '{upstream.url}/v1'}}")
            + "  routing:\n    circuitBreaker: {failureThreshold: 2, cooldown: 30s}\n",
        )
        node.start()
        upstream.stop()
        url = f"{api(node)}/v1/chat/completions"
        body = {"model": "ok", "messages": [{"role": "user", "content": "x"}]}
        first = httpx.post(url, json=body, timeout=30)
        assert first.status_code == 503 and "unreachable" in first.json()["error"]["message"]
        assert first.headers.get("x-request-id")
        second = httpx.post(url, json=body, timeout=30)
        assert second.status_code == 503
        assert second.json()["error"]["code"] == "no_provider_available"
        assert 25 <= int(second.headers["retry-after"]) <= 30
        listed = {p["name"]: p for p in node.rpc("providers.list")}
        assert listed["only"]["breaker"] == "open"
        records = node.rpc("requests.list", {"limit": 2})
        assert [r["attempts"] for r in records] == [0, 2]  # newest first: refused at once
    finally:
        upstream.stop()


def test_random_disconnects_leave_nothing_open(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    import random

    import trio

    node = node_factory(
        tmp_path, extra=providers(f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}")
    )
    node.start()
    url = f"{api(node)}/v1/chat/completions"
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    rng = random.Random(7)
    got: list[int] = []
    payload = json.dumps(body).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    ).encode() + payload

    async def one() -> None:
        # A raw socket: the client reads a few events, then just goes away.
        keep = rng.randint(0, 8)
        stream = await trio.open_tcp_stream("127.0.0.1", node.api_port)
        async with stream:
            await stream.send_all(request)
            events = 0
            while events <= keep:
                data = await stream.receive_some(65536)
                if not data:
                    break
                events += data.count(b"data: ")
            got.append(events)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)

    trio.run(main)
    assert len(got) == 200
    # Every abandoned stream reached the upstream as a closed connection.
    node.wait_for(
        lambda: _stats(bad_upstream)["streaming"] == 0, timeout=10, what="upstream streams closed"
    )
    metrics = httpx.get(
        f"http://127.0.0.1:{node.control_port}/metrics",
        headers={"Authorization": f"Bearer {node.token}"},
    ).text
    assert "gate_requests_in_flight 0.0" in metrics
    records = node.rpc("requests.list", {"limit": 300})
    assert sum(1 for r in records if r["status"] == 499) > 100
    ok = httpx.post(url, json={"model": "ok", "messages": [{"role": "user", "content": "x"}]})
    assert ok.status_code == 200


def test_clients_leaving_non_streamed_requests_at_random_leave_nothing_open(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    """100 clients of a hanging upstream, each leaving at a random moment before or after
    the watcher's grace: every upstream connection is closed by the abort signal, long
    before the provider's 60 s timeout, and the node is left with nothing in flight."""
    import random

    import trio

    node = node_factory(
        tmp_path, extra=providers(f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}")
    )
    node.start()
    payload = json.dumps({"model": "hang", "messages": [{"role": "user", "content": "x"}]})
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n{payload}"
    ).encode()
    rng = random.Random(11)

    async def one() -> None:
        async with await trio.open_tcp_stream("127.0.0.1", node.api_port) as stream:
            await stream.send_all(request)
            await trio.sleep(rng.uniform(0.0, 0.3))  # the grace is 0.05 s

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(one)

    hung_before = _stats(bad_upstream)["hung"]
    began = time.monotonic()
    trio.run(main)
    node.wait_for(
        lambda: _stats(bad_upstream)["hanging"] == 0, timeout=10, what="upstream requests closed"
    )
    assert time.monotonic() - began < 10  # the provider's own timeout is 60 s
    assert _stats(bad_upstream)["hung"] - hung_before == 100  # every one reached the engine
    records = node.rpc("requests.list", {"limit": 200})
    assert len(records) == 100
    assert {(r["status"], r["error"]) for r in records} == {(499, "client disconnected")}
    metrics = httpx.get(
        f"http://127.0.0.1:{node.control_port}/metrics",
        headers={"Authorization": f"Bearer {node.token}"},
    ).text
    assert "gate_requests_in_flight 0.0" in metrics
    ok = httpx.post(
        f"{api(node)}/v1/chat/completions",
        json={"model": "ok", "messages": [{"role": "user", "content": "x"}]},
    )
    assert ok.status_code == 200


def test_no_engine_says_so_plainly(tmp_path: Path, node_factory: type[GateNode]) -> None:
    a, b = free_port(), free_port()
    node = node_factory(tmp_path)
    node.spec_path.write_text(
        node.spec_path.read_text().replace(
            "      enabled: false",
            "      enabled: true\n      targets:\n"
            f"        - {{name: ollama, kind: ollama, url: 'http://127.0.0.1:{a}'}}\n"
            f"        - {{name: lmstudio, kind: openai, url: 'http://127.0.0.1:{b}/v1'}}",
        )
    )
    node.start()
    listing = httpx.get(f"{api(node)}/v1/models").json()
    assert listing["data"] == [] and "no provider found" in listing["gate"]["message"]
    chat = httpx.post(
        f"{api(node)}/v1/chat/completions",
        json={"model": "x", "messages": [{"role": "user", "content": "x"}]},
    )
    assert chat.status_code == 503
    assert "spec.providers.static" in chat.json()["error"]["message"]
    status = run_gate("status", "-f", str(node.spec_path))
    assert "NoneFound" in status.stdout and "start Ollama or LM Studio" in status.stdout


def test_discovery_finds_an_engine(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    node = node_factory(tmp_path)
    node.spec_path.write_text(
        node.spec_path.read_text().replace(
            "      enabled: false",
            "      enabled: true\n      interval: 1s\n      targets:\n"
            f"        - {{name: ollama, kind: ollama, url: '{ollama.url}'}}",
        )
    )
    node.start()
    ids = {m["id"]: m for m in httpx.get(f"{api(node)}/v1/models").json()["data"]}
    assert ids["llama3:8b"]["gate"]["provider"] == "ollama"
    listed = node.rpc("providers.list")
    assert listed[0]["source"] == "discovered"


def test_api_keys(tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer) -> None:
    node = node_factory(
        tmp_path, extra=providers(f"{{name: llama, kind: openai, url: '{engine.base_url}'}}")
    )
    node.spec_path.write_text(
        node.spec_path.read_text().replace(
            "    control:", "    apiKeys: [TEST_GATE_KEY]\n    control:"
        )
    )
    node.start(env={"TEST_GATE_KEY": "s3cret"})
    body = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}
    denied = httpx.post(f"{api(node)}/v1/chat/completions", json=body)
    assert denied.status_code == 401 and denied.json()["error"]["type"] == "authentication_error"
    wrong = httpx.post(
        f"{api(node)}/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    ok = httpx.post(
        f"{api(node)}/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 200
    assert "s3cret" not in node.log() and "s3cret" not in json.dumps(node.rpc("spec.get"))


def test_edits_restart_nothing_and_rebind_keeps_in_flight(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    node = node_factory(
        tmp_path, extra=providers(f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}")
    )
    node.start()
    old_port = node.api_port
    url = f"http://127.0.0.1:{old_port}/v1/chat/completions"
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", url, json=body, timeout=30) as response:
        it = response.iter_lines()
        assert next(it).startswith("data: ")
        # Edit routing and the provider while the stream runs: nothing restarts.
        text = node.spec_path.read_text()
        text = text.replace("url: '", "timeout: 30s, url: '") + (
            "  routing:\n    strategy: load-balance\n"
        )
        node.spec_path.write_text(text)
        node.wait_for(lambda: node.generation() == 2, timeout=5, what="generation 2")
        # Move the API to a new port: the old socket finishes this stream.
        new_port = free_port()
        node.spec_path.write_text(
            node.spec_path.read_text().replace(
                f"api: 127.0.0.1:{old_port}", f"api: 127.0.0.1:{new_port}"
            )
        )
        node.wait_for(lambda: node.generation() == 3, timeout=5, what="generation 3")
        node.api_port = new_port
        lines = [line for line in it if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) >= 150
    components = {f"{c['kind']}/{c['key']}": c for c in node.status()["components"]}  # type: ignore[index]
    assert components["api/api"]["restarts"] == 0
    assert components["provider/bad"]["restarts"] == 0
    assert components["api/api"]["conditions"][0]["message"] == f"127.0.0.1:{new_port}"
    ok = httpx.post(
        f"{api(node)}/v1/chat/completions",
        json={"model": "ok", "messages": [{"role": "user", "content": "x"}]},
    )
    assert ok.status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, json=body, timeout=5)


def test_env_var_for_provider_key_is_never_in_the_spec(
    tmp_path: Path, node_factory: type[GateNode], engine: LlamaServer
) -> None:
    node = node_factory(
        tmp_path,
        extra=providers(
            f"{{name: llama, kind: openai, url: '{engine.base_url}', apiKeyEnv: TEST_UPSTREAM_KEY}}"
        ),
    )
    node.start(env={**os.environ, "TEST_UPSTREAM_KEY": "upstream-secret"})
    ok = client(node).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    assert ok.choices
    assert "upstream-secret" not in node.log()
    assert "upstream-secret" not in json.dumps(node.rpc("spec.get"))
    assert "upstream-secret" not in json.dumps(node.rpc("providers.list"))


def test_in_process_llamacpp_provider(
    tmp_path: Path, node_factory: type[GateNode], tiny_model: Path
) -> None:
    node = node_factory(
        tmp_path, extra=providers(f"{{name: local-gguf, kind: llamacpp, model: '{tiny_model}'}}")
    )
    node.start()
    c = client(node)
    model = tiny_model.stem
    assert model in {m.id for m in c.models.list().data}
    chat = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert chat.usage is not None and chat.usage.completion_tokens == 8
    chunks = list(
        c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    # A client that goes away mid-generation frees the model for the next request.
    with httpx.stream(
        "POST",
        f"{api(node)}/v1/chat/completions",
        json={
            "model": model,
            "stream": True,
            "max_tokens": 400,
            "messages": [{"role": "user", "content": "go"}],
        },
        timeout=30,
    ) as r:
        next(r.iter_lines())
    began = time.monotonic()
    again = c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert again.choices[0].finish_reason == "length"
    assert time.monotonic() - began < 5


def test_a_client_leaving_a_non_streamed_in_process_generation_stops_it(
    tmp_path: Path, node_factory: type[GateNode], tiny_model: Path
) -> None:
    """The in-process engine is not on the HTTP pool, so the request's abort signal does not
    reach it: the router guards it with a cancel scope instead, and a client that leaves
    after the grace still stops the generation midway."""
    import socket

    node = node_factory(
        tmp_path, extra=providers(f"{{name: local-gguf, kind: llamacpp, model: '{tiny_model}'}}")
    )
    node.start()
    model = tiny_model.stem
    body = {"model": model, "max_tokens": 2000, "messages": [{"role": "user", "content": "go"}]}
    # Calibrate: the whole generation (to the end of the 1024-token context) on this machine.
    whole = httpx.post(f"{api(node)}/v1/chat/completions", json=body, timeout=120)
    assert whole.status_code == 200 and whole.json()["usage"]["completion_tokens"] > 900
    (calibration,) = node.rpc("requests.list", {"limit": 1})
    whole_s = calibration["latencyMs"] / 1000
    assert whole_s > 0.3, "the tiny model generates too fast to tell a stop from the end"

    payload = json.dumps(body)
    with socket.create_connection(("127.0.0.1", node.api_port)) as c:
        c.sendall(
            (
                f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
                f"{payload}"
            ).encode()
        )
        time.sleep(max(0.2, whole_s / 10))  # past the grace: the request has its watcher
    node.wait_for(
        lambda: node.rpc("requests.list", {"limit": 1})[0]["id"] != calibration["id"],
        timeout=60,
        what="the abandoned request's record",
    )
    (record,) = node.rpc("requests.list", {"limit": 1})
    assert record["status"] == 499 and record["error"] == "client disconnected"
    assert record["latencyMs"] / 1000 < whole_s / 2, (record["latencyMs"], whole_s)


def test_a_client_leaving_a_slow_non_streamed_request_cancels_the_upstream(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    """Non-streamed requests get no watcher task up front (it would cost more than the
    forward); one still running after the grace gets one, and a client that leaves then
    still closes the upstream connection, long before the provider's timeout."""
    import socket
    import time

    node = node_factory(
        tmp_path, extra=providers(f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}")
    )
    node.start()
    payload = json.dumps({"model": "hang", "messages": [{"role": "user", "content": "x"}]})
    with socket.create_connection(("127.0.0.1", node.api_port)) as client:
        client.sendall(
            (
                f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
                f"{payload}"
            ).encode()
        )
        node.wait_for(
            lambda: _stats(bad_upstream)["hanging"] == 1, timeout=10, what="upstream request"
        )
        time.sleep(0.3)  # past the grace: the request now has its watcher
    left = time.monotonic()
    node.wait_for(lambda: _stats(bad_upstream)["hanging"] == 0, timeout=10, what="upstream closed")
    assert time.monotonic() - left < 5  # the provider's timeout is 60 s
    (record,) = node.rpc("requests.list", {"limit": 1})
    assert record["model"] == "hang" and record["status"] == 499
    assert record["error"] == "client disconnected"


def test_a_target_of_this_node_and_conflicting_targets(
    tmp_path: Path, node_factory: type[GateNode], bad_upstream: ServerProcess
) -> None:
    """``model@<this node>`` reaches the local engine as plain ``model``; a model suffix and
    an X-Target-Node header that name two different nodes are refused, naming both."""
    bob = Identity.generate().node_id.peer_id
    node = node_factory(
        tmp_path,
        extra=providers(f"{{name: bad, kind: openai, url: '{bad_upstream.url}/v1'}}")
        + f"  peers:\n    - {{name: bob, id: {bob}}}\n",
    )
    node.start()
    node.wait_for(lambda: node.component_ready("p2p/p2p"), timeout=15, what="p2p up")
    url = f"{api(node)}/v1/chat/completions"
    me = node.rpc("identity.show")

    def post(model: str, **headers: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
        return httpx.post(url, json=body, headers=headers, timeout=30)

    for own in ("test-node", me["hex"], me["peerId"]):
        answer = post(f"ok@{own}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == "ok"  # the upstream saw the name without the suffix
        assert answer.headers["x-gate-node"] == "test-node"
    # The header and the suffix agree (one node, two of its names): fine.
    assert post(f"ok@{me['hex']}", **{"X-Target-Node": "test-node"}).status_code == 200
    conflict = post("ok@test-node", **{"X-Target-Node": "bob"})
    assert conflict.status_code == 400
    error = conflict.json()["error"]
    assert error["code"] == "conflicting_target" and error["param"] == "model"
    assert "'test-node'" in error["message"] and "'bob'" in error["message"]
