"""The browser rig (DESIGN.md sections 10 and 12): Debian's chromium driven by playwright, a
page that fails its test when it reaches for another origin, screenshots, and axe-core."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from openai import OpenAI

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route, ViewportSize

    from tests.llm.engine import LlamaServer
    from tests.rig import GateNode

HERE = Path(__file__).resolve().parent
# Screenshots land in tests/web/artifacts/<test>/ (git-ignored) rather than pytest's tmp_path:
# they outlive the run at a fixed place, to be looked at after a run or kept by CI.
ARTIFACTS = HERE / "artifacts"
AXE = HERE / "vendor" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium phones home at start (component updates, sync,
# QUIC probes), which this closed network refuses, many connections at a time.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE_WIDTH = 390
# What axe-core may not find: the impacts that make a page unusable for someone.
BLOCKING_IMPACTS = ("serious", "critical")


def require_browser() -> None:
    """Skip the calling test when chromium or playwright is missing.

    With GATE_REQUIRE_BROWSER=1 (`make test`) it fails instead, so CI cannot go green by
    skipping the browser tests.
    """
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian chromium: `scripts/system-deps.sh test`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if not missing:
        return
    reason = f"browser tests need {' and '.join(missing)}"
    if os.environ.get("GATE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GATE_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless chromium for the session; each test gets its own context (cookies,
    storage, cache) through `page`.

    Playwright's sync API: the tests here are plain functions driving a browser, and the async
    API would need asyncio, while Gate's async tests run on trio. The sync API runs its own
    asyncio loop in a greenlet and refuses to start inside a running loop, so never request
    these fixtures from an `anyio` test: start the server under test in a thread or a process
    (as the rig's GateNode does) and drive the browser from a sync test.
    """
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


def origin_of(url: str) -> str:
    """scheme://host:port, with ws/wss counted as http/https (a WebSocket to the page's own
    server is not foreign)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{parts.hostname}:{port}"


# Not network requests: the page makes these itself, from memory.
LOCAL_SCHEMES = ("data:", "blob:", "about:")


@dataclass
class PageLog:
    """What one test's page did: every request and WebSocket, what the console said, and
    uncaught errors. `origin` is the page's own, taken from its first navigation unless the
    test sets it first."""

    origin: str | None = None
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # A test of the guard itself sets this; every other test fails on a foreign request.
    foreign_expected: bool = False

    def foreign(self) -> list[str]:
        return [
            url
            for url in self.requests + self.websockets
            if not url.startswith(LOCAL_SCHEMES) and origin_of(url) != self.origin
        ]

    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog) -> Iterator[Page]:
    """A fresh page (its own context) at 1280x800 in the light scheme. Every request it or its
    workers make is logged in `page_log`; one to another origin is aborted before it leaves
    the browser, and fails the test at teardown."""
    context = browser.new_context(
        viewport=DESKTOP, color_scheme="light", service_workers="block", locale="en-GB"
    )

    def guard(route: Route) -> None:
        request = route.request
        if page_log.origin is None and request.is_navigation_request():
            page_log.origin = origin_of(request.url)
        if origin_of(request.url) == page_log.origin:
            route.continue_()
        else:
            page_log.blocked.append(request.url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    context.on("request", lambda request: page_log.requests.append(request.url))
    opened = context.new_page()
    opened.on("websocket", lambda ws: page_log.websockets.append(ws.url))
    opened.on("console", lambda msg: page_log.console.append((msg.type, msg.text)))
    opened.on("pageerror", lambda error: page_log.page_errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    foreign = page_log.foreign()
    if foreign and not page_log.foreign_expected:
        pytest.fail(f"the page reached other origins than {page_log.origin}: {foreign}")


def settle(page: Page) -> None:
    """Wait two animation frames, so that media-query listeners and resize handlers have run
    and painted before a screenshot."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


Shot = Callable[["Page", str], list[Path]]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """`shot(page, name)` saves full-page screenshots in the light and dark schemes, at the
    page's width and 390 px wide (a phone), as artifacts/<test>/<name>-<scheme>[-390].png,
    and returns their paths. The page is left as it was found (size, light scheme)."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def take(page: Page, name: str) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        size = page.viewport_size or DESKTOP
        saved = []
        try:
            for suffix, width in (("", size["width"]), (f"-{PHONE_WIDTH}", PHONE_WIDTH)):
                viewport: ViewportSize = {"width": width, "height": size["height"]}
                page.set_viewport_size(viewport)
                for scheme in ("light", "dark"):
                    page.emulate_media(color_scheme=scheme)
                    settle(page)
                    path = folder / f"{name}-{scheme}{suffix}.png"
                    page.screenshot(path=str(path), full_page=True)
                    saved.append(path)
        finally:
            page.set_viewport_size(size)
            page.emulate_media(color_scheme="light")
            settle(page)
        return saved

    return take


Axe = Callable[["Page"], list[dict[str, Any]]]


@pytest.fixture
def axe() -> Axe:
    """`axe(page)` runs the vendored axe-core on the page as it is now and returns its serious
    and critical violations (id, impact, help, and the selectors of the offending nodes)."""
    source = AXE.read_text()

    def run(page: Page) -> list[dict[str, Any]]:
        # Evaluated over the DevTools protocol, so the page's CSP (no inline scripts) does
        # not stop it, unlike a <script> tag that add_script_tag would insert.
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.evaluate(source)
        violations: list[dict[str, Any]] = page.evaluate(
            """async (impacts) => {
                const result = await axe.run(document, { resultTypes: ["violations"] });
                return result.violations
                    .filter((v) => impacts.includes(v.impact))
                    .map((v) => ({
                        id: v.id,
                        impact: v.impact,
                        help: v.help,
                        nodes: v.nodes.map((n) => n.target.join(" ")),
                    }));
            }""",
            list(BLOCKING_IMPACTS),
        )
        return violations

    return run


# -- a node in front of the real llama.cpp engine, and the `openai` client on its API ------


def llama_extra(url: str) -> str:
    """A static `openai` provider entry (under spec.providers) for the llama.cpp rig at url."""
    return f"    static:\n      - {{name: llama, kind: openai, url: '{url}'}}\n"


@pytest.fixture
def llama_node(tmp_path: Path, node_factory: type[GateNode], llama_server: LlamaServer) -> GateNode:
    node = node_factory(tmp_path, extra=llama_extra(llama_server.base_url))
    node.start()
    return node


@pytest.fixture
def client(llama_node: GateNode) -> Iterator[OpenAI]:
    """The `openai` client pointed at the node's API port."""
    base_url = f"http://127.0.0.1:{llama_node.api_port}/v1"
    with OpenAI(base_url=base_url, api_key="unused", max_retries=0) as opened:
        yield opened
