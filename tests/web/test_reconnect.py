"""A live socket that drops and comes back: the control server restarts (a change to
spec.control), the page keeps its session, reconnects, and catches up on what happened
meanwhile, with no duplicate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from playwright.sync_api import expect

from tests.rig import GateNode
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Page


def a_request(node: GateNode, model: str) -> None:
    """A request the node answers and records (503: it has no engine)."""
    reply = httpx.post(
        f"http://127.0.0.1:{node.api_port}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    assert reply.status_code == 503


def test_the_page_reconnects_and_catches_up_with_no_duplicate(
    node: GateNode, page: Page, page_log: PageLog
) -> None:
    login(page, node)
    open_page(page, node, "requests")
    rows = page.locator("table.requests tbody tr")
    a_request(node, "before-the-drop")
    expect(rows).to_have_count(1, timeout=10_000)

    # A new control.origins restarts the control server: every socket on it closes.
    text = node.spec_path.read_text()
    node.spec_path.write_text(
        text.rstrip("\n") + "\n  control:\n    origins: ['https://gate.example.net']\n"
    )
    node.wait_for(
        lambda: (node.status() or {}).get("spec", {}).get("observedGeneration") == 2,
        timeout=15,
        what="the control server restarted",
    )
    a_request(node, "while-it-was-down")

    expect(page.locator(".conn.open")).to_have_count(1, timeout=20_000)
    expect(rows).to_have_count(2, timeout=10_000)
    a_request(node, "after-it-came-back")
    expect(rows).to_have_count(3, timeout=10_000)
    models = rows.locator("td").all_inner_texts()
    for model in ("before-the-drop", "while-it-was-down", "after-it-came-back"):
        assert sum(model in cell for cell in models) == 1, models
    assert len(page_log.websockets) >= 2  # the socket did drop and a new one opened
    assert page.locator("text=Your session has ended").count() == 0
