"""The "Try it" page against a real `gate up` and the real llama.cpp engine: a reply streams
into the page token by token (the text is seen growing before the end) through the control
server's pass-through to the node's API, and lands in the node's request log; Stop ends a
stream; an unknown model is said in words; and "connect your app" holds the API's base URL
in every snippet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.llm.engine import LlamaServer
from tests.rig import GateNode, ServerProcess, ollama_provider
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.web.conftest import Axe, Shot

SLOW_MODEL = "slow-llama:latest"

# Every change to the reply's text, with the time it was seen (set up before sending).
WATCH = """() => {
    window.__growth = [];
    const seen = () => {
        const el = document.querySelector(".msg.assistant:last-child .text");
        const n = el ? el.textContent.length : 0;
        const last = window.__growth[window.__growth.length - 1];
        if (!last || last[0] !== n) window.__growth.push([n, performance.now()]);
    };
    new MutationObserver(seen).observe(document.querySelector(".transcript"),
        { childList: true, subtree: true, characterData: true });
}"""


@pytest.fixture
def llama_node(tmp_path: Path, node_factory: type[GateNode], llama_server: LlamaServer) -> GateNode:
    engine = f"{{name: llama, kind: openai, url: '{llama_server.base_url}'}}"
    node = node_factory(tmp_path, extra=f"    static:\n      - {engine}\n")
    node.start()
    node.wait_for(
        lambda: any(p["models"] for p in node.rpc("providers.list")), timeout=30, what="models"
    )
    return node


def test_a_reply_streams_into_the_page_and_the_snippets_hold_the_base_url(
    llama_node: GateNode,
    llama_server: LlamaServer,
    page: Page,
    page_log: PageLog,
    shot: Shot,
    axe: Axe,
) -> None:
    model = httpx.get(f"{llama_server.base_url}/models").json()["data"][0]["id"]
    login(page, llama_node)
    open_page(page, llama_node, "try")

    # The model picker lists what GET /v1/models answers; the first is picked.
    model_box = page.get_by_label("Model")
    page.wait_for_function("() => document.querySelector('#try-model')?.value")
    assert model_box.input_value() == model
    assert page.locator("#try-models option").count() >= 1

    # "Connect your app": the API's own address, in the box and in every snippet.
    base = f"http://127.0.0.1:{llama_node.api_port}/v1"
    assert page.locator("#try-base").input_value() == base
    tabs = page.get_by_role("tab")
    assert tabs.count() == 3
    for i in range(3):
        tabs.nth(i).click()
        panel = page.get_by_role("tabpanel")
        text = panel.locator("pre").inner_text()
        assert base in text and model in text, text
        assert panel.get_by_role("button", name=f"Copy {tabs.nth(i).inner_text()}:").count() == 1
    # The arrow keys move between the snippet tabs.
    tabs.nth(2).focus()
    page.keyboard.press("ArrowRight")
    assert tabs.nth(0).get_attribute("aria-selected") == "true"

    # A reply streams in: the text grows several times before the stream ends.
    page.evaluate(WATCH)
    # The tiny model writes thousands of tokens a second: ask for enough that the reply
    # takes more than a few network reads.
    page.get_by_label("Max tokens").fill("400")
    page.get_by_label("Message").fill("Tell me a story about a cat.")
    page.get_by_label("Message").press("Enter")
    page.locator(".msg.assistant").wait_for()
    page.locator(".msg.assistant .meta, .msg.assistant .error").wait_for(timeout=60_000)
    growth = page.evaluate("window.__growth")
    lengths = [n for n, _ in growth if n > 0]
    final = page.locator(".msg.assistant .text").inner_text()
    assert final.strip()
    assert len(lengths) >= 4, growth  # several partial renders, not one at the end
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    meta = page.locator(".msg.assistant .meta").inner_text()
    assert "tokens" in meta and "first token" in meta

    # It took the node's real API path: the node's request log has it, streamed.
    records = llama_node.rpc("requests.list", {"limit": 5})
    assert len(records) == 1 and records[0]["stream"] is True and records[0]["status"] == 200
    assert records[0]["model"] == model

    # The conversation goes on: a second turn carries the first.
    page.get_by_label("Message").fill("And then?")
    page.get_by_role("button", name="Send").click()
    page.locator(".msg.assistant").nth(1).locator(".meta").wait_for(timeout=60_000)
    assert page.locator(".msg.user").count() == 2

    assert axe(page) == []
    shot(page, "try")
    assert page_log.console_errors() == [] and page_log.page_errors == []


@pytest.fixture
def slow_node(tmp_path: Path, node_factory: type[GateNode]) -> Iterator[GateNode]:
    """A node on the recorded-contract Ollama, whose slow-* model sends a line every 0.3 s."""
    server = ServerProcess("tests.fakes.ollama", "--models", SLOW_MODEL, "--delay", "0.3")
    try:
        node = node_factory(tmp_path, extra=f"    static:\n      - {ollama_provider(server.url)}\n")
        node.start()
        node.wait_for(
            lambda: any(p["models"] for p in node.rpc("providers.list")), timeout=30, what="models"
        )
        yield node
    finally:
        server.stop()


def test_stop_ends_a_stream_and_errors_are_words(
    slow_node: GateNode, page: Page, page_log: PageLog, shot: Shot
) -> None:
    login(page, slow_node)
    open_page(page, slow_node, "try")
    page.wait_for_function("() => document.querySelector('#try-model')?.value")
    assert page.get_by_label("Model").input_value() == SLOW_MODEL

    # Stop: the fetch is aborted mid-stream, the reply says so, and the node cancels the
    # request upstream (its record is not a completed 200).
    page.get_by_label("Max tokens").fill("200")
    page.get_by_label("Message").fill("one two three four five six seven eight nine ten")
    page.get_by_role("button", name="Send").click()
    page.locator(".msg.assistant .text").wait_for(timeout=30_000)
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped.").wait_for()
    assert page.get_by_role("button", name="Send").count() == 1
    record = slow_node.wait_for(
        lambda: slow_node.rpc("requests.list", {"model": SLOW_MODEL}),
        timeout=10,
        what="the stopped request in the log",
    )
    assert record < 10
    stopped = slow_node.rpc("requests.list", {"model": SLOW_MODEL})[0]
    assert stopped["status"] != 200 or stopped["error"], stopped

    # An unknown model: the API's own message, in the conversation.
    page.get_by_label("Model").fill("no-such-model")
    page.get_by_label("Message").fill("hello")
    page.get_by_role("button", name="Send").click()
    error = page.locator(".msg.assistant.failed .error")
    error.wait_for(timeout=30_000)
    assert "no-such-model" in error.inner_text()
    shot(page, "try-errors")
    # The browser notes the 404 of that request in the console; nothing else went wrong.
    assert [e for e in page_log.console_errors() if "404" not in e] == []
    assert page_log.page_errors == []
