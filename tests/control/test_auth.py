"""Who gets in: the bearer token, Host and Origin checks, one-time login links and the
session cookie they set, and the limit on failed attempts. Every refusal is checked on
the HTTP and the WebSocket side."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.control.conftest import ws_connect
from tests.rig import GateNode, refused_posts_on_one_connection

pytestmark = pytest.mark.e2e

STATUS = {"jsonrpc": "2.0", "method": "node.status", "id": 1}


@pytest.fixture
def control_node(node: GateNode) -> GateNode:
    """A node of its own for each test: failed attempts here count against 127.0.0.1,
    and ten of them lock the address out for a minute."""
    return node


@pytest.fixture
def base(control_node: GateNode) -> str:
    return f"http://127.0.0.1:{control_node.control_port}"


@pytest.fixture
def anonymous() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def bearer(node: GateNode) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token}"}


def ws_status(node: GateNode, headers: dict[str, str], *, host: str | None = None) -> int:
    """The HTTP status the WebSocket handshake got (101 when it was accepted). ``host``
    puts another name in the URL (and so in Host) while still connecting to the node,
    as a browser does for a rebound DNS name."""
    try:
        if host is None:
            with ws_connect(node, additional_headers=headers):
                return 101
        sock = socket.create_connection(("127.0.0.1", node.control_port), timeout=10)
        url = f"ws://{host}:{node.control_port}/rpc/ws"
        with connect(url, sock=sock, additional_headers=headers, open_timeout=10):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def test_no_token_and_a_wrong_token_are_refused(
    control_node: GateNode, base: str, anonymous: httpx.Client
) -> None:
    response = anonymous.post(f"{base}/rpc", json=STATUS)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "control.token" in response.json()["error"]
    wrong = {"Authorization": "Bearer " + "0" * 43}
    assert anonymous.post(f"{base}/rpc", json=STATUS, headers=wrong).status_code == 401
    for path in ("/metrics", "/rpc/openrpc.json", "/"):
        assert anonymous.get(base + path).status_code == 401, path
    assert ws_status(control_node, {}) == 401
    assert ws_status(control_node, wrong) == 401
    assert ws_status(control_node, bearer(control_node)) == 101


def test_a_foreign_host_is_refused_even_with_the_token(
    control_node: GateNode, base: str, anonymous: httpx.Client
) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, and the browser sends its name."""
    headers = {**bearer(control_node), "Host": f"evil.example:{control_node.control_port}"}
    response = anonymous.post(f"{base}/rpc", json=STATUS, headers=headers)
    assert response.status_code == 421
    assert ws_status(control_node, bearer(control_node), host="evil.example") == 421
    ok = {**bearer(control_node), "Host": f"localhost:{control_node.control_port}"}
    assert anonymous.post(f"{base}/rpc", json=STATUS, headers=ok).status_code == 200


def test_a_cross_site_origin_is_refused_even_with_the_token(
    control_node: GateNode, base: str, anonymous: httpx.Client
) -> None:
    headers = {**bearer(control_node), "Origin": "https://evil.example"}
    response = anonymous.post(f"{base}/rpc", json=STATUS, headers=headers)
    assert response.status_code == 403
    assert "evil.example" in response.json()["error"]
    assert ws_status(control_node, headers) == 403
    same = {**bearer(control_node), "Origin": base}
    assert anonymous.post(f"{base}/rpc", json=STATUS, headers=same).status_code == 200
    assert ws_status(control_node, same) == 101


def login_link(node: GateNode) -> str:
    result = node.rpc("node.loginLink")
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:{node.control_port}/login\?code=[\w-]{{43}}", result["url"]
    )
    url: str = result["url"]
    return url


def test_login_link_sets_a_strict_httponly_cookie_and_works_once(
    control_node: GateNode, base: str
) -> None:
    url = login_link(control_node)
    with httpx.Client(timeout=10) as browser:
        response = browser.get(url)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert "gate_session=" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        # The session works from our own page (Origin is ours) ...
        page = browser.get(f"{base}/")
        assert page.status_code == 200 and '<div id="app">' in page.text  # the UI's shell
        same_origin = {"Origin": base}
        reply = browser.post(f"{base}/rpc", json=STATUS, headers=same_origin).json()
        assert reply["result"]["name"] == "test-node"
        session = {"Cookie": f"gate_session={browser.cookies['gate_session']}"}
        assert ws_status(control_node, {**session, "Origin": base}) == 101
        # ... but not for a request without an Origin, or from another site.
        assert browser.post(f"{base}/rpc", json=STATUS).status_code == 401
        evil = {"Origin": "http://evil.example"}
        assert browser.post(f"{base}/rpc", json=STATUS, headers=evil).status_code == 403
        assert ws_status(control_node, session) == 401
        # Logging out ends the session.
        assert browser.post(f"{base}/logout", headers=same_origin).status_code == 204
        browser.cookies.set("gate_session", session["Cookie"].split("=", 1)[1])
        assert browser.post(f"{base}/rpc", json=STATUS, headers=same_origin).status_code == 401
    with httpx.Client(timeout=10) as replay:
        again = replay.get(url)
        assert again.status_code == 401
        assert "used already" in again.text
        assert "set-cookie" not in again.headers


def test_a_login_link_expires(control_node: GateNode) -> None:
    result = control_node.rpc("node.loginLink", {"ttl": 5})
    time.sleep(5.5)
    with httpx.Client(timeout=10) as browser:
        assert browser.get(result["url"]).status_code == 401


def test_failed_attempts_are_limited_per_address(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    """Ten failures in a minute lock the address out, the right token included, so a
    guesser cannot keep trying at full speed."""
    node = node_factory(tmp_path)
    node.start()
    base = f"http://127.0.0.1:{node.control_port}"
    with httpx.Client(timeout=10) as client:
        wrong = {"Authorization": "Bearer wrong"}
        codes = [
            client.post(f"{base}/rpc", json=STATUS, headers=wrong).status_code for _ in range(10)
        ]
        assert codes == [401] * 10
        locked = client.post(f"{base}/rpc", json=STATUS, headers=bearer(node))
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert "too many failed attempts" in locked.json()["error"]
        assert client.get(f"{base}/login?code=guess").status_code == 429
        assert ws_status(node, bearer(node)) == 429
        # Health checks need no auth and still answer.
        assert client.get(f"{base}/healthz").status_code == 200


def test_requests_without_a_credential_never_lock_the_owner_out(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    """What a cross-site <img src=http://127.0.0.1:8145/metrics> sends has no credential:
    however many come, the owner's CLI and UI still get in. Requests refused for their
    Host or Origin do not count either, even with a wrong token."""
    node = node_factory(tmp_path)
    node.start()
    base = f"http://127.0.0.1:{node.control_port}"
    port = node.control_port
    with httpx.Client(timeout=10) as client:
        for _ in range(3 * 10):
            assert client.get(f"{base}/metrics").status_code == 401
            assert client.post(f"{base}/rpc", json=STATUS).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        for _ in range(2 * 10):
            evil_origin = {**wrong, "Origin": "https://evil.example"}
            assert client.post(f"{base}/rpc", json=STATUS, headers=evil_origin).status_code == 403
            evil_host = {**wrong, "Host": f"evil.example:{port}"}
            assert client.post(f"{base}/rpc", json=STATUS, headers=evil_host).status_code == 421
        assert client.post(f"{base}/rpc", json=STATUS, headers=bearer(node)).status_code == 200
        assert ws_status(node, bearer(node)) == 101


def test_a_cross_site_request_without_origin_is_refused_by_sec_fetch_site(
    control_node: GateNode, base: str, anonymous: httpx.Client
) -> None:
    """An <img> or a link from another site carries no Origin, but the browser says where
    it came from; such a request is refused before any credential is looked at."""
    cross = {**bearer(control_node), "Sec-Fetch-Site": "cross-site"}
    response = anonymous.get(f"{base}/metrics", headers=cross)
    assert response.status_code == 403
    assert "another site" in response.json()["error"]
    assert anonymous.get(f"{base}/login?code=guess", headers=cross).status_code == 403
    typed = {**bearer(control_node), "Sec-Fetch-Site": "none"}  # the user typed the URL
    assert anonymous.get(f"{base}/metrics", headers=typed).status_code == 200


def test_wrong_tokens_and_bad_sessions_count_and_the_lockout_is_not_renewed(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    """Presented-and-wrong credentials count: a wrong token, an unknown session cookie,
    a used login code. Attempts refused during the lockout do not renew it."""
    node = node_factory(tmp_path)
    node.start()
    base = f"http://127.0.0.1:{node.control_port}"
    with httpx.Client(timeout=10) as client:
        for _ in range(4):
            wrong = {"Authorization": "Bearer wrong"}
            assert client.post(f"{base}/rpc", json=STATUS, headers=wrong).status_code == 401
        stale = {"Cookie": "gate_session=not-a-session", "Origin": base}
        for _ in range(3):
            assert client.post(f"{base}/rpc", json=STATUS, headers=stale).status_code == 401
        for _ in range(3):
            assert client.get(f"{base}/login?code=guess").status_code == 401
        locked = client.post(f"{base}/rpc", json=STATUS, headers=bearer(node))
        assert locked.status_code == 429
        wait = int(locked.headers["retry-after"])
        for _ in range(20):  # refused while locked: not counted
            client.post(f"{base}/rpc", json=STATUS, headers={"Authorization": "Bearer wrong"})
        assert int(client.post(f"{base}/rpc", json=STATUS).headers["retry-after"]) <= wait


def test_a_refused_post_keeps_its_connection(control_node: GateNode) -> None:
    """A refusal answers only once the request's body is in: otherwise the server closes the
    connection when the body arrives, and a kept-alive client's next call on it fails (seen
    under load as 'Server disconnected without sending a response')."""
    port = control_node.control_port
    statuses = refused_posts_on_one_connection(
        port,
        path="/rpc",
        headers=f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer wrong\r\n",
        body=json.dumps(STATUS).encode(),
    )
    assert [s.split(b" ")[1] for s in statuses] == [b"401", b"401", b"401"]
