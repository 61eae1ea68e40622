"""The web UI's server side on a real node: the security headers on every kind of response,
the shell and its assets (types, caching, who may load them, no way out of static/), and the
pages of the login link (used, expired, unknown, logged out, locked out)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from gate_runner.components.control.auth import (
    FAIL_WINDOW,
    MAX_FAILURES,
    SPENT_TTL,
    Refusal,
)
from tests.control.conftest import ws_connect
from tests.control.test_gatekeeper import Clock, keeper
from tests.httpclient.servers import make_certificate
from tests.rig import GateNode, run_gate

pytestmark = pytest.mark.e2e

STATUS = {"jsonrpc": "2.0", "method": "node.status", "id": 1}
STATIC = Path(__file__).resolve().parents[2] / "gate_runner/components/control/static"

# What every response must carry; the CSP is checked directive by directive below.
FIXED_HEADERS = {
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
CSP = {
    "default-src": ["'none'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "manifest-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
DENIED_FEATURES = ("camera", "microphone", "geolocation", "payment", "usb")


@pytest.fixture(scope="module")
def base(control_node: GateNode) -> str:
    return f"http://127.0.0.1:{control_node.control_port}"


def login(node: GateNode, client: httpx.Client) -> None:
    """Log ``client`` in as a browser does: open the link from `gate ui`."""
    response = client.get(node.rpc("node.loginLink")["url"])
    assert response.status_code == 303, response.text


@pytest.fixture(scope="module")
def browser(control_node: GateNode) -> Iterator[httpx.Client]:
    """A client with a session, shared by the tests that only read."""
    with httpx.Client(timeout=10) as client:
        login(control_node, client)
        yield client


def session_header(client: httpx.Client) -> str:
    return f"Cookie: gate_session={client.cookies['gate_session']}"


def csp_of(headers: httpx.Headers) -> dict[str, list[str]]:
    policy: dict[str, list[str]] = {}
    for directive in headers["content-security-policy"].split(";"):
        name, *values = directive.split()
        assert name not in policy, f"{name} given twice"
        policy[name] = values
    return policy


def import_map_hash(shell: str) -> str:
    """The CSP source of the shell's inline import map, computed here on its own."""
    found = re.findall(r'<script type="importmap">(.*?)</script>', shell, re.DOTALL)
    assert len(found) == 1, "the shell has one inline import map"
    digest = hashlib.sha256(found[0].encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def assert_security_headers(headers: httpx.Headers | dict[str, str], what: str) -> None:
    headers = httpx.Headers(headers)
    for name, value in FIXED_HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name}"
    policy = csp_of(headers)
    for name, values in CSP.items():
        assert policy.get(name) == values, f"{what}: CSP {name}"
    assert policy["script-src"][0] == "'self'", what
    assert all(s.startswith("'sha256-") for s in policy["script-src"][1:]), what
    assert set(policy) == {*CSP, "script-src"}, what
    text = headers["content-security-policy"]
    assert "unsafe-inline" not in text and "unsafe-eval" not in text and "*" not in text
    features = dict(f.strip().split("=", 1) for f in headers["permissions-policy"].split(","))
    for feature in DENIED_FEATURES:
        assert features.get(feature) == "()", f"{what}: Permissions-Policy {feature}"


def raw_get(port: int, target: str, *headers: str) -> tuple[int, bytes, bytes]:
    """GET with the request target sent byte for byte: httpx would resolve the dot
    segments and the encodings that a traversal attempt relies on."""
    request = "\r\n".join(
        [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", *headers]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1") + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


# -- the headers -----------------------------------------------------------------------------


def test_every_kind_of_response_carries_the_security_headers(
    control_node: GateNode, base: str, browser: httpx.Client
) -> None:
    token = {"Authorization": f"Bearer {control_node.token}"}
    with httpx.Client(timeout=10) as anonymous:
        responses = {
            "the shell": browser.get(f"{base}/"),
            "the log-in page": anonymous.get(f"{base}/"),
            "a JSON-RPC reply": anonymous.post(f"{base}/rpc", json=STATUS, headers=token),
            "a refused RPC": anonymous.post(f"{base}/rpc", json=STATUS),
            "a public asset": anonymous.get(f"{base}/ui/app.css"),
            "an asset": browser.get(f"{base}/ui/app.js"),
            "a 304": browser.get(f"{base}/ui/app.js", headers={"If-None-Match": "*"}),
            "a 404": anonymous.get(f"{base}/no-such-page"),
            "a 404 under /ui/": browser.get(f"{base}/ui/no-such-file.js"),
            "a 405": anonymous.get(f"{base}/logout"),
            "the login redirect": anonymous.get(control_node.rpc("node.loginLink")["url"]),
            "a foreign Host": anonymous.get(
                f"{base}/", headers={"Host": f"evil.example:{control_node.control_port}"}
            ),
            "the metrics": anonymous.get(f"{base}/metrics", headers=token),
            "the health check": anonymous.get(f"{base}/healthz"),
            "the logged-out page": anonymous.get(f"{base}/logged-out"),
        }
    expected = {
        "the shell": 200,
        "the log-in page": 401,
        "a JSON-RPC reply": 200,
        "a refused RPC": 401,
        "a public asset": 200,
        "an asset": 200,
        "a 304": 304,
        "a 404": 404,
        "a 404 under /ui/": 404,
        "a 405": 405,
        "the login redirect": 303,
        "a foreign Host": 421,
        "the metrics": 200,
        "the health check": 200,
        "the logged-out page": 200,
    }
    assert {k: r.status_code for k, r in responses.items()} == expected
    for what, response in responses.items():
        assert_security_headers(response.headers, what)
    # A refused WebSocket handshake is an HTTP response too.
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(control_node, additional_headers={})
    assert refused.value.response.status_code == 401
    assert_security_headers(dict(refused.value.response.headers.raw_items()), "a refused WebSocket")


def test_the_csp_allows_the_shells_import_map_by_its_hash_and_nothing_else_inline(
    base: str, browser: httpx.Client
) -> None:
    shell = browser.get(f"{base}/")
    assert shell.status_code == 200
    assert csp_of(shell.headers)["script-src"] == ["'self'", import_map_hash(shell.text)]
    # The hash is of what is served: the file in the package, byte for byte.
    assert shell.text == (STATIC / "index.html").read_text()
    # The shell's only inline script is the import map; the app is an external module.
    scripts = re.findall(r"<script\b[^>]*>", shell.text)
    assert scripts == ['<script type="importmap">', '<script type="module" src="/ui/app.js">']
    assert '<div id="app">' in shell.text


def test_responses_that_name_no_caching_are_not_stored(
    control_node: GateNode, base: str, browser: httpx.Client
) -> None:
    token = {"Authorization": f"Bearer {control_node.token}"}
    with httpx.Client(timeout=10) as anonymous:
        for response in (
            anonymous.post(f"{base}/rpc", json=STATUS, headers=token),
            anonymous.get(f"{base}/"),
            anonymous.get(control_node.rpc("node.loginLink")["url"]),
        ):
            assert response.headers["cache-control"] == "no-store", response.url


# -- the shell and its assets ------------------------------------------------------------------

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


def test_assets_are_served_with_their_content_types(base: str, browser: httpx.Client) -> None:
    """Ours, and every file vendored next to them: a module script with the wrong type is
    refused by the browser (nosniff), and so the whole app."""
    files = [p for p in STATIC.rglob("*") if p.suffix in TYPES and not p.name.startswith(".")]
    assert {"app.css", "app.js", "icon.svg"} <= {p.name for p in files}
    for path in files:
        name = path.relative_to(STATIC).as_posix()
        response = browser.get(f"{base}/ui/{name}", headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200, name
        assert response.headers["content-type"] == TYPES[path.suffix], name
        assert response.content == path.read_bytes(), name


def test_the_shell_and_assets_are_revalidated_by_etag(base: str, browser: httpx.Client) -> None:
    for path in ("/", "/ui/app.js", "/ui/app.css"):
        first = browser.get(base + path, headers={"Accept-Encoding": "identity"})
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache", path
        again = browser.get(
            base + path, headers={"If-None-Match": etag, "Accept-Encoding": "identity"}
        )
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == etag, path
        other = browser.get(base + path, headers={"If-None-Match": '"stale"'})
        assert other.status_code == 200, path


def test_text_assets_are_sent_gzipped_to_browsers_that_ask(
    base: str, browser: httpx.Client
) -> None:
    biggest = max((p for p in STATIC.rglob("*.js")), key=lambda p: p.stat().st_size)
    name = biggest.relative_to(STATIC).as_posix()
    packed = browser.get(f"{base}/ui/{name}", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < biggest.stat().st_size
    assert packed.content == biggest.read_bytes()  # httpx decodes it
    plain = browser.get(f"{base}/ui/{name}", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["etag"] != packed.headers["etag"]


@pytest.mark.parametrize(
    "target",
    [
        "/ui/../app.py",
        "/ui/../../auth.py",
        "/ui/vendor/../../app.py",
        "/ui/%2e%2e/app.py",
        "/ui/%2E%2E%2Fapp.py",
        "/ui/..%2f..%2fauth.py",
        "/ui/.%2e/.%2e/headers.py",
        "/ui//etc/passwd",
        "/ui/%2Fetc%2Fpasswd",
        "/ui/..\\app.py",
        "/ui/%5c..%5capp.py",
        "/ui/vendor\\..\\..\\app.py",
        "/ui/C:%5cWindows%5cwin.ini",
        "/ui/app.css%00",
        "/ui/app.css%00.js",
        "/ui/./app.css",
        "/ui/",
        "/ui",
        "/ui/vendor/",
        "/ui/vendor",
        "/ui/index.html",
        "/ui/notice.html",
        "/ui/vendor/licenses/preact-LICENSE",
        "/ui/.hidden.js",
    ],
)
def test_no_path_leaves_the_static_folder_or_lists_it(
    control_node: GateNode, browser: httpx.Client, target: str
) -> None:
    """Asked with a session, so that a 404 is about the path and not about auth."""
    port = control_node.control_port
    status, _, body = raw_get(port, target, session_header(browser))
    assert status == 404, (target, body[:200])
    assert b"import" not in body and b"<a " not in body
    ok, _, css = raw_get(port, "/ui/app.css", session_header(browser))
    assert ok == 200 and css == (STATIC / "app.css").read_bytes()


# -- who sees what -------------------------------------------------------------------------


def test_without_a_session_root_is_the_log_in_page_and_only_its_css_loads(
    control_node: GateNode, base: str
) -> None:
    """401, not a redirect: the address stays /, a script or a check sees the truth, and
    the browser shows the page that says how to log in."""
    with httpx.Client(timeout=10) as anonymous:
        page = anonymous.get(f"{base}/")
        assert page.status_code == 401
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<html lang="en">' in page.text and "<title>" in page.text
        assert "<pre><code>gate ui</code></pre>" in page.text
        assert "<script" not in page.text and 'id="app"' not in page.text
        assert anonymous.get(f"{base}/ui/app.css").status_code == 200
        assert anonymous.get(f"{base}/ui/icon.svg").status_code == 200
        for private in ("/ui/app.js", "/ui/vendor/preact.js"):
            assert anonymous.get(base + private).status_code == 401, private
        token = {"Authorization": f"Bearer {control_node.token}"}
        assert anonymous.get(f"{base}/", headers=token).status_code == 200


def test_a_foreign_host_or_site_is_refused_on_the_ui_routes(
    control_node: GateNode, base: str, browser: httpx.Client
) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1; the session does not help."""
    evil = {"Host": f"evil.example:{control_node.control_port}"}
    for path in ("/", "/ui/app.css", "/ui/app.js", "/login?code=x", "/logged-out"):
        response = browser.get(base + path, headers=evil)
        assert response.status_code == 421, path
        assert "set-cookie" not in response.headers, path  # neither a new session nor an end
    assert browser.post(f"{base}/logout", headers=evil).status_code == 421
    # A page elsewhere may not pull in our stylesheet or script either.
    cross = {"Sec-Fetch-Site": "cross-site"}
    for path in ("/ui/app.css", "/ui/app.js", "/"):
        assert browser.get(base + path, headers=cross).status_code == 403, path


# -- the login link's pages ------------------------------------------------------------------


def test_a_login_link_works_once_and_the_second_use_says_so(node: GateNode) -> None:
    base = f"http://127.0.0.1:{node.control_port}"
    url = node.rpc("node.loginLink")["url"]
    with httpx.Client(timeout=10) as first:
        landed = first.get(url)
        assert landed.status_code == 303
        assert landed.headers["location"] == "/"  # the code leaves the address bar
        cookie = landed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        shell = first.get(f"{base}/")
        assert shell.status_code == 200 and '<div id="app">' in shell.text
        used = first.get(url)
    with httpx.Client(timeout=10) as second:
        replay = second.get(url)
    for again in (used, replay):
        assert again.status_code == 401
        assert "<h1>This login link was used already</h1>" in again.text
        assert "gate ui" in again.text and "<script" not in again.text
        assert "set-cookie" not in again.headers
        assert_security_headers(again.headers, "the used-link page")


def test_an_expired_or_unknown_link_gets_its_own_page(node: GateNode) -> None:
    base = f"http://127.0.0.1:{node.control_port}"
    expiring = node.rpc("node.loginLink", {"ttl": 5})["url"]
    time.sleep(5.5)
    with httpx.Client(timeout=10) as browser:
        expired = browser.get(expiring)
        assert expired.status_code == 401
        assert "<h1>This login link has expired</h1>" in expired.text
        unknown = browser.get(f"{base}/login?code={'A' * 43}")
        assert unknown.status_code == 401
        assert "<h1>This login link is not valid</h1>" in unknown.text
        bare = browser.get(f"{base}/login")
        assert bare.status_code == 401 and "<h1>Log in</h1>" in bare.text
        assert browser.get(f"{base}/").status_code == 401  # none of them logged in


def test_logging_out_lands_on_a_page_and_ends_the_session(node: GateNode) -> None:
    base = f"http://127.0.0.1:{node.control_port}"
    with httpx.Client(timeout=10) as browser:
        login(node, browser)
        old = browser.cookies["gate_session"]
        cross = browser.post(f"{base}/logout", headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        assert browser.get(f"{base}/").status_code == 200  # still logged in
        form = {"Origin": base, "Accept": "text/html,application/xhtml+xml"}
        out = browser.post(f"{base}/logout", headers=form)
        assert out.status_code == 303 and out.headers["location"] == "/logged-out"
        assert 'gate_session=""' in out.headers["set-cookie"]
        page = browser.get(f"{base}/logged-out")
        assert page.status_code == 200 and "<h1>You are logged out</h1>" in page.text
    # Chromium sends "Origin: null" with our own page's form under no-referrer; whose
    # page it was, Sec-Fetch-Site says (a page cannot set it).
    form_null = {"Origin": "null", "Accept": "text/html"}
    for fetch_site, status in (("same-origin", 303), ("cross-site", 403), (None, 403)):
        headers = form_null if fetch_site is None else {**form_null, "Sec-Fetch-Site": fetch_site}
        response = httpx.post(f"{base}/logout", headers=headers)
        assert response.status_code == status, fetch_site
    with httpx.Client(timeout=10, cookies={"gate_session": old}) as stale:
        ended = stale.get(f"{base}/")
        assert ended.status_code == 401
        assert "<h1>Your session has ended</h1>" in ended.text
        assert 'gate_session=""' in ended.headers["set-cookie"]  # the browser drops it


def test_over_tls_the_session_cookie_is_secure(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path)
    node = node_factory(
        tmp_path, extra=f"  control:\n    tls: {{certFile: {cert}, keyFile: {key}}}\n"
    )
    node.start(wait=False)
    trust = ssl.create_default_context(cafile=cert)

    def link() -> str | None:
        result = run_gate("ui", "-f", str(node.spec_path), "--no-browser", "-o", "json")
        return str(json.loads(result.stdout)["url"]) if result.returncode == 0 else None

    node.wait_for(lambda: link() is not None, timeout=15, what="https control")
    url = link()
    assert url is not None and url.startswith("https://")
    with httpx.Client(timeout=10, verify=trust) as browser:
        landed = browser.get(url)
        assert landed.status_code == 303
        cookie = landed.headers["set-cookie"]
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        shell = browser.get(url.split("/login")[0] + "/")
        assert shell.status_code == 200 and '<div id="app">' in shell.text
        assert_security_headers(shell.headers, "the shell over https")


def test_a_tab_left_open_across_a_restart_does_not_lock_the_owner_out(node: GateNode) -> None:
    """After a restart, every session is gone but the browser still holds its cookie, and
    a dead session counts as a failed attempt. The first refusal drops the cookie, so the
    app's retries come without one and are not counted; the CLI still gets in."""
    base = f"http://127.0.0.1:{node.control_port}"
    with httpx.Client(timeout=10, headers={"Origin": base}) as tab:
        login(node, tab)
        # The session ends behind the tab's back, as a restart ends them all.
        session = {"Cookie": f"gate_session={tab.cookies['gate_session']}", "Origin": base}
        assert httpx.post(f"{base}/logout", headers=session).status_code == 204
        first = tab.post(f"{base}/rpc", json=STATUS)
        assert first.status_code == 401 and "session has ended" in first.json()["error"]
        assert 'gate_session=""' in first.headers["set-cookie"]
        for _ in range(2 * MAX_FAILURES):
            assert tab.post(f"{base}/rpc", json=STATUS).status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(node, additional_headers={"Cookie": "gate_session=old", "Origin": base})
    assert refused.value.response.status_code == 401
    assert 'gate_session=""' in refused.value.response.headers["set-cookie"]
    token = {"Authorization": f"Bearer {node.token}"}
    assert httpx.post(f"{base}/rpc", json=STATUS, headers=token).status_code == 200


def test_a_locked_out_address_gets_the_too_many_attempts_page(node: GateNode) -> None:
    base = f"http://127.0.0.1:{node.control_port}"
    good = node.rpc("node.loginLink")["url"]  # asked first: the lockout stops the RPC too
    with httpx.Client(timeout=10) as browser:
        for _ in range(MAX_FAILURES):
            assert browser.get(f"{base}/login?code=guess").status_code == 401
        for locked in (browser.get(good), browser.get(f"{base}/")):
            assert locked.status_code == 429
            assert "<h1>Too many attempts</h1>" in locked.text
            wait = int(locked.headers["retry-after"])
            assert 1 <= wait <= FAIL_WINDOW and f"Try again in {wait} seconds" in locked.text
            assert "gate_session" not in locked.headers.get("set-cookie", "")


# -- the gatekeeper's side: why a code is refused ------------------------------------------------


def refusal(result: str | Refusal) -> Refusal:
    assert isinstance(result, Refusal), "the code was accepted"
    return result


def test_the_gatekeeper_tells_used_expired_and_unknown_codes_apart() -> None:
    clock = Clock()
    k = keeper(clock=clock)
    used, _ = k.new_login(60)
    expiring, _ = k.new_login(10)
    assert isinstance(k.redeem(used, client="10.0.0.1"), str)
    clock.now += 11
    assert refusal(k.redeem(used, client="10.0.0.1")).reason == "login-used"
    assert refusal(k.redeem(expiring, client="10.0.0.1")).reason == "login-expired"
    assert refusal(k.redeem("guess", client="10.0.0.1")).reason == "login-unknown"
    # Spent codes are remembered for a while only, then they are just unknown.
    clock.now += SPENT_TTL
    assert refusal(k.redeem(used, client="10.0.0.2")).reason == "login-unknown"


def test_every_refused_code_counts_towards_the_lockout() -> None:
    k = keeper()
    used, _ = k.new_login(60)
    assert isinstance(k.redeem(used, client="10.0.0.1"), str)
    for _ in range(MAX_FAILURES):
        assert refusal(k.redeem(used, client="10.0.0.1")).status == 401
    fresh, _ = k.new_login(60)
    locked = refusal(k.redeem(fresh, client="10.0.0.1"))
    assert locked.status == 429 and locked.reason == "locked"
