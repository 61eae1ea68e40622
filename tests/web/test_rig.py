"""The browser rig works for real: chromium loads the vendored modules through an import map
under a strict CSP, and preact, uPlot, CodeMirror and the QR code all render."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.conftest import Axe, PageLog, Shot

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gate_runner" / "components" / "control" / "static"
PAGES = Path(__file__).resolve().parent / "pages"
IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


def content_security_policy(html: str) -> str:
    """The policy the control plane serves the UI with (control/headers.py): nothing from
    another origin, no inline script but the import map (allowed by its hash), no inline
    style. CodeMirror lives in a shadow root so that its styles need no exception."""
    found = IMPORT_MAP.search(html)
    assert found, "the page has no inline import map"
    digest = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
    return (
        "default-src 'none'; "
        f"script-src 'self' 'sha256-{digest}'; "
        "style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class StaticHandler(SimpleHTTPRequestHandler):
    """/vendor/... from the package's static dir, /test/... from tests/web/pages; HTML goes
    out with the UI's CSP."""

    extensions_map = {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript",
        ".css": "text/css",
        ".json": "application/json",
        "": "text/plain; charset=utf-8",
    }

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/test/"):
            return str(PAGES / path.removeprefix("/test/"))
        return str(STATIC / path.lstrip("/"))

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        if self.path.split("?", 1)[0].endswith(".html"):
            html = Path(self.translate_path(self.path)).read_text()
            self.send_header("Content-Security-Policy", content_security_policy(html))
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the page log says what was asked for


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StaticHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_smoke_page_renders_every_vendored_module(
    server: str, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    page.goto(f"{server}/test/smoke.html")
    page.wait_for_selector("body[data-ready='1']", timeout=10_000)

    # preact + htm + hooks: rendered, and state updates on a click.
    assert page.text_content("h1") == "Gate web rig"
    page.click("#counter")
    assert " ".join((page.text_content("#counter") or "").split()) == "Clicked 1 time"

    # uPlot: a canvas with a size, and the legend names the series.
    canvas = page.locator("#chart .uplot canvas")
    assert canvas.count() == 1
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    assert "requests/s" in (page.text_content("#chart .u-legend") or "")

    # CodeMirror, in a shadow root (its styles go to a constructed stylesheet there, which the
    # CSP allows): the YAML is in the editor with line numbers, highlighted by the YAML
    # grammar, with the error marker from setDiagnostics, and typing changes the document.
    assert page.evaluate(
        "() => !!document.querySelector('#editor').shadowRoot.adoptedStyleSheets.length"
    )
    assert "apiVersion" in (page.text_content("#editor .cm-content") or "")
    assert page.locator("#editor .cm-lineNumbers .cm-gutterElement").count() >= 12
    key_colour = page.eval_on_selector("#editor .cm-line span", "el => getComputedStyle(el).color")
    text_colour = page.eval_on_selector("#editor .cm-content", "el => getComputedStyle(el).color")
    assert key_colour != text_colour, "the YAML key is not highlighted"
    assert page.locator("#editor .cm-lint-marker-error").count() == 1
    assert page.text_content("#lines") == "12 lines"
    page.click("#editor .cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("trust: {}\n")
    assert page.text_content("#lines") == "13 lines"
    assert "trust: {}" in (page.text_content("#editor .cm-content") or "")

    # The theme hook follows the colour scheme.
    light_bg = page.eval_on_selector(
        "#editor .cm-editor", "el => getComputedStyle(el).backgroundColor"
    )
    page.emulate_media(color_scheme="dark")
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('#editor').shadowRoot"
        ".querySelector('.cm-editor')).backgroundColor === 'rgb(13, 17, 23)'"
    )
    dark_violations = axe(page)
    page.emulate_media(color_scheme="light")
    assert light_bg == "rgb(255, 255, 255)"

    # The QR code: an SVG of the encoded matrix, labelled for screen readers.
    qr = page.locator("svg#qr")
    size = int(qr.get_attribute("data-size") or 0)
    assert size >= 29, "a QR code is at least 21 modules and a quiet zone of 4 a side"
    assert qr.get_attribute("viewBox") == f"0 0 {size} {size}"
    assert (qr.locator("path").get_attribute("d") or "").count("M") > size * 3
    assert (qr.get_attribute("aria-label") or "").startswith("QR code: https://127.0.0.1:8145/")

    # Nothing went wrong on the way, nothing left the origin, and axe finds no serious issue.
    assert page_log.console_errors() == []
    assert page_log.page_errors == []
    assert page_log.foreign() == []
    fetched = {url.removeprefix(server) for url in page_log.requests}
    assert {"/vendor/preact.js", "/vendor/codemirror.js", "/vendor/uqr.js"} <= fetched
    assert axe(page) == []
    assert dark_violations == []
    saved = shot(page, "smoke")
    assert len(saved) == 4 and all(path.stat().st_size > 5_000 for path in saved)


def test_a_request_to_another_origin_is_blocked_and_logged(
    server: str, page: Page, page_log: PageLog
) -> None:
    # A page without the CSP (a plain text file), so that only the rig can stop the fetch;
    # localhost is another origin than 127.0.0.1, and still this machine.
    page_log.foreign_expected = True
    page.goto(f"{server}/vendor/licenses/preact-LICENSE")
    foreign = server.replace("127.0.0.1", "localhost") + "/vendor/htm.js"
    outcome = page.evaluate("url => fetch(url).then(() => 'fetched', () => 'failed')", foreign)
    assert outcome == "failed"
    assert page_log.blocked == [foreign]
    assert page_log.foreign() == [foreign]
