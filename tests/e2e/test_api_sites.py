"""The API refuses what a web page sends on its own: a foreign Host (DNS rebinding), a
foreign Origin or a cross-site fetch, over HTTP and before anything reaches a peer. Web
apps listed in listen.cors.origins get correct CORS answers. A slow body gets 408."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.rig import (
    GateNode,
    ServerProcess,
    linked_pair,
    ollama_provider,
    refused_posts_on_one_connection,
    run_gate,
)

pytestmark = pytest.mark.e2e

CHAT = {"model": "llama3:8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def node(tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess) -> GateNode:
    node = node_factory(tmp_path, extra=f"    static:\n      - {ollama_provider(ollama.url)}\n")
    text = node.spec_path.read_text()
    node.spec_path.write_text(
        text.replace(
            f"    control: 127.0.0.1:{node.control_port}\n",
            f"    control: 127.0.0.1:{node.control_port}\n"
            "    apiHosts: [gate.lan]\n"
            "    cors: {origins: ['https://app.example']}\n",
        )
        + "  limits: {bodyTimeout: 1s}\n"
    )
    node.start()
    return node


def get_models(node: GateNode, **headers: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{node.api_port}/v1/models", headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("attacker.example:{port}", 421),
        ("attacker.example.:{port}", 421),  # a trailing dot names the same host
        ("ATTACKER.example", 421),
        ("[2001:db8::1]:{port}", 421),  # an address that is not ours on a loopback bind
        ("127.0.0.1:{port}", 200),
        ("localhost.:{port}", 200),
        ("LocalHost:{port}", 200),
        ("[::1]:{port}", 200),
        ("gate.lan:{port}", 200),  # listen.apiHosts
        ("Gate.LAN.", 200),
    ],
)
def test_the_api_checks_host(node: GateNode, host: str, status: int) -> None:
    response = get_models(node, Host=host.format(port=node.api_port))
    assert response.status_code == status
    if status == 421:
        error = response.json()["error"]
        assert error["code"] == "misdirected_request"
        assert "spec.listen.apiHosts" in error["message"]


def test_a_cross_site_simple_request_is_refused(node: GateNode) -> None:
    """A page's form or fetch with Content-Type text/plain needs no preflight: the browser
    sends it, so the API must refuse it itself, before any engine runs."""
    url = f"http://127.0.0.1:{node.api_port}/v1/chat/completions"
    before = node.rpc("requests.list", {"limit": 100})
    for origin in ("https://evil.example", "null", "http://127.0.0.1:8080"):
        response = httpx.post(
            url,
            content=json.dumps(CHAT),
            headers={"Content-Type": "text/plain", "Origin": origin},
            timeout=10,
        )
        assert response.status_code == 403, origin
        error = response.json()["error"]
        assert error["code"] == "cross_site_refused"
        assert "spec.listen.cors.origins" in error["message"]
        assert "access-control-allow-origin" not in response.headers
    # No Origin, but the browser says the request came from another site (an <img>, a link).
    cross = get_models(node, **{"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert get_models(node, **{"Sec-Fetch-Site": "none"}).status_code == 200
    assert node.rpc("requests.list", {"limit": 100}) == before  # nothing was routed
    # The same request from a client that is not a browser goes through.
    ok = httpx.post(url, json=CHAT, timeout=30)
    assert ok.status_code == 200 and "access-control-allow-origin" not in ok.headers


def test_a_listed_web_app_gets_cors_answers(node: GateNode) -> None:
    url = f"http://127.0.0.1:{node.api_port}/v1/chat/completions"
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        "Access-Control-Request-Private-Network": "true",
    }
    response = httpx.options(url, headers=preflight, timeout=10)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"]
    assert allowed == "authorization, content-type, x-stainless-os"
    assert response.headers["access-control-allow-private-network"] == "true"
    assert "Origin" in response.headers["vary"]

    refused = httpx.options(url, headers={**preflight, "Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers

    answer = httpx.post(url, json=CHAT, headers={"Origin": "https://app.example/"}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example/"
    assert "x-request-id" in answer.headers["access-control-expose-headers"]
    assert answer.json()["choices"][0]["message"]["content"]


def test_any_origin_needs_api_keys(tmp_path: Path) -> None:
    spec = tmp_path / "gate.yaml"
    spec.write_text(
        "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: n}\n"
        "spec:\n  listen:\n    cors: {origins: ['*']}\n"
    )
    result = run_gate("validate", "-f", str(spec))
    assert result.returncode == 2
    assert "spec.listen.cors.origins" in result.stderr and "apiKeys" in result.stderr


def test_a_cross_site_request_never_reaches_a_friend(
    tmp_path: Path, node_factory: type[GateNode], ollama: ServerProcess
) -> None:
    """The page cannot spend a friend's quota either: bob refuses it before routing."""
    alice, bob = linked_pair(node_factory, tmp_path, ollama_provider(ollama.url))
    url = f"http://127.0.0.1:{bob.api_port}/v1/chat/completions"
    body = json.dumps({**CHAT, "model": "llama3:8b@alice"})
    for headers in (
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "text/plain", "Host": f"rebound.example:{bob.api_port}"},
    ):
        assert httpx.post(url, content=body, headers=headers, timeout=10).status_code in (403, 421)

    def served() -> int:
        return int(next(p for p in alice.rpc("peers.list") if p["name"] == "bob")["requestsServed"])

    assert served() == 0
    ok = httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert ok.status_code == 200 and ok.headers["x-gate-node"] == "alice"
    assert served() == 1


def _raw_request(node: GateNode, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.api_port), timeout=10)
    sock.sendall(head)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_body_that_does_not_arrive_in_time_gets_408(node: GateNode) -> None:
    """limits.bodyTimeout is 1s here: a client that sends its head and part of a body,
    or trickles it byte by byte, is answered 408 and its connection closed."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    began = time.monotonic()
    sock = _raw_request(node, head + b'{"model": ')
    with sock:
        reply = _read_all(sock)  # the server closes the connection after the answer
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:100]
    assert b"spec.limits.bodyTimeout" in reply
    assert 0.9 < time.monotonic() - began < 8

    sock = _raw_request(node, head)
    with sock:
        began = time.monotonic()
        status = b""
        for _ in range(60):  # a byte every 0.1 s: never idle, but never done either
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.1)
            sock.setblocking(False)
            try:
                status = sock.recv(100)
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            if status:
                break
    assert status.startswith(b"HTTP/1.1 408 "), status
    assert time.monotonic() - began < 4
    # A whole request on a new connection is served as usual.
    assert httpx.post(f"http://127.0.0.1:{node.api_port}/v1/chat/completions", json=CHAT).is_success


def test_a_refused_post_keeps_its_connection(node: GateNode) -> None:
    """The API's refusals (here a foreign Host) take in the body first, as the control
    plane's do, so a kept-alive client is not cut off."""
    statuses = refused_posts_on_one_connection(
        node.api_port,
        path="/v1/chat/completions",
        headers="Host: evil.example\r\n",
        body=b'{"model": "llama3:8b", "messages": []}',
    )
    assert [s.split(b" ")[1] for s in statuses] == [b"421", b"421", b"421"]
