"""The web UI against a real `gate up`: the one-time link logs in, the shell draws every
page with the live socket open, and nothing reaches another origin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.rig import GateNode
from tests.web.conftest import PageLog
from tests.web.ui import login, open_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.web.conftest import Axe, Shot

PAGES = ["dashboard", "peers", "providers", "try", "config", "requests", "logs"]


def test_the_link_opens_the_shell_and_every_page(
    node: GateNode, page: Page, page_log: PageLog, shot: Shot, axe: Axe
) -> None:
    login(page, node)
    # The name comes with the first node.status after the socket opens.
    page.wait_for_function(
        "() => document.querySelector('.top .brand').innerText.trim() === 'test-node'"
    )
    for name in PAGES:
        open_page(page, node, name)
        page.wait_for_selector("main#main h1.page-title")
        assert axe(page) == [], name
    assert page_log.console_errors() == [] and page_log.page_errors == []
    shot(page, "shell")
