"""The dashboard against a real `gate up`: the node's name, id, identicon and invite (as
text and as a QR code), its spec and components, empty states that say what to do, and a
request made with the `openai` client through the real llama.cpp engine arriving live in
the last-requests list and the traffic chart, with no reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from openai import OpenAI
from playwright.sync_api import expect

from tests.llm.engine import LlamaServer
from tests.rig import GateNode, linked_pair
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

    from tests.web.conftest import Axe, Shot


def rpc_results(page: Page, method: str) -> list[Any]:
    """Collect the results of every `method` call the page makes on /rpc from now on."""
    results: list[Any] = []

    def on_response(response: Response) -> None:
        request = response.request
        if not response.url.endswith("/rpc") or request.method != "POST":
            return
        if json.loads(request.post_data or "{}").get("method") == method:
            results.append(response.json()["result"])

    page.on("response", on_response)
    return results


def test_the_dashboard_shows_the_node_and_a_request_arrives_live(
    llama_node: GateNode,
    llama_server: LlamaServer,
    client: OpenAI,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    status = llama_node.rpc("node.status")
    invites = rpc_results(page, "peers.invite")
    login(page, llama_node)
    open_page(page, llama_node, "dashboard")

    # Who this node is: name, peer id (with a copy button), and its identicon.
    page.wait_for_selector(".node-name")
    assert page.locator(".node-name").inner_text() == "test-node"
    assert page.locator("code.peer-id").inner_text() == status["identity"]["peerId"]
    assert page.get_by_role("button", name="Copy peer id").count() == 1
    identicon = page.locator(".identity svg.identicon")
    assert identicon.locator("rect").count() >= 2  # the tile and at least one cell

    # The invite: the text shown is what peers.invite answered, and its QR code is drawn.
    page.wait_for_selector("textarea.invite-token")
    assert len(invites) == 1
    assert page.locator("textarea.invite-token").input_value() == invites[0]["invite"]
    assert invites[0]["invite"].startswith("gate-invite:v1:")
    assert invites[0]["peerId"] == status["identity"]["peerId"]
    assert page.locator("svg.qr rect").count() > 50

    # The spec and the engine, as the node reports them.
    spec = page.locator(".card", has=page.get_by_role("heading", name="Spec"))
    assert f"{status['spec']['generation']}" in spec.locator("dd").first.inner_text()
    expect(spec.locator(".component")).to_have_count(len(status["components"]))
    engines = page.locator(".card", has=page.get_by_role("heading", name="Engines"))
    engines.get_by_text("llama", exact=True).wait_for()
    expect(page.get_by_text("No requests yet")).to_be_visible()
    assert page.locator("figure.traffic").get_attribute("data-total") == "0"

    # A request through the real engine with the openai client shows up without a reload.
    model = httpx.get(f"{llama_server.base_url}/models").json()["data"][0]["id"]
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    assert reply.choices
    record = llama_node.rpc("requests.list", {"limit": 1})[0]
    row = page.locator(f'.recent a[href="#/requests?id={record["id"]}"]')
    row.wait_for(timeout=10_000)
    assert page.locator(".recent tbody tr").count() == 1
    assert model in page.locator(".recent tbody tr").first.inner_text()
    # The chart's series take the point within its one-second redraw.
    page.wait_for_selector('figure.traffic[data-total="1"]', timeout=5_000)
    summary = page.locator(".traffic-summary").inner_text()
    assert "1 request" in summary, summary
    tokens = record["completionTokens"]
    assert f"{tokens} tokens" in summary, summary

    assert axe(page) == []
    assert page_log.console_errors() == [] and page_log.page_errors == []
    shot(page, "dashboard")

    # The row links to the request's detail on the Requests page.
    row.click()
    page.wait_for_selector(".request-detail")
    assert record["id"] in page.locator(".request-detail").inner_text()


def test_an_empty_node_says_what_to_do_and_a_broken_spec_shows_live(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    login(page, node)
    open_page(page, node, "dashboard")
    page.get_by_text("No engines found: start Ollama or LM Studio").wait_for()
    expect(page.get_by_text("No peers yet: share your invite")).to_be_visible()
    assert page.locator(".spec-error").count() == 0
    assert axe(page) == []
    shot(page, "dashboard-empty")

    # A broken gate.yaml is rejected by the node, and the dashboard says so with no reload.
    node.spec_path.write_text(node.spec_path.read_text() + "  listen: [not, a, mapping\n")
    error = page.locator(".spec-error")
    error.wait_for(timeout=15_000)
    assert "rejected" in error.inner_text()
    assert node.rpc("node.status")["spec"]["lastError"]
    assert axe(page) == []
    shot(page, "dashboard-rejected")
    assert page_log.console_errors() == [] and page_log.page_errors == []


def test_peers_online_show_their_rtt_and_go_offline_live(
    tmp_path: Path,
    node_factory: type[GateNode],
    llama_server: LlamaServer,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    provider = f"{{name: llama, kind: openai, url: '{llama_server.base_url}'}}"
    alice, bob = linked_pair(node_factory, tmp_path, provider)
    login(page, bob)
    open_page(page, bob, "dashboard")
    peers = page.locator(".card", has=page.get_by_role("heading", name="Peers online"))
    online = peers.locator("li", has_text="alice")
    online.wait_for()
    listed = next(p for p in bob.rpc("peers.list") if p["name"] == "alice")
    assert listed["lastRttMs"] is not None
    assert online.locator(".right").inner_text().endswith("RTT")
    assert online.locator("svg.identicon").count() == 1
    assert axe(page) == []
    shot(page, "dashboard-peer")

    alice.stop()
    peers.get_by_text("None of your 1 peer is online right now").wait_for(timeout=15_000)
    assert page_log.console_errors() == [] and page_log.page_errors == []
