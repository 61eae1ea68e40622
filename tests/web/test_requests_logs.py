"""The Requests and Logs pages against a real `gate up`: a request made with the `openai`
client through the real llama.cpp engine appears in the request table with no reload, the
filters hold for live rows too, older requests page in, the detail view shows the record in
words; the log shows new lines live, by level, and holds them while paused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from openai import NotFoundError, OpenAI
from playwright.sync_api import expect

from tests.llm.engine import LlamaServer
from tests.rig import GateNode
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.web.conftest import Axe, Shot


def ROWS(page: Page) -> Locator:  # noqa: N802
    return page.locator("table.requests tbody tr")


def rows(page: Page) -> list[str]:
    return ROWS(page).all_inner_texts()


def test_requests_arrive_live_filter_page_back_and_open_in_detail(
    llama_node: GateNode,
    llama_server: LlamaServer,
    client: OpenAI,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    login(page, llama_node)
    open_page(page, llama_node, "requests")
    page.get_by_text("No requests yet").wait_for()

    model = httpx.get(f"{llama_server.base_url}/models").json()["data"][0]["id"]
    client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4
    )
    expect(ROWS(page)).to_have_count(1)
    assert model in rows(page)[0] and "200 OK" in rows(page)[0]

    # Filter on status 404: the 200 goes, and a new 404 arrives live while one more 200 does not.
    page.get_by_label("Status", exact=True).select_option("404")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("No request matches this filter yet").wait_for()
    with pytest.raises(NotFoundError):
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}], max_tokens=1
        )
    client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "again"}], max_tokens=2
    )
    expect(ROWS(page)).to_have_count(1)
    page.wait_for_timeout(600)  # the page batches events every 250 ms: a wrong row would show
    assert len(rows(page)) == 1 and "404" in rows(page)[0] and "no-such-model" in rows(page)[0]
    assert axe(page) == []

    # Filter on the model: both of its requests, newest first, read from requests.list.
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Model", exact=True).fill(model)
    page.get_by_role("button", name="Filter").click()
    expect(ROWS(page)).to_have_count(2)
    assert all(model in row for row in rows(page))
    page.get_by_role("button", name="Clear").click()
    expect(ROWS(page)).to_have_count(3)
    shot(page, "requests")

    # More than a page (50) of requests: the older ones come in from `before`.
    with httpx.Client() as http:
        for _ in range(50):
            http.post(
                f"http://127.0.0.1:{llama_node.api_port}/v1/chat/completions",
                json={"model": "missing", "messages": [{"role": "user", "content": "x"}]},
            )
    page.reload()
    expect(ROWS(page)).to_have_count(50)
    page.get_by_role("button", name="Show older requests").click()
    expect(ROWS(page)).to_have_count(53)
    assert page.get_by_role("button", name="Show older requests").count() == 0
    assert model in rows(page)[-1]

    # The detail view of the first request: every field, in words.
    first = llama_node.rpc("requests.list", {"model": model})[-1]
    page.locator(f'a[href="#/requests?id={first["id"]}"]').click()
    detail = page.locator(".request-detail")
    detail.wait_for()
    text = detail.inner_text()
    for expected in (
        first["id"],
        "200 OK",
        model,
        "provider llama",
        "this node",
        f"a client at {first['source']}",
        f"{first['promptTokens']}",
        f"{first['completionTokens']}",
        "Streamed\nno",
        "1 (no retry)",
    ):
        assert expected in text, (expected, text)
    assert page.get_by_role("heading", name="POST /v1/chat/completions").count() == 1
    assert axe(page) == []
    shot(page, "request-detail")

    # An id that does not exist says so, and the way back is one link.
    page.goto(f"http://127.0.0.1:{llama_node.control_port}/#/requests?id=req_nope")
    page.locator("p.error").wait_for()
    page.get_by_role("link", name="← All requests").click()
    page.wait_for_selector("table.requests")
    assert page_log.console_errors() == [] and page_log.page_errors == []


def apply(node: GateNode, base: str, body_limit: int) -> None:
    """A real spec change through spec.apply (it logs "accepted spec generation N")."""
    generation = node.rpc("node.status")["spec"]["generation"]
    text = base + f"  limits:\n    maxResponseBody: {body_limit}\n"
    node.rpc("spec.apply", {"yaml": text, "expectedGeneration": generation})


def test_the_log_shows_new_lines_live_by_level_and_holds_them_while_paused(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    base = node.spec_path.read_text()
    login(page, node)
    open_page(page, node, "logs")
    # The node's start-up lines, from logs.tail.
    expect(page.locator("ol.log li").first).to_be_visible(timeout=15_000)

    apply(node, base, 2_000_000)
    line = page.locator("li.log-line", has_text="accepted spec generation 2")
    line.wait_for(timeout=10_000)
    assert line.locator(".level").inner_text().lower() == "info"
    assert "level-info" in (line.get_attribute("class") or "")
    assert line.locator(".logger").inner_text() == "reconcile.controller"
    assert line.locator(".logger").get_attribute("title") == "gate_runner.reconcile.controller"

    # Paused: a new line is held and counted, then shown on resume.
    page.get_by_role("button", name="Pause").click()
    apply(node, base, 3_000_000)
    page.get_by_role("button", name="Resume (").wait_for(timeout=10_000)
    assert page.locator("li.log-line", has_text="accepted spec generation 3").count() == 0
    page.get_by_role("button", name="Resume (").click()
    page.locator("li.log-line", has_text="accepted spec generation 3").wait_for()
    assert axe(page) == []
    shot(page, "logs")

    # Searching narrows the lines; the level filter re-reads from the node and holds for live.
    page.get_by_label("Search").fill("generation 3")
    expect(page.locator("li.log-line")).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.get_by_label("Least level").select_option("error")
    page.get_by_text("No error lines or above yet").wait_for()
    apply(node, base, 4_000_000)  # an info line: not shown
    node.spec_path.write_text(node.spec_path.read_text() + "  listen: [broken\n")
    rejected = page.locator("li.log-line.level-error", has_text="rejected spec")
    rejected.wait_for(timeout=15_000)
    assert page.locator("li.log-line.level-info").count() == 0
    assert rejected.locator(".level").inner_text().lower() == "error"

    assert axe(page) == []
    shot(page, "logs-errors")
    assert page_log.console_errors() == [] and page_log.page_errors == []
