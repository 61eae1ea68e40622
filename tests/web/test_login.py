"""The one-time login link in a real browser: it works once, a second use and no link both
get a page that says what to do, and every page carries the security headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.rig import GateNode
from tests.web.ui import login

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.web.conftest import Shot


def test_the_link_works_once_and_nothing_works_without_it(
    node: GateNode, page: Page, browser: Browser, shot: Shot
) -> None:
    base = f"http://127.0.0.1:{node.control_port}"
    link = node.rpc("node.loginLink")["url"]

    # No link: the log-in page, and no way into the app.
    response = page.goto(f"{base}/")
    assert response is not None and response.status == 401
    assert "gate ui" in page.locator("main").inner_text()
    assert page.locator("#app").count() == 0
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    shot(page, "not-logged-in")

    # The link once: the app, with the code gone from the address bar.
    page.goto(link)
    page.wait_for_selector(".conn.open", timeout=10_000)
    assert "code=" not in page.url

    # The same link again, in another browser: refused, with what to do.
    other = browser.new_context()
    try:
        again = other.new_page()
        response = again.goto(link)
        assert response is not None and response.status == 401
        text = again.locator("main").inner_text()
        assert "used" in text and "gate ui" in text
        assert again.locator("#app").count() == 0
    finally:
        other.close()


def test_a_fresh_link_after_logout_logs_in_again(node: GateNode, page: Page) -> None:
    login(page, node)
    base = f"http://127.0.0.1:{node.control_port}"
    # Logging out is a POST from the page (fetch sends the Origin the server checks).
    status = page.evaluate(
        "async (url) => (await fetch(url, {method: 'POST', headers: {accept: 'text/html'}}))"
        ".status",
        f"{base}/logout",
    )
    assert status in (200, 204, 303)
    response = page.goto(f"{base}/")
    assert response is not None and response.status == 401
    login(page, node)  # a new link works
