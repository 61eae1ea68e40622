"""The Peers page against real `gate up` nodes: pairing two nodes by invite in two browser
contexts (A's UI shows its invite, B's UI accepts it, A's UI approves B's request, an
ignored request changes nothing), the invite link (#invite=...) opening the accept box,
a peer approved without "may use my engines" refused with 403 through the two nodes' APIs,
bad invites and bad ids refused with the server's message while gate.yaml stays as it was,
and a peer added with a trust rule, tested and removed."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gate_runner.identity import Identity
from gate_runner.wire.invite import SIGNING_CONTEXT, make_invite
from tests.rig import GateNode, ServerProcess, make_node, ollama_provider
from tests.web.conftest import DESKTOP, PageLog, origin_of
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

    from tests.web.conftest import Axe, Shot

MODEL = "llama3.2:latest"


@pytest.fixture
def ollama() -> Iterator[ServerProcess]:
    server = ServerProcess("tests.fakes.ollama", "--delay", "0")
    yield server
    server.stop()


@pytest.fixture
def other_page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    """A second browser context (another person's browser), with the requests it made."""
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", locale="en-GB")
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    page = context.new_page()
    try:
        yield page, requests
    finally:
        context.close()


def card(page: Page, title: str) -> Locator:
    return page.locator(".card", has=page.get_by_role("heading", name=title))


def pending_item(page: Page, peer_id: str) -> Locator:
    return page.locator(".pending-item", has=page.locator(f'code[title="{peer_id}"]'))


def wait_for_request(page: Page, node: GateNode, peer_id: str) -> Locator:
    """A new request to connect arrives as a peer.pending event: the page shows it with no
    reload and no click."""
    item = pending_item(page, peer_id)
    node.wait_for(
        lambda: any(r["peerId"] == peer_id for r in node.rpc("peers.pending")),
        timeout=30,
        what=f"a pending request from {peer_id}",
    )
    item.wait_for(timeout=5_000)
    return item


def accept_error(page: Page, invite: str) -> str:
    accept = card(page, "Accept a friend's invite")
    accept.locator("#accept-invite").fill(invite)
    accept.get_by_role("button", name="Accept invite").click()
    error = accept.locator(".error")
    error.wait_for()
    return error.inner_text()


def test_two_nodes_pair_by_invite_in_two_browsers(
    tmp_path: Path,
    node_factory: type[GateNode],
    ollama: ServerProcess,
    page: Page,
    page_log: PageLog,
    other_page: tuple[Page, list[str]],
    shot: Shot,
    axe: Axe,
) -> None:
    alice, alice_id = make_node(
        node_factory,
        tmp_path / "a",
        "alice",
        f"    static:\n      - {ollama_provider(ollama.url)}\n",
    )
    bob, bob_id = make_node(node_factory, tmp_path / "b", "bob")
    carol, carol_id = make_node(node_factory, tmp_path / "c", "carol")
    for n in (alice, bob, carol):
        n.start()
    for n in (alice, bob, carol):
        n.wait_for(partial(n.component_ready, "p2p/p2p"), timeout=30, what="p2p up")

    # A's UI shows its invite: the text, the link to copy and its QR code.
    login(page, alice)
    open_page(page, alice, "peers")
    page.get_by_text("No peers yet").wait_for()
    invite_box = page.locator("#my-invite")
    invite_box.wait_for()
    invite = invite_box.input_value()
    assert invite.startswith("gate-invite:v1:")
    assert page.locator("svg.qr rect").count() > 100
    assert page.get_by_role("button", name="Copy link").count() == 1
    assert page.get_by_text("No requests.").count() == 1

    # B's UI: bad invites get the server's own message, and B's gate.yaml stays as it was.
    page_b, requests_b = other_page
    login(page_b, bob)
    open_page(page_b, bob, "peers")
    before = bob.spec_path.read_bytes()
    middle = len(invite) // 2
    tampered = invite[:middle] + ("A" if invite[middle] != "A" else "B") + invite[middle + 1 :]
    expired = make_invite(
        identity=alice_id,
        name="alice",
        addrs=[f"/ip4/127.0.0.1/tcp/{alice.p2p_port}"],
        ttl=60,
        now=time.time() - 3600,
    ).text
    forged = forge(invite)
    own = bob.rpc("peers.invite")["invite"]
    for bad, says in (
        (tampered, "signature"),
        (forged, "signature"),
        (expired, "expired"),
        (own, "own"),
        ("hello", "invite"),
    ):
        shown = accept_error(page_b, bad)
        reply = bob.rpc_raw("peers.accept", {"invite": bad})
        assert "error" in reply, (bad, reply)
        assert reply["error"]["message"].replace("Invalid params: ", "")[1:40] in shown, (
            shown,
            reply,
        )
        assert says in shown.lower()
        assert bob.spec_path.read_bytes() == before

    # B pastes A's invite, with a name of its own choosing and without trust.
    accept = card(page_b, "Accept a friend's invite")
    accept.locator("#accept-invite").fill(invite)
    accept.locator("#accept-name").fill("alice-home")
    accept.get_by_role("button", name="Accept invite").click()
    accept.locator(".ok-text").wait_for()
    assert "alice-home" in accept.locator(".ok-text").inner_text()
    spec_b = bob.spec_path.read_text()
    assert alice_id.node_id.peer_id in spec_b and "alice-home" in spec_b
    assert "# test node spec" in spec_b  # comments kept
    row_b = page_b.locator("tbody tr", has=page_b.get_by_text("alice-home"))
    row_b.wait_for()

    # B dials A: A's UI shows B's request; approving it (trust off) writes A's gate.yaml.
    item = wait_for_request(page, alice, bob_id.node_id.peer_id)
    shot(page, "peers-pending")
    assert axe(page) == []
    before_a = alice.spec_path.read_text()
    item.get_by_role("button", name=re.compile("^Approve ")).click()
    form = item.locator("form")
    name = form.get_by_label("Name in your gate.yaml")
    # The name it gave in its hello, if that was noted yet; a name is needed either way.
    assert name.input_value() in ("bob", "")
    name.fill("")
    assert "Give the peer a name" in form.inner_text()
    assert form.get_by_role("button", name="Approve", exact=True).is_disabled()
    name.fill("bob")
    assert not form.get_by_label("May use my engines").is_checked()
    form.get_by_role("button", name="Approve", exact=True).click()
    page.locator("tbody tr", has=page.get_by_text(shortId_of(bob_id))).wait_for()
    spec_a = alice.spec_path.read_text()
    assert spec_a != before_a and bob_id.node_id.peer_id in spec_a
    assert "trust" not in spec_a.split(bob_id.node_id.peer_id, 1)[1]
    assert item.count() == 0

    # The row says what each side may use: bob may not use alice's engines.
    row_a = page.locator("tbody tr", has=page.get_by_text(shortId_of(bob_id)))
    trust = row_a.locator("dl.trust")
    assert trust.locator("dd").first.inner_text() == "no"

    # ...and so bob's request to alice, through the two nodes' APIs, is refused with 403.
    bob.wait_for(
        lambda: any(p["state"] == "connected" for p in bob.rpc("peers.list")),
        timeout=30,
        what="bob's link to alice",
    )
    refused = httpx.post(
        f"http://127.0.0.1:{bob.api_port}/v1/chat/completions",
        json={"model": f"{MODEL}@alice-home", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert refused.status_code == 403, refused.text
    assert "not trusted" in refused.json()["error"]["message"]
    # While alice's own API serves the model: the refusal is trust, not a missing engine.
    served = httpx.post(
        f"http://127.0.0.1:{alice.api_port}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=30,
    )
    assert served.status_code == 200, served.text

    # An ignored request changes nothing: carol (CLI accept) dials in; A's UI ignores her.
    carol.rpc("peers.accept", {"invite": invite})
    carol_item = wait_for_request(page, alice, carol_id.node_id.peer_id)
    unchanged = alice.spec_path.read_bytes()
    generation = alice.generation()
    carol_item.get_by_role("button", name=re.compile("^Ignore ")).click()
    carol_item.wait_for(state="detached")
    assert alice.spec_path.read_bytes() == unchanged
    assert alice.generation() == generation
    assert not any(r["peerId"] == carol_id.node_id.peer_id for r in alice.rpc("peers.pending"))

    shot(page, "peers")
    shot(page_b, "peers-b")
    assert axe(page) == [] and axe(page_b) == []
    assert page_log.console_errors() == [] and page_log.page_errors == []
    own_origin = origin_of(f"http://127.0.0.1:{bob.control_port}/")
    assert [u for u in requests_b if origin_of(u) != own_origin] == []


def forge(invite: str) -> str:
    """The invite with its content signed by another key than the one it names."""
    prefix, _, token = invite.rpartition(":")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body = raw[:-64]
    signature = Identity.generate().sign(SIGNING_CONTEXT + body)
    return f"{prefix}:" + base64.urlsafe_b64encode(body + signature).decode().rstrip("=")


def shortId_of(identity: Identity) -> str:  # noqa: N802 (the UI's shortId)
    peer_id = identity.node_id.peer_id
    return f"{peer_id[:12]}…{peer_id[-6:]}"


def test_an_invite_link_opens_the_accept_box(
    tmp_path: Path, node_factory: type[GateNode], page: Page, page_log: PageLog
) -> None:
    friend = Identity.generate()
    invite = make_invite(
        identity=friend, name="friend", addrs=["/ip4/127.0.0.1/tcp/9"], ttl=600, now=time.time()
    ).text
    node = node_factory(tmp_path)
    node.start()
    login(page, node)
    page.goto(f"http://127.0.0.1:{node.control_port}/#invite={invite}")
    box = page.locator("#accept-invite")
    box.wait_for()
    assert box.input_value() == invite
    assert page.evaluate("location.hash") == "#/peers"
    assert page.evaluate("document.activeElement.id") == "accept-invite"
    assert page.get_by_text("You opened an invite link").count() == 1
    # Nothing is written until the person accepts.
    assert friend.node_id.peer_id not in node.spec_path.read_text()
    card(page, "Accept a friend's invite").get_by_role("button", name="Accept invite").click()
    page.get_by_text("Added friend").wait_for()
    assert friend.node_id.peer_id in node.spec_path.read_text()
    assert page_log.console_errors() == [] and page_log.page_errors == []


def test_add_test_and_remove_a_peer_with_bad_input_refused(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    login(page, node)
    open_page(page, node, "peers")
    add = card(page, "Add a peer by id")
    add.wait_for()
    before = node.spec_path.read_bytes()

    # A wrong-form id is caught in the form, with what a peer id looks like; nothing is sent.
    add.get_by_label("Name").fill("friend")
    add.get_by_label("Peer id").fill("12D3KooWnot-an-id")
    add.get_by_role("button", name="Add peer").click()
    message = add.locator("#add-id-msg")
    assert "52 characters" in message.inner_text()
    assert add.get_by_label("Peer id").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "add-id"
    assert node.spec_path.read_bytes() == before

    # A valid id with trust, model globs and a rate limit: the rule lands in gate.yaml.
    friend = Identity.generate().node_id
    add.get_by_label("Peer id").fill(friend.hex)
    add.get_by_label("May use my engines").check()
    add.get_by_label("Models").fill("llama3*, qwen2:*")
    add.get_by_label("Requests a minute").fill("30")
    add.get_by_role("button", name="Add peer").click()
    add.locator(".ok-text").wait_for()
    spec = node.spec_path.read_text()
    assert friend.hex in spec or friend.peer_id in spec
    assert "llama3*" in spec and "requestsPerMinute: 30" in spec
    row = page.locator("tbody tr", has=page.get_by_text("friend", exact=True))
    row.wait_for()
    assert "llama3*" in row.inner_text() and "30/min" in row.inner_text()
    assert row.locator("dl.trust dd").first.inner_text() == "yes"

    # A duplicate name: the server's message, and nothing written.
    before = node.spec_path.read_bytes()
    add.get_by_label("Name").fill("friend")
    add.get_by_label("Peer id").fill(Identity.generate().node_id.peer_id)
    add.get_by_role("button", name="Add peer").click()
    error = add.locator(".error")
    error.wait_for()
    assert "friend" in error.inner_text() and "exists" in error.inner_text()
    assert node.spec_path.read_bytes() == before

    # Test: the peer is not reachable (no address, never dialed in): said in words.
    row.get_by_role("button", name="Test the link to friend").click()
    result = page.locator(".test-result")
    page.wait_for_function(
        "() => document.querySelector('.test-result').textContent.length > 0", timeout=30_000
    )
    assert result.inner_text().startswith("friend")
    shot(page, "peers-add")
    assert axe(page) == []

    # Remove asks first, then the peer and its rule leave gate.yaml.
    row.get_by_role("button", name="Remove friend").click()
    row.get_by_role("button", name="Yes, remove").click()
    row.wait_for(state="detached")
    spec = node.spec_path.read_text()
    assert friend.hex not in spec and friend.peer_id not in spec and "llama3*" not in spec
    page.get_by_text("No peers yet").wait_for()
    assert page_log.console_errors() == [] and page_log.page_errors == []
